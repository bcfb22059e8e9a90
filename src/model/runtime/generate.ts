// Text generation with a KV cache: the prompt goes through the model once (prefill), each new token after it alone,
// attending to the keys and values every earlier position left in the cache (attention_decode.wgsl). Each step reads
// back one row of logits and picks the next token on the CPU (sampling.ts). The blocks are transformer.ts's own
// (recordBlockForward), with the cache decode in place of the training attention, so the two cannot drift apart.
//
//   cache per layer:  K, V (maxLen, Hkv, D) f32, maxLen = prompt + maxNewTokens ≤ the model's max positions
//   step (n rows at positions p0..p0+n−1):  x = embed(ids); per block: …, k, v → cache[p0..], o = decode(q, cache);
//   logits (V) = norm(x)[n−1]·headᵀ
//
// LoRA pairs attached to the linears take part as in training, except dropout: inference always runs with p = 0.
// A prompt method's virtual tokens (virtual-tokens.ts) are prepended to the prompt, as PEFT's generate does. An
// attention prefix (prefix tuning, attention-prefix.ts) fills every layer's cache rows 0 … P − 1 as given (no RoPE),
// and the prompt starts at position P — PEFT's generate hands the prefix to the model as its past_key_values.
import { readF32 } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { recordAttentionDecode, recordKvAppend, type AttentionDecodeShape } from '../../gpu/kernels/attention_decode.ts';
import { recordGatherColumns } from '../../gpu/kernels/columns.ts';
import { normStatsLength } from '../../gpu/kernels/norm.ts';
import { recordLogits } from '../../gpu/kernels/xent.ts';
import { uploadBuffer } from '../../gpu/buffers.ts';
import { Rng } from '../../data/rng.ts';
import type { ModelConfig } from '../config.ts';
import { recordLinearForward, type Linear } from './linear.ts';
import { checkSampling, GREEDY, sampleToken, type SamplingOptions } from './sampling.ts';
import type { AttentionPrefix } from './attention-prefix.ts';
import { virtualTokenIds } from './virtual-tokens.ts';
import { allocBlockBuffers, dims, linear, normForward, recordBlockForward, recordEmbed, type Transformer } from './transformer.ts';

export class GenerateError extends Error {
  override name = 'GenerateError';
}

export interface GenerateOptions extends Partial<SamplingOptions> {
  /** Stop after this many new tokens (≥ 1). */
  maxNewTokens: number;
  /** Seed of the sampling RNG; a random one when omitted (reported in the result). Unused when greedy. */
  seed?: number;
  /** Stop ids besides config.json's eos_token_id (e.g. the tokenizer's eos or a chat template's end-of-turn). */
  stopTokenIds?: readonly number[];
  /** Sample only ids below this (the tokenizer's vocabulary, when the model's embedding is padded past it). */
  vocabLimit?: number;
  /** Checked between tokens: generation ends early with stopReason 'aborted'. */
  signal?: AbortSignal;
}

export interface GenerateResult {
  /** The new tokens, the stop token included when there was one (as transformers' generate()). */
  tokens: number[];
  stopReason: 'eos' | 'length' | 'aborted';
  seed: number;
}

/** Called with each new token as soon as it is chosen (before the next step runs). */
export type OnToken = (id: number) => void | Promise<void>;

/** One layer's cache. */
export interface LayerCache {
  K: GPUBuffer; // (maxLen, Hkv, D)
  V: GPUBuffer; // (maxLen, Hkv, D)
}

export interface KvCache {
  maxLen: number;
  layers: LayerCache[];
}

export function createKvCache(e: Engine, cfg: ModelConfig, maxLen: number): KvCache {
  const bytes = maxLen * cfg.numKvHeads * cfg.headDim * 4;
  const layers = Array.from({ length: cfg.numLayers }, (_, i) => ({
    K: e.buffers.acquire(bytes, undefined, `kv.${i}.K`),
    V: e.buffers.acquire(bytes, undefined, `kv.${i}.V`),
  }));
  return { maxLen, layers };
}

export function releaseKvCache(e: Engine, cache: KvCache): void {
  for (const l of cache.layers) {
    e.buffers.release(l.K);
    e.buffers.release(l.V);
  }
  cache.layers = [];
}

/** The layer as inference runs it: LoRA dropout off (the training mask must never touch generated text). */
function inferenceLayer(layer: Linear): Linear {
  return layer.lora && layer.lora.dropout !== 0 ? { ...layer, lora: { ...layer.lora, dropout: 0 } } : layer;
}

/**
 * Runs `ids` (n tokens at positions p0..p0+n−1; the cache holds 0..p0−1) through the model, leaves their keys and
 * values in the cache and returns the logits (V) of the last one.
 */
