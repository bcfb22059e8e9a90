import { describe, expect, it } from 'vitest';
import { parseModelConfig } from './config.ts';
import { assertWeightsMatch, expectedTensors, linearModules, resolveWeights, selectTargetModules, WeightsError } from './weights.ts';

const gpt2 = parseModelConfig({ model_type: 'gpt2', vocab_size: 20, n_embd: 8, n_layer: 2, n_head: 2, n_positions: 16 });
const llama = parseModelConfig({
  model_type: 'llama',
  vocab_size: 20,
  hidden_size: 8,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 4,
  intermediate_size: 12,
});

/** name → shape of a complete checkpoint, as transformers saves it (with the base prefix). */
const complete = (config: typeof gpt2, drop: (name: string) => boolean = () => false) =>
  new Map(expectedTensors(config).filter((e) => !drop(e.hfName)).map((e) => [e.hfName, e.shape]));

describe('expected tensors', () => {
  it('gpt2: Conv1D [in, out] shapes, LayerNorm biases, learned positions, no lm_head when tied', () => {
    const byName = new Map(expectedTensors(gpt2).map((e) => [e.canonical, e]));
    expect(byName.get('layers.0.attn.qkv.weight')).toMatchObject({ hfName: 'transformer.h.0.attn.c_attn.weight', shape: [8, 24], layout: 'conv1d', layer: 0 });
    expect(byName.get('layers.1.mlp.down.weight')).toMatchObject({ hfName: 'transformer.h.1.mlp.c_proj.weight', shape: [32, 8] });
    expect(byName.get('layers.1.mlp_norm.bias')?.hfName).toBe('transformer.h.1.ln_2.bias');
    expect(byName.get('pos_embed.weight')?.shape).toEqual([16, 8]);
    expect(byName.get('final_norm.bias')?.hfName).toBe('transformer.ln_f.bias');
    expect(byName.has('lm_head.weight')).toBe(false);
    expect(expectedTensors(gpt2)).toHaveLength(2 + 2 * 12 + 2);
  });

  it('llama: [out, in] shapes with GQA and explicit head_dim, RMSNorm without bias, untied head', () => {
    const byName = new Map(expectedTensors(llama).map((e) => [e.canonical, e]));
    expect(byName.get('layers.0.attn.q.weight')).toMatchObject({ hfName: 'model.layers.0.self_attn.q_proj.weight', shape: [16, 8], layout: 'linear' });
    expect(byName.get('layers.0.attn.k.weight')?.shape).toEqual([8, 8]);
    expect(byName.get('layers.0.attn.o.weight')?.shape).toEqual([8, 16]);
    expect(byName.get('layers.0.mlp.gate.weight')).toMatchObject({ hfName: 'model.layers.0.mlp.gate_proj.weight', shape: [12, 8] });
    expect(byName.get('layers.0.mlp.down.weight')?.shape).toEqual([8, 12]);
    expect(byName.has('layers.0.attn_norm.bias')).toBe(false);
    expect(byName.get('lm_head.weight')).toMatchObject({ hfName: 'lm_head.weight', shape: [20, 8] });
  });
});

