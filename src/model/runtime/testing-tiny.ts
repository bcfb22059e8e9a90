// Tiny random models for whole-model gradient checks, built in memory: a config.json, random f32 weights under
// canonical names (for the float64 reference) and the same weights as a model.safetensors under transformers' names
// (for the GPU loader), random LoRA pairs with B ≠ 0, and a batch of two packed segments. Used by tests only.
import { rng } from '../../gpu/ref/testing.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../../gpu/half.ts';
import type { ModelFiles } from '../checkpoint.ts';
import { parseModelConfig, type ModelConfig } from '../config.ts';
import { writeSafetensors, type TensorToWrite } from '../safetensors.ts';
import { memoryFolder } from '../sources/memory.ts';
import { expectedTensors, linearModules, type LinearModule } from '../weights.ts';
import type { RefLoraPair, RefModel } from './reference.ts';
import type { HostBatch } from './transformer.ts';

export interface TinyModel {
  json: Record<string, unknown>;
  config: ModelConfig;
  /** Canonical name → values, f32 so the GPU and the reference start from the very same numbers. */
  weights: Map<string, Float32Array>;
  /** config.json + model.safetensors in memory. */
  files: ModelFiles;
}

/** Uniform in [−a, a) from a seeded stream. */
function uniform(next: () => number, n: number, a: number, center = 0): Float32Array {
  return Float32Array.from({ length: n }, () => center + (next() * 2 - 1) * a);
}

/**
 * Random weights for `json`: embeddings ±1 (positions ±0.5), linears with unit-ish output variance (±√3/√in),
 * norm weights 1 ± 0.3 and biases ±0.1, so every path carries signal and no softmax saturates. `stored` 'F16'
 * rounds every weight to f16 first and writes F16: the f32 values the reference reads are then exactly the ones an
 * f16 (or widened f32) GPU model holds.
 */
export function tinyModel(json: Record<string, unknown>, seed: number, storedAs: 'F32' | 'F16' = 'F32'): TinyModel {
  const config = parseModelConfig(json, 'tiny/config.json');
  const next = rng(seed);
  const weights = new Map<string, Float32Array>();
  const stored = new Map<string, TensorToWrite>();
  for (const t of expectedTensors(config)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    let values: Float32Array;
    if (t.layout === 'embedding') values = uniform(next, n, t.canonical === 'pos_embed.weight' ? 0.5 : 1);
    else if (t.layout === 'linear' || t.layout === 'conv1d') {
      const fanIn = t.layout === 'conv1d' ? t.shape[0] : t.shape[1];
      values = uniform(next, n, Math.sqrt(3 / fanIn));
    } else if (t.canonical.endsWith('.bias')) values = uniform(next, n, 0.1);
    else values = uniform(next, n, 0.3, 1);
    if (storedAs === 'F16') {
      const bits = f32ArrayToF16(values);
      values = f16ArrayToF32(bits);
      stored.set(t.hfName, { dtype: 'F16', shape: t.shape, data: bits });
    } else {
      stored.set(t.hfName, { dtype: 'F32', shape: t.shape, data: values });
    }
    weights.set(t.canonical, values);
  }
  const files = memoryFolder({ 'config.json': JSON.stringify(json), 'model.safetensors': writeSafetensors(stored) }, 'tiny');
  return { json, config, weights, files };
}

/** A Llama: hidden 16 (or as given), 4 query heads over 2 KV heads of width 8 (q width 32 ≠ hidden), SwiGLU. */
export function tinyLlamaJson(o: { layers: number; hidden?: number; ropeScaling?: Record<string, unknown>; bias?: boolean }): Record<string, unknown> {
  return {
    model_type: 'llama',
    vocab_size: 29,
    hidden_size: o.hidden ?? 16,
    intermediate_size: 24,
    num_hidden_layers: o.layers,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 8,
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    ...(o.ropeScaling ? { rope_scaling: o.ropeScaling } : {}),
    attention_bias: !!o.bias,
    mlp_bias: !!o.bias,
    tie_word_embeddings: false,
  };
}

/** llama3 scaling at head_dim 8, θ 10000: wavelengths 6.3, 63, 628, 6283 against thresholds 16 and 64, so one
 *  frequency is kept, one interpolated and two divided by the factor. */
export const LLAMA3_SCALING = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };

/** A GPT-2: hidden 16, 2 heads of 8, LayerNorm, learned positions, fused Conv1D c_attn, gelu_new, tied head. */
export function tinyGpt2Json(o: { layers: number }): Record<string, unknown> {
  return { model_type: 'gpt2', vocab_size: 29, n_embd: 16, n_layer: o.layers, n_head: 2, n_inner: 24, n_positions: 32, layer_norm_epsilon: 1e-5 };
}

export interface TinyLora {
  rank: number;
  alpha: number;
  modules: LinearModule[];
  /** Canonical module name → A ±1/√in (PEFT's init range), B ±bScale (nonzero, so dA is nonzero too). */
  pairs: Map<string, { A: Float32Array; B: Float32Array }>;
}

export function tinyLora(config: ModelConfig, rank: number, alpha: number, seed: number, bScale = 0.3): TinyLora {
  const next = rng(seed);
  const modules = linearModules(config);
  const pairs = new Map<string, { A: Float32Array; B: Float32Array }>();
  for (const m of modules) {
    pairs.set(m.canonical, { A: uniform(next, rank * m.inFeatures, 1 / Math.sqrt(m.inFeatures)), B: uniform(next, m.outFeatures * rank, bScale) });
  }
  return { rank, alpha, modules, pairs };
}

export function refModel(t: TinyModel, lora: TinyLora, scale: number): RefModel {
  return { config: t.config, weights: t.weights, lora: { rank: lora.rank, scale, modules: lora.pairs as Map<string, RefLoraPair> } };
}

/**
 * Two rows packed along T (6 and 5 tokens), positions restarting at 0, one segment id each. Targets are the next
 * token of the same row, −100 at each row's end and on row 1's first position (a masked prompt token).
 */
export function twoSegmentBatch(vocab: number, seed: number): HostBatch {
  const next = rng(seed);
  const lengths = [6, 5];
  const T = lengths.reduce((a, b) => a + b, 0);
  const b: HostBatch = { tokens: new Uint32Array(T), positions: new Uint32Array(T), segments: new Uint32Array(T), targets: new Int32Array(T) };
  let t = 0;
  lengths.forEach((len, seg) => {
    for (let p = 0; p < len; p++, t++) {
      b.tokens[t] = Math.floor(next() * vocab);
      b.positions[t] = p;
      b.segments[t] = seg;
    }
  });
  for (let i = 0; i < T; i++) b.targets[i] = i + 1 < T && b.segments[i + 1] === b.segments[i] ? b.tokens[i + 1] : -100;
  b.targets[lengths[0]] = -100;
  return b;
}