export async function decodeStep(e: Engine, tf: Transformer, cache: KvCache, ids: readonly number[], p0: number): Promise<Float32Array> {
  const { model, kernels } = tf;
  const cfg = model.config;
  const { C, Hq, Hkv, D } = dims(cfg);
  const n = ids.length;
  const V = cfg.vocabSize;
  const shape: AttentionDecodeShape = { n, p0, maxLen: cache.maxLen, Hq, Hkv, D, scale: cfg.attentionScale };
  const scratch: GPUBuffer[] = [];
  const alloc = (floats: number, label: string) => {
    const b = e.buffers.acquire(floats * 4, undefined, label);
    scratch.push(b);
    return b;
  };
  const positions = Uint32Array.from({ length: n }, (_, i) => p0 + i);
  const tokenBuf = uploadBuffer(e.buffers, e.device, Uint32Array.from(ids), 'gen.tokens');
  const posBuf = uploadBuffer(e.buffers, e.device, positions, 'gen.positions');
  scratch.push(tokenBuf, posBuf);
  const logits = e.buffers.acquire(V * 4, undefined, 'gen.logits');

  const rec = e.record('generate');
  let x = alloc(n * C, 'gen.x0');
  recordEmbed(rec, tf, n, tokenBuf, posBuf, x);
  for (const [i, block] of model.blocks.entries()) {
    const b = allocBlockBuffers(cfg, n, (floats, label) => alloc(floats, `gen.b${i}.${label}`));
    const { K: Kc, V: Vc } = cache.layers[i];
    recordBlockForward(
      rec, tf, block, n, posBuf, x, b,
      (name, input, out, accumulate = false) => {
        const saved = recordLinearForward(rec, e, kernels, inferenceLayer(linear(block, name)), n, input, out, accumulate);
        if (saved.h) scratch.push(saved.h);
        if (saved.bottleneck) scratch.push(saved.bottleneck.h, saved.bottleneck.z, saved.bottleneck.a);
      },
      (q, k, v, o) => {
        recordKvAppend(rec, shape, { k, v, Kc, Vc });
        recordAttentionDecode(rec, shape, { Q: q, Kc, Vc, O: o });
      },
    );
    x = b.out;
  }
  const hs = alloc(n * C, 'gen.hs');
  normForward(rec, model.finalNorm, n, C, x, hs, alloc(normStatsLength(n), 'gen.statsF'));
  recordLogits(rec, { T: n, C, V }, { hs, Wh: model.head, logits }, { elem: model.dtype, row0: n - 1, rows: 1 });
  rec.afterSubmit(() => {
    for (const buf of scratch) e.buffers.release(buf);
  });
  try {
    await rec.submit();
    return await readF32(e.device, logits, V);
  } finally {
    e.buffers.release(logits);
  }
}

/** Writes every layer's prefix rows (P, 2, Hkv, D) into its cache rows 0 … P − 1: the keys are the first Hkv·D
 *  columns of each row, the values the next. */
export async function primeKvCache(e: Engine, tf: Transformer, cache: KvCache, prefix: AttentionPrefix): Promise<void> {
  const cfg = tf.model.config;
  const w = cfg.numKvHeads * cfg.headDim;
  const rec = e.record('generate.prefix');
  prefix.recordForward(rec);
  cache.layers.forEach((l, i) => {
    recordGatherColumns(rec, { rows: prefix.count, wide: 2 * w, narrow: w, offset: 0 }, { wide: prefix.layer(i), narrow: l.K });
    recordGatherColumns(rec, { rows: prefix.count, wide: 2 * w, narrow: w, offset: w }, { wide: prefix.layer(i), narrow: l.V });
  });
  await rec.submit();
}

function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function samplingOf(o: GenerateOptions): SamplingOptions {
  return { temperature: o.temperature ?? GREEDY.temperature, topK: o.topK ?? GREEDY.topK, topP: o.topP ?? GREEDY.topP };
}

/** Checks what generate() would be asked, without the GPU (callers may check before loading anything); every
 *  message names the value. */
