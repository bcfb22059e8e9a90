import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseModelConfig } from './config.ts';

const MODELS = new URL('../../tests/fixtures/models/', import.meta.url);
const fixtureConfig = (name: string): Record<string, unknown> => JSON.parse(readFileSync(new URL(`${name}/config.json`, MODELS), 'utf8'));

function configError(json: unknown): string {
  try {
    parseModelConfig(json, 'some/config.json');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected the config to be rejected');
}

describe('parseModelConfig on the fixtures', () => {
  it('gpt2: n_* keys, n_inner defaulting to 4·n_embd, Conv1D, learned positions, tied', () => {
    const c = parseModelConfig(fixtureConfig('gpt2'));
    expect(c).toMatchObject({
      modelType: 'gpt2',
      family: 'gpt2',
      vocabSize: 320,
      hiddenSize: 32,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 4,
      headDim: 8,
      intermediateSize: 128,
      maxPositions: 64,
      norm: { kind: 'layernorm', eps: 1e-5 },
      activation: 'gelu_new',
      mlp: 'plain',
      positions: { kind: 'learned' },
      tieWordEmbeddings: true,
      qkvBias: true,
      attnOutputBias: true,
      mlpBias: true,
      linearLayout: 'conv1d',
      bosTokenId: 0,
      eosTokenIds: [0],
    });
    expect(c.attentionScale).toBeCloseTo(1 / Math.sqrt(8), 15);
    expect(parseModelConfig(fixtureConfig('gpt2-f16')).torchDtype).toBe('float16');
  });

  it('llama: GQA, untied, rope_parameters (transformers 5 layout)', () => {
    const c = parseModelConfig(fixtureConfig('llama'));
    expect(c).toMatchObject({
      modelType: 'llama',
      family: 'llama',
      vocabSize: 400,
      hiddenSize: 32,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 8,
      intermediateSize: 64,
      maxPositions: 128,
      norm: { kind: 'rmsnorm', eps: 1e-5 },
      activation: 'silu',
      mlp: 'gated',
      positions: { kind: 'rope', theta: 10000, type: 'default', scaling: null },
      tieWordEmbeddings: false,
      qkvBias: false,
      attnOutputBias: false,
      mlpBias: false,
      qkNorm: false,
      linearLayout: 'linear',
      bosTokenId: 1,
      eosTokenIds: [2],
      padTokenId: null,
      torchDtype: 'float32',
    });
  });

  it('llama-rope-scaling: legacy rope_theta + rope_scaling keys, explicit head_dim, tied, eos list, bf16', () => {
    const c = parseModelConfig(fixtureConfig('llama-rope-scaling'));
    expect(c.headDim).toBe(16);
    expect(c.numHeads * c.headDim).not.toBe(c.hiddenSize);
    expect(c.attentionScale).toBe(0.25);
    expect(c.positions).toEqual({
      kind: 'rope',
      theta: 500000,
      type: 'llama3',
      scaling: { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 },
    });
    expect(c.tieWordEmbeddings).toBe(true);
    expect(c.eosTokenIds).toEqual([1, 4]);
    expect(c.torchDtype).toBe('bfloat16');
  });

  it('mistral: sliding_window recorded, single kv head', () => {
    const c = parseModelConfig(fixtureConfig('mistral'));
    expect(c).toMatchObject({ modelType: 'mistral', numKvHeads: 1, headDim: 8, slidingWindow: 4096, intermediateSize: 80 });
  });

  it('qwen2: q/k/v biases but no o bias, no sliding window unless use_sliding_window', () => {
    const c = parseModelConfig(fixtureConfig('qwen2'));
    expect(c).toMatchObject({ modelType: 'qwen2', qkvBias: true, attnOutputBias: false, mlpBias: false, slidingWindow: null, tieWordEmbeddings: true, padTokenId: 0 });
    expect(c.positions).toMatchObject({ theta: 1000000, type: 'default' });
    expect(parseModelConfig({ ...fixtureConfig('qwen2'), use_sliding_window: true, sliding_window: 32 }).slidingWindow).toBe(32);
  });

  it('qwen3: q/k norms, explicit head_dim', () => {
    const c = parseModelConfig(fixtureConfig('qwen3'));
    expect(c).toMatchObject({ modelType: 'qwen3', qkNorm: true, headDim: 16, qkvBias: false });
  });
});

describe('parseModelConfig defaults and errors', () => {
  const minimalLlama = { model_type: 'llama', vocab_size: 10, hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 16 };

  it('applies transformers defaults for left-out keys', () => {
    const c = parseModelConfig(minimalLlama);
    expect(c).toMatchObject({ numKvHeads: 2, headDim: 4, maxPositions: 2048, norm: { eps: 1e-6 }, tieWordEmbeddings: false, eosTokenIds: [], bosTokenId: null });
    expect(c.positions).toEqual({ kind: 'rope', theta: 10000, type: 'default', scaling: null });
    expect(parseModelConfig({ ...minimalLlama, model_type: 'qwen3' }).headDim).toBe(128);
    expect(parseModelConfig({ ...minimalLlama, attention_bias: true })).toMatchObject({ qkvBias: true, attnOutputBias: true });
    const g = parseModelConfig({ model_type: 'gpt2', vocab_size: 10, n_embd: 8, n_layer: 1, n_head: 2, scale_attn_weights: false });
    expect(g).toMatchObject({ intermediateSize: 32, maxPositions: 1024, tieWordEmbeddings: true, attentionScale: 1 });
  });

  it('reads the old "type" key of rope_scaling', () => {
    const c = parseModelConfig({ ...minimalLlama, rope_theta: 5e5, rope_scaling: { type: 'linear', factor: 2 } });
    expect(c.positions).toEqual({ kind: 'rope', theta: 5e5, type: 'linear', scaling: { factor: 2 } });
  });

  it('names an unsupported model_type and lists the supported ones', () => {
    expect(configError({ model_type: 'bert' })).toBe('some/config.json: model_type "bert" is not supported (supported: gpt2, llama, mistral, qwen2, qwen3)');
    expect(configError({ hidden_size: 3 })).toMatch(/missing "model_type" \(supported: gpt2, llama/);
  });

  it('names every missing required key at once', () => {
    expect(configError({ model_type: 'llama', vocab_size: 10, num_attention_heads: 2 })).toBe(
      'some/config.json: missing required keys for model_type "llama": hidden_size, num_hidden_layers, intermediate_size',
    );
    expect(configError({ model_type: 'gpt2', n_embd: 8 })).toMatch(/missing required keys for model_type "gpt2": vocab_size, n_layer, n_head/);
  });

  it('names bad values and unsupported options', () => {
    expect(configError({ ...minimalLlama, hidden_size: 8.5 })).toMatch(/"hidden_size" must be an integer in \[1, 2147483647\], got 8.5/);
    // Found by config.fuzz.test.ts: 2⁵³ (not a safe integer) was taken as a size.
    expect(configError({ ...minimalLlama, hidden_size: 2 ** 53 })).toMatch(/"hidden_size" must be an integer in \[1, 2147483647\], got 9007199254740992/);
    expect(configError({ ...minimalLlama, num_key_value_heads: 3 })).toMatch(/num_attention_heads 2 is not a multiple of num_key_value_heads 3/);
    expect(configError({ ...minimalLlama, hidden_act: 'mish' })).toMatch(/"hidden_act" "mish" is not supported \(supported: gelu_new/);
    expect(configError({ ...minimalLlama, rope_scaling: { rope_type: 'su' } })).toMatch(/rope type "su" is not supported/);
    expect(configError({ ...minimalLlama, rope_scaling: { rope_type: 'llama3', factor: 8 } })).toMatch(/llama3 needs a numeric "low_freq_factor"/);
    expect(configError({ ...minimalLlama, hidden_size: 9 })).toMatch(/hidden_size 9 is not divisible by num_attention_heads 2/);
    expect(configError({ ...minimalLlama, eos_token_id: 'x' })).toMatch(/"eos_token_id" must be a token id/);
    expect(configError({ model_type: 'gpt2', vocab_size: 10, n_embd: 8, n_layer: 1, n_head: 2, scale_attn_by_inverse_layer_idx: true })).toMatch(/scale_attn_by_inverse_layer_idx/);
    expect(configError([])).toMatch(/not a JSON object/);
  });
});