describe('resolveWeights', () => {
  it('accepts names with or without the base prefix, ignores the causal-mask buffers, ties the head', () => {
    const hub = new Map([...complete(gpt2)].map(([n, s]) => [n.replace(/^transformer\./, ''), s]));
    hub.set('h.0.attn.bias', [1, 1, 16, 16]);
    hub.set('h.1.attn.masked_bias', []);
    hub.set('lm_head.weight', [20, 8]); // a stored copy of a tied head
    const report = resolveWeights(gpt2, hub);
    expect(report.problems).toEqual([]);
    expect(report.ignored.sort()).toEqual(['h.0.attn.bias', 'h.1.attn.masked_bias', 'lm_head.weight']);
    expect(report.tensors.get('layers.0.attn.qkv.bias')?.source).toBe('h.0.attn.c_attn.bias');
    expect(report.tensors.get('lm_head.weight')?.source).toBe('wte.weight');
    expect(resolveWeights(gpt2, complete(gpt2)).tensors.get('lm_head.weight')?.source).toBe('transformer.wte.weight');
  });

  it('ignores cached rotary frequencies', () => {
    const names = complete(llama);
    names.set('model.layers.0.self_attn.rotary_emb.inv_freq', [2]);
    expect(resolveWeights(llama, names).problems).toEqual([]);
  });

  it('ties a missing lm_head of an untied model to the embeddings, with a warning', () => {
    const report = resolveWeights(llama, complete(llama, (n) => n === 'lm_head.weight'));
    expect(report.problems).toEqual([]);
    expect(report.warnings[0]).toMatch(/lm_head.weight is missing although tie_word_embeddings is false/);
    expect(report.tensors.get('lm_head.weight')?.source).toBe('model.embed_tokens.weight');
  });

  it('reports missing, misshapen and unexpected tensors, all at once', () => {
    const names = complete(llama, (n) => n.endsWith('up_proj.weight'));
    names.set('model.layers.0.self_attn.k_proj.weight', [16, 8]);
    names.set('model.layers.0.self_attn.k_proj.bias', [8]);
    names.set('vision_tower.weight', [3]);
    const report = resolveWeights(llama, names);
    expect(report.problems).toEqual([
      'missing model.layers.0.mlp.up_proj.weight [12, 8]',
      'model.layers.0.self_attn.k_proj.weight has shape [16, 8], expected [8, 8]',
      'unexpected tensor model.layers.0.self_attn.k_proj.bias (not part of a llama model with this config)',
      'unexpected tensor vision_tower.weight (not part of a llama model with this config)',
    ]);
    expect(() => assertWeightsMatch(report, 'dir/model.safetensors')).toThrow(WeightsError);
    expect(() => assertWeightsMatch(report, 'dir/model.safetensors')).toThrow(/^dir\/model.safetensors: the checkpoint does not match config.json:\n {2}missing model.layers.0.mlp.up_proj.weight/);
  });

  it('flags the same tensor given with and without the prefix', () => {
    const names = complete(llama);
    names.set('norm.weight', [8]);
    expect(resolveWeights(llama, names).problems).toEqual(['norm.weight: same tensor as model.norm.weight (given with and without the "model." prefix)']);
  });
});

describe('PEFT module paths', () => {
  it('gpt2 linears are Conv1D (fan_in_fan_out) under transformer.h.N', () => {
    const mods = linearModules(gpt2);
    expect(mods.map((m) => m.peftPath).slice(0, 4)).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_fc', 'transformer.h.0.mlp.c_proj']);
    expect(mods.every((m) => m.fanInFanOut)).toBe(true);
    expect(mods[0]).toMatchObject({ canonical: 'layers.0.attn.qkv', targetName: 'c_attn', inFeatures: 8, outFeatures: 24, hasBias: true });
  });

  it('llama linears are nn.Linear under model.layers.N', () => {
    const mods = linearModules(llama);
    expect(mods.map((m) => m.targetName)).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    expect(mods[1]).toMatchObject({ peftPath: 'model.layers.0.self_attn.k_proj', inFeatures: 8, outFeatures: 8, fanInFanOut: false, hasBias: false });
  });

  it('selects target modules with PEFT’s rules', () => {
    const paths = (config: typeof gpt2, t?: string | string[]) => selectTargetModules(config, t).map((m) => m.peftPath);
    expect(paths(gpt2)).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
    expect(paths(llama)).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj']);
    expect(paths(gpt2, ['mlp.c_proj'])).toEqual(['transformer.h.0.mlp.c_proj', 'transformer.h.1.mlp.c_proj']);
    expect(paths(gpt2, ['c_proj'])).toHaveLength(4);
    expect(paths(gpt2, 'ALL-LINEAR')).toHaveLength(8);
    expect(paths(gpt2, String.raw`.*\.1\.attn\.c_attn`)).toEqual(['transformer.h.1.attn.c_attn']);
    // A suffix must be a whole path component; selecting nothing is an error that lists the choices.
    expect(() => paths(llama, ['proj'])).toThrow(/target_modules \["proj"\] matches no linear layer of this llama model \(its linear layers: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, or "all-linear"\)/);
  });
});
