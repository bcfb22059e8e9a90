// Generation with the KV cache against the model without one: every step's logits must equal the last row of a full
// forward (recordForward, the path checked against transformers) over the whole sequence so far, so greedy
// generation is the argmax of those recomputed logits. Then sampling, stops and LoRA at inference.
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readF32 } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { recordLogits } from '../../gpu/kernels/xent.ts';
import { mismatches, randomArray } from '../../gpu/ref/testing.ts';
import { testEngine, upload, zeros } from '../../gpu/testing-gpu.ts';
import { nodeFolder } from '../sources/node-file.ts';
import { createKvCache, decodeStep, generate, releaseKvCache } from './generate.ts';
import { kernelChoiceFor, type Linear } from './linear.ts';
import { loadTransformer } from './load.ts';
import { argmax } from './sampling.ts';
import { FIXTURES, packRows, readGolden } from './testing.ts';
import { recordForward, releaseActs, releaseBatch, uploadBatch, type Transformer } from './transformer.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

function load(name: string, dtype: 'f32' | 'f16' = 'f32', quant: 'none' | 'nf4' = 'none'): Promise<Transformer> {
  return loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype, quant });
}

/** The last position's logits (V) from the training forward over `ids`, no cache. */
async function fullForwardLogits(tf: Transformer, ids: number[]): Promise<Float32Array> {
  const batch = uploadBatch(e, packRows([{ input_ids: ids }]));
  const rec = e.record('full-forward');
  const acts = recordForward(rec, e, tf, batch, true);
  const { hiddenSize: C, vocabSize: V } = tf.model.config;
  const logits = e.buffers.acquire(V * 4, undefined, 'logits');
  recordLogits(rec, { T: batch.T, C, V }, { hs: acts.hs, Wh: tf.model.head, logits }, { elem: tf.model.dtype, row0: batch.T - 1, rows: 1 });
  await rec.submit();
  const out = await readF32(e.device, logits, V);
  e.buffers.release(logits);
  releaseActs(e, acts);
  releaseBatch(e, batch);
  return out;
}

function promptOf(name: string, n = 6): number[] {
  return readGolden(name).rows[0].input_ids.slice(0, n);
}

// The cache path sums the same terms as the full forward in the same order except inside attention (one sequence
// instead of masked packed rows: identical here) — observed differences ≤ 1e-6; logits are O(1).
const TOL = { abs: 1e-4, rel: 1e-4 };
const STEPS = 8;

const CASES = [
  { name: 'llama', fixture: 'llama' },
  { name: 'gpt2 (learned positions, fused c_attn)', fixture: 'gpt2' },
  { name: 'mistral', fixture: 'mistral' },
  { name: 'qwen2 (q/k/v biases; f16 weights where the adapter has shader-f16)', fixture: 'qwen2', f16: true },
  { name: 'llama, NF4 linears', fixture: 'llama', quant: 'nf4' as const },
];

describe.each(CASES)('KV-cache generation equals the full forward: $name', ({ fixture, f16, quant }) => {
  it(`each step's logits match, and greedy is their argmax for ${STEPS} steps`, async () => {
    const tf = await load(fixture, f16 && e.gpu.hasF16 ? 'f16' : 'f32', quant ?? 'none');
    const prompt = promptOf(fixture);
    const result = await generate(e, tf, prompt, { maxNewTokens: STEPS, stopTokenIds: [], temperature: 0 });
    // A random fixture may emit its eos id early; then fewer steps are checked (still ≥ 1).
    expect(result.tokens.length).toBeGreaterThan(0);
    expect(result.stopReason).toBe(result.tokens.length === STEPS ? 'length' : 'eos');

    // Step by step with a cache of our own: the prompt prefilled in two chunks (n > 1 at p0 > 0), then one token at
    // a time; each step's logits against the full forward over everything so far.
    const cache = createKvCache(e, tf.model.config, prompt.length + STEPS);
    const seq = [...prompt];
    await decodeStep(e, tf, cache, prompt.slice(0, 2), 0);
    let logits = await decodeStep(e, tf, cache, prompt.slice(2), 2);
    for (const [s, token] of result.tokens.entries()) {
      const want = await fullForwardLogits(tf, seq);
      expect(mismatches(logits, want, TOL), `step ${s}`).toEqual([]);
      expect(token, `step ${s}`).toBe(argmax(want));
      seq.push(token);
      if (s + 1 < result.tokens.length) logits = await decodeStep(e, tf, cache, [token], seq.length - 1);
    }
    releaseKvCache(e, cache);
  });
});

