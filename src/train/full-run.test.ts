// A full fine-tuning run's saved weights (full-run.ts): the tensors come back exactly, by name; a PEFT adapter's
// files are not mistaken for them; a NaN is refused naming the tensor; the binding refusal says what the engine says.
import { describe, expect, it } from 'vitest';
import { buildAdapterConfig, exportAdapter } from './peft.ts';
import { parseModelConfig } from '../model/config.ts';
import { fullBindingRefusal, fullRunFiles, isFullRunFiles, readFullRunTensors } from './full-run.ts';

describe('a full fine-tuning run\'s saved weights', () => {
  it('round-trips every tensor by name, marked as not a PEFT adapter', async () => {
    const tensors = new Map([
      ['model.embed_tokens.weight', Float32Array.from([1, -2.5, 3e-8, 4])],
      ['model.norm.weight', Float32Array.from([0.5, 0.25])],
    ]);
    const files = fullRunFiles(tensors, 'demo-llama');
    expect(isFullRunFiles(files)).toBe(true);
    expect(JSON.parse(new TextDecoder().decode(files['adapter_config.json']))).toMatchObject({ base_model_name_or_path: 'demo-llama', tensors: 2 });
    const back = await readFullRunTensors(files, 'run "x"');
    expect([...back.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, values] of tensors) expect(back.get(name)).toEqual(values);
  });

  it('refuses a NaN, and a PEFT adapter is not one', async () => {
    expect(() => fullRunFiles(new Map([['model.norm.weight', Float32Array.from([1, Number.NaN])]]), 'm')).toThrow(/model\.norm\.weight: element 1 is NaN/);
    const model = parseModelConfig({
      model_type: 'llama', vocab_size: 16, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2,
      num_key_value_heads: 2, max_position_embeddings: 32, rms_norm_eps: 1e-5,
    }, 'tiny');
    const peft = exportAdapter(
      [{ peftPath: 'model.layers.0.self_attn.q_proj', inFeatures: 8, outFeatures: 8, A: new Float32Array(16), B: new Float32Array(16) }],
      buildAdapterConfig({ baseModel: 'tiny', rank: 2, alpha: 4, dropout: 0, targetModules: ['q_proj'], fanInFanOut: false, rslora: false, model }),
    );
    expect(isFullRunFiles(peft)).toBe(false);
    await expect(readFullRunTensors(peft, 'run "lora"')).rejects.toThrow(/run "lora": its saved weights are not a full fine-tuning run's/);
  });

  it('refuses a model whose f32 weights exceed one binding, with what to use instead', () => {
    expect(fullBindingRefusal(1000, 4000)).toBe('');
    expect(fullBindingRefusal(32 * 2 ** 20, 128 * 2 ** 20)).toBe('');
    expect(fullBindingRefusal(32 * 2 ** 20 + 1, 128 * 2 ** 20)).toMatch(/33,554,433 parameters as one f32 buffer of 128 MiB, above this GPU's largest binding \(128 MiB\): fine-tune it with LoRA or QLoRA/);
  });
});
