// A model whose embedding and LM head are split by rows across bindings (as GPT-2's f32 wte must be on lavapipe,
// whose maxStorageBufferBindingSize is 128 MiB) computes exactly what the same model in one buffer each computes:
// the fixtures loaded with a forced tiny binding limit (3 vocabulary rows a shard, so ~100 shards, the last short)
// against the normal load — the training forward's logits and loss, the cross-entropy's gradient of the hidden
// states, and the generation step's logits through the KV cache. The normal load is checked against transformers in
// forward.gpu.test.ts.
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readF32 } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { recordCrossEntropy, recordLogits, xentScratchElements } from '../../gpu/kernels/xent.ts';
import { testEngine } from '../../gpu/testing-gpu.ts';
import { nodeFolder } from '../sources/node-file.ts';
import { createKvCache, decodeStep, releaseKvCache } from './generate.ts';
import { kernelChoiceFor } from './linear.ts';
import { loadTransformer } from './load.ts';
import { FIXTURES, packRows, readGolden } from './testing.ts';
import { recordForward, releaseActs, releaseBatch, uploadBatch, type Transformer } from './transformer.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const SHARD_ROWS = 3;

function load(name: string, dtype: 'f32' | 'f16', maxBindingBytes?: number): Promise<Transformer> {
  return loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype, quant: 'none', maxBindingBytes });
}

/** Logits (T, V) and [loss sum, count] of the training forward, and dhs (T, C) of its cross-entropy. */
async function run(tf: Transformer, name: string) {
  const golden = readGolden(name);
  const batch = uploadBatch(e, packRows(golden.rows));
  const { hiddenSize: C, vocabSize: V } = tf.model.config;
  const T = batch.T;
  const rec = e.record('sharded-test');
  const acts = recordForward(rec, e, tf, batch, true);
  const logits = e.buffers.acquire(T * V * 4, undefined, 'logits');
  recordLogits(rec, { T, C, V }, { hs: acts.hs, Wh: tf.model.head, logits }, { elem: tf.model.dtype });
  const dhs = e.buffers.acquire(T * C * 4, undefined, 'dhs');
  const work = e.buffers.acquire(xentScratchElements({ T, C, V }, 4) * 4, undefined, 'work');
  const total = e.buffers.acquire(8, undefined, 'total');
  recordCrossEntropy(rec, { T, C, V }, { hs: acts.hs, Wh: tf.model.head, labels: batch.targets, work, total, dhs }, {
    elem: tf.model.dtype,
    gradScale: 1 / 3,
    chunkRows: 4,
  });
  await rec.submit();
  const out = {
    logits: await readF32(e.device, logits, T * V),
    loss: await readF32(e.device, acts.total, 2),
    dhs: await readF32(e.device, dhs, T * C),
  };
  for (const b of [logits, dhs, work, total]) e.buffers.release(b);
  releaseActs(e, acts);
  releaseBatch(e, batch);

  const prompt = golden.rows[0].input_ids.slice(0, 5);
  const cache = createKvCache(e, tf.model.config, prompt.length + 1);
  const prefill = await decodeStep(e, tf, cache, prompt, 0);
  const step = await decodeStep(e, tf, cache, [7], prompt.length);
  releaseKvCache(e, cache);
  return { ...out, prefill, step };
}

const CASES = [
  { fixture: 'gpt2', note: 'tied head, learned positions', dtype: 'f32' as const },
  { fixture: 'llama', note: 'own head', dtype: 'f32' as const },
  { fixture: 'qwen2', note: 'tied head, f16 where the adapter has shader-f16', dtype: 'f16' as const },
];

describe.each(CASES)('row-sharded embedding and head: $fixture ($note)', ({ fixture, dtype: wanted }) => {
  it('gives exactly the logits, loss and dhs of the one-buffer load', async () => {
    const dtype = wanted === 'f16' && !e.gpu.hasF16 ? 'f32' : wanted;
    const one = await load(fixture, dtype);
    const { vocabSize: V, hiddenSize: C } = one.model.config;
    const split = await load(fixture, dtype, SHARD_ROWS * C * (dtype === 'f16' ? 2 : 4));

    expect(one.model.embed.shards).toHaveLength(1);
    expect(split.model.embed.shards).toHaveLength(Math.ceil(V / SHARD_ROWS));
    expect(split.model.embed.shards.at(-1)!.rows).toBe(V % SHARD_ROWS || SHARD_ROWS);
    expect(split.model.head.shards.length).toBe(Math.ceil(V / SHARD_ROWS));
    expect(split.model.head === split.model.embed).toBe(one.model.head === one.model.embed); // tied stays tied

    const want = await run(one, fixture);
    const got = await run(split, fixture);
    expect(Array.from(got.logits)).toEqual(Array.from(want.logits));
    expect(Array.from(got.loss)).toEqual(Array.from(want.loss));
    expect(Array.from(got.dhs)).toEqual(Array.from(want.dhs));
    expect(Array.from(got.prefill)).toEqual(Array.from(want.prefill));
    expect(Array.from(got.step)).toEqual(Array.from(want.step));
    expect(want.loss[1]).toBeGreaterThan(0);
    expect(want.dhs.some((v) => v !== 0)).toBe(true);
  });
});