describe('sampling and stopping', () => {
  let tf: Transformer;
  let greedy: number[];
  const prompt = () => promptOf('llama', 5);
  beforeAll(async () => {
    tf = await load('llama');
    greedy = (await generate(e, tf, prompt(), { maxNewTokens: STEPS, stopTokenIds: [], temperature: 0 })).tokens;
  });

  it('the same seed gives the same tokens, another seed others', async () => {
    const run = (seed: number) => generate(e, tf, prompt(), { maxNewTokens: 5, temperature: 3, seed });
    const a = await run(11);
    const b = await run(11);
    const c = await run(12);
    expect(a.seed).toBe(11);
    expect(b.tokens).toEqual(a.tokens);
    expect(c.tokens).not.toEqual(a.tokens);
  });

  it('top-k = 1 and a tiny top-p are greedy at any temperature', async () => {
    const topK = await generate(e, tf, prompt(), { maxNewTokens: 5, temperature: 5, topK: 1, seed: 1 });
    const topP = await generate(e, tf, prompt(), { maxNewTokens: 5, temperature: 5, topP: 1e-6, seed: 2 });
    expect(topK.tokens).toEqual(greedy.slice(0, topK.tokens.length));
    expect(topP.tokens).toEqual(greedy.slice(0, topP.tokens.length));
  });

  it('stops at a stop id, streaming every token (the stop id included) as it comes', async () => {
    // The first greedy token that did not occur before it: greedy must stop exactly there.
    const at = greedy.findIndex((t, i) => greedy.indexOf(t) === i && i > 0);
    const streamed: number[] = [];
    const r = await generate(e, tf, prompt(), { maxNewTokens: STEPS, stopTokenIds: [greedy[at]] }, (id) => {
      streamed.push(id);
    });
    expect(r.stopReason).toBe('eos');
    expect(r.tokens).toEqual(greedy.slice(0, at + 1));
    expect(streamed).toEqual(r.tokens);
  });

  it('config.json eos_token_id stops generation', async () => {
    // Make the greedy first token the model's eos by loading it with that id in its config.
    const withEos: Transformer = { ...tf, model: { ...tf.model, config: { ...tf.model.config, eosTokenIds: [greedy[0]] } } };
    const r = await generate(e, withEos, prompt(), { maxNewTokens: STEPS });
    expect(r).toMatchObject({ tokens: [greedy[0]], stopReason: 'eos' });
  });

  it('refuses more positions than the model has, and bad options, before running anything', async () => {
    const max = tf.model.config.maxPositions;
    await expect(generate(e, tf, prompt(), { maxNewTokens: max })).rejects.toThrow(
      new RegExp(`prompt \\(5 tokens\\) \\+ max new tokens \\(${max}\\) = ${max + 5} exceeds the model's ${max} positions`),
    );
    await expect(generate(e, tf, [], { maxNewTokens: 1 })).rejects.toThrow(/prompt is empty/);
    await expect(generate(e, tf, [tf.model.config.vocabSize], { maxNewTokens: 1 })).rejects.toThrow(/outside the model's vocabulary/);
    await expect(generate(e, tf, prompt(), { maxNewTokens: 1, topP: 0 })).rejects.toThrow(/top-p/);
    await expect(generate(e, tf, prompt(), { maxNewTokens: 0 })).rejects.toThrow(/max new tokens/);
  });

  it('an aborted signal ends after the current token', async () => {
    const controller = new AbortController();
    const r = await generate(e, tf, prompt(), { maxNewTokens: STEPS, signal: controller.signal }, () => controller.abort());
    expect(r).toMatchObject({ tokens: greedy.slice(0, 1), stopReason: 'aborted' });
  });
});

describe('generation with LoRA pairs attached', () => {
  it('uses the adapter, with dropout off: equal to the full forward at dropout 0', async () => {
    const tf = await load('llama');
    const prompt = promptOf('llama', 5);
    const base = await fullForwardLogits(tf, prompt);
    // LoRA on q, v and down of every block, B non-zero so the adapter changes the logits; dropout 0.5 as if training.
    const attached: Linear[] = [];
    let seed = 100;
    for (const block of tf.model.blocks) {
      for (const name of ['q', 'v', 'down']) {
        const l = block.linears.get(name)!;
        const r = 4;
        l.lora = {
          rank: r, scale: 2, dropout: 0.5, seed: 77,
          A: upload(e, randomArray(r * l.inFeatures, seed++, 0.5)),
          B: upload(e, randomArray(l.outFeatures * r, seed++, 0.5)),
          dA: zeros(e, r * l.inFeatures),
          dB: zeros(e, l.outFeatures * r),
        };
        attached.push(l);
      }
    }
    const streamed: number[] = [];
    const result = await generate(e, tf, prompt, { maxNewTokens: 4, stopTokenIds: [] }, (id) => {
      streamed.push(id);
    });
    for (const l of attached) l.lora!.dropout = 0;
    const want = await fullForwardLogits(tf, prompt);
    const cache = createKvCache(e, tf.model.config, prompt.length + 1);
    for (const l of attached) l.lora!.dropout = 0.5; // decodeStep must turn it off by itself
    const got = await decodeStep(e, tf, cache, prompt, 0);
    releaseKvCache(e, cache);
    expect(mismatches(got, want, TOL)).toEqual([]);
    // The adapter matters: the logits moved well beyond the tolerance.
    expect(Math.max(...want.map((v, i) => Math.abs(v - base[i])))).toBeGreaterThan(0.05);
    expect(result.tokens[0]).toBe(argmax(want));
    expect(streamed).toEqual(result.tokens);
  });
});
