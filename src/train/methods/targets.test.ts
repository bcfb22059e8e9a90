import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../../model/config.ts';
import { CATALOGUE } from '../../model/catalogue.ts';
import { linearArchFromDims, linearModules, PEFT_DEFAULT_TARGET_MODULES } from '../../model/weights.ts';
import { peftTargetModules, resolveTargets, TargetError } from './targets.ts';

const gpt2 = parseModelConfig({ model_type: 'gpt2', vocab_size: 10, n_embd: 8, n_layer: 2, n_head: 2, n_positions: 16 }, 't');
const llama = parseModelConfig(
  { model_type: 'llama', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1 },
  't',
);
const paths = (s: { modules: { peftPath: string }[] }) => s.modules.map((m) => m.peftPath);

describe('the one target resolver', () => {
  it("uses the method's default for an empty list, and names it as PEFT matches it", () => {
    const s = resolveTargets(llama, [], PEFT_DEFAULT_TARGET_MODULES);
    expect(paths(s)).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
    expect(s.targetModules).toEqual(['q_proj', 'v_proj']);
    expect(resolveTargets(gpt2, [], PEFT_DEFAULT_TARGET_MODULES).targetModules).toEqual(['c_attn']);
  });

  it('keeps all-linear as PEFT writes it and expands the attention alias', () => {
    const all = resolveTargets(llama, ['all-linear'], PEFT_DEFAULT_TARGET_MODULES);
    expect(all.modules).toHaveLength(14);
    expect(all.targetModules).toBe('all-linear');
    const attn = resolveTargets(llama, ['attention'], PEFT_DEFAULT_TARGET_MODULES);
    expect(attn.targetModules).toEqual(['k_proj', 'o_proj', 'q_proj', 'v_proj']);
    expect(resolveTargets(llama, ['v_proj', 'q_proj', 'v_proj'], PEFT_DEFAULT_TARGET_MODULES).targetModules).toEqual(['q_proj', 'v_proj']);
  });

  it("names GPT-2's attention c_proj so that PEFT does not take the MLP's c_proj with it", () => {
    const s = resolveTargets(gpt2, ['attention'], PEFT_DEFAULT_TARGET_MODULES);
    expect(s.targetModules).toEqual(['attn.c_attn', 'attn.c_proj']);
    expect(s.modules.map((m) => m.peftPath)).toEqual([
      'transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj',
    ]);
  });

  it("names an imported adapter's modules as PEFT will match them (full paths where a name would take more)", () => {
    const all = linearModules(gpt2);
    expect(peftTargetModules(all, all)).toEqual(['c_attn', 'c_fc', 'c_proj']);
    const attention = all.filter((m) => m.canonical.includes('.attn.'));
    expect(peftTargetModules(attention, all)).toEqual([
      'transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj',
    ]);
  });

  it('refuses a misspelt name even beside good ones, listing what exists', () => {
    expect(() => resolveTargets(llama, ['q_proj', 'v_prj'], PEFT_DEFAULT_TARGET_MODULES)).toThrow(TargetError);
    expect(() => resolveTargets(llama, ['q_proj', 'v_prj'], PEFT_DEFAULT_TARGET_MODULES)).toThrow(/v_prj.*q_proj, k_proj/);
  });

  it('lists the same modules from a catalogue entry as from the model it describes', () => {
    const qwen = CATALOGUE.find((c) => c.repo.startsWith('Qwen/'))!;
    const arch = { ...linearArchFromDims(qwen.dims), modelType: qwen.modelType };
    const s = resolveTargets(arch, [], PEFT_DEFAULT_TARGET_MODULES);
    expect(s.modules).toHaveLength(2 * qwen.dims.numLayers);
    expect(s.modules[1]).toMatchObject({ targetName: 'v_proj', inFeatures: qwen.dims.hiddenSize, outFeatures: qwen.dims.numKvHeads * qwen.dims.headDim, hasBias: true });
  });
});