export function checkGenerateRequest(cfg: ModelConfig, promptIds: readonly number[], o: GenerateOptions): void {
  checkSampling(samplingOf(o));
  if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens >= 1)) {
    throw new GenerateError(`max new tokens must be an integer ≥ 1, got ${o.maxNewTokens}`);
  }
  if (promptIds.length === 0) throw new GenerateError('the prompt is empty: generation needs at least one token to start from');
  for (const id of promptIds) {
    if (!(Number.isInteger(id) && id >= 0 && id < cfg.vocabSize)) {
      throw new GenerateError(`prompt token id ${id} is outside the model's vocabulary [0, ${cfg.vocabSize})`);
    }
  }
  const total = promptIds.length + o.maxNewTokens;
  if (total > cfg.maxPositions) {
    throw new GenerateError(
      `the prompt (${promptIds.length} tokens) + max new tokens (${o.maxNewTokens}) = ${total} exceeds the model's ` +
        `${cfg.maxPositions} positions; shorten the prompt or lower max new tokens to ${Math.max(0, cfg.maxPositions - promptIds.length)}`,
    );
  }
  // attention_decode has no window: refuse rather than attend past it (transformers masks beyond sliding_window).
  if (cfg.slidingWindow !== null && total > cfg.slidingWindow) {
    throw new GenerateError(`${total} positions exceed the model's sliding window of ${cfg.slidingWindow}, which generation does not implement`);
  }
  if (o.vocabLimit !== undefined && !(Number.isInteger(o.vocabLimit) && o.vocabLimit >= 1)) {
    throw new GenerateError(`vocabLimit must be a positive integer, got ${o.vocabLimit}`);
  }
  if (o.seed !== undefined && !(Number.isInteger(o.seed) && o.seed >= 0 && o.seed <= 0xffffffff)) {
    throw new GenerateError(`seed must be an integer in [0, 2^32), got ${o.seed}`);
  }
}

/**
 * Generates up to maxNewTokens after `promptIds`, calling `onToken` with each token as it is chosen. Stops at any
 * stop id (config.json's eos_token_id and options.stopTokenIds) or at maxNewTokens.
 */
export async function generate(
  e: Engine,
  tf: Transformer,
  promptIds: readonly number[],
  options: GenerateOptions,
  onToken?: OnToken,
): Promise<GenerateResult> {
  const cfg = tf.model.config;
  const sampling = samplingOf(options);
  checkGenerateRequest(cfg, promptIds, options);
  const seed = options.seed ?? randomSeed();
  const rng = new Rng(seed);
  const stops = new Set([...cfg.eosTokenIds, ...(options.stopTokenIds ?? [])]);
  const vocab = Math.min(options.vocabLimit ?? cfg.vocabSize, cfg.vocabSize);

  // A prompt method's virtual tokens go ahead of the prompt (PEFT's generate does the same), at positions 0 … n − 1.
  const vt = tf.model.virtualTokens;
  const ids = vt ? [...virtualTokenIds(cfg.vocabSize, vt.count), ...promptIds] : promptIds;
  if (vt && ids.length + options.maxNewTokens > Math.min(cfg.maxPositions, cfg.slidingWindow ?? Infinity)) {
    throw new GenerateError(`the ${vt.count} virtual tokens + the prompt (${promptIds.length} tokens) + max new tokens (${options.maxNewTokens}) exceed the model's ${Math.min(cfg.maxPositions, cfg.slidingWindow ?? Infinity)} positions`);
  }
  // An attention prefix takes cache rows (and positions) 0 … P − 1; the prompt starts after it.
  const prefix = tf.model.attentionPrefix;
  const p0 = prefix?.count ?? 0;
  const limit = Math.min(cfg.maxPositions, cfg.slidingWindow ?? Infinity);
  if (prefix && p0 + ids.length + options.maxNewTokens > limit) {
    throw new GenerateError(`the ${p0} prefix positions + the prompt (${promptIds.length} tokens) + max new tokens (${options.maxNewTokens}) exceed the model's ${limit} positions; lower max new tokens to ${Math.max(0, limit - p0 - promptIds.length)}`);
  }
  const cache = createKvCache(e, cfg, p0 + ids.length + options.maxNewTokens);
  try {
    const tokens: number[] = [];
    if (prefix) await primeKvCache(e, tf, cache, prefix);
    let logits = await decodeStep(e, tf, cache, ids, p0);
    for (;;) {
      for (let i = 0; i < vocab; i++) {
        if (!Number.isFinite(logits[i])) {
          throw new GenerateError(`logits of new token ${tokens.length + 1} are not finite (id ${i}: ${logits[i]}): the weights or an adapter hold NaN/Inf`);
        }
      }
      const id = sampleToken(logits, sampling, rng, vocab);
      tokens.push(id);
      await onToken?.(id);
      if (stops.has(id)) return { tokens, stopReason: 'eos', seed };
      if (tokens.length >= options.maxNewTokens) return { tokens, stopReason: 'length', seed };
      if (options.signal?.aborted) return { tokens, stopReason: 'aborted', seed };
      logits = await decodeStep(e, tf, cache, [id], p0 + ids.length + tokens.length - 1);
    }
  } finally {
    releaseKvCache(e, cache);
  }
}
