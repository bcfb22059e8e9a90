// The merged model is the adapted model: logits of the checkpoint that mergeModel writes (W + s·B·A folded in,
// Conv1D-aware) equal those of the base model with the adapter attached — to f32 rounding when merged in f32, and
// to the f16 rounding of every weight when merged in f16 (the default export).
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readF32 } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import { recordLogits } from '../gpu/kernels/xent.ts';
import { mismatches, randomArray } from '../gpu/ref/testing.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { attachAdapter } from '../cli/eval.ts';
import { readModelConfig } from '../model/load.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES, packRows, readGolden } from '../model/runtime/testing.ts';
import { recordForward, releaseActs, releaseBatch, uploadBatch, type Transformer } from '../model/runtime/transformer.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { mergeModel, readWhole } from './merge.ts';
import { importAdapter } from './peft.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

async function logits(tf: Transformer, rows: { input_ids: number[] }[]): Promise<Float32Array> {
  const batch = uploadBatch(e, packRows(rows));
  const rec = e.record('logits');
  const acts = recordForward(rec, e, tf, batch, true);
  const V = tf.model.config.vocabSize;
  const out = e.buffers.acquire(batch.T * V * 4);
  recordLogits(rec, { T: batch.T, C: tf.model.config.hiddenSize, V }, { hs: acts.hs, Wh: tf.model.head, logits: out }, { elem: tf.model.dtype });
  await rec.submit();
  const result = await readF32(e.device, out, batch.T * V);
  releaseActs(e, acts);
  releaseBatch(e, batch);
  e.buffers.release(out);
  return result;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe.each(['gpt2', 'llama'])('merge: %s', (name) => {
  it('merged-model logits equal adapter logits', async () => {
    const base = nodeFolder(join(FIXTURES, 'models', name));
    const config = await readModelConfig(base);
    // PEFT's own adapter for this fixture, with large random A and B so the adapter moves the logits a lot.
    const adapter = await importAdapter(nodeFolder(join(FIXTURES, 'golden', `train_${name}_adapter`)), config);
    adapter.modules.forEach((m, i) => {
      m.A.set(randomArray(m.A.length, 100 + i, 1));
      m.B.set(randomArray(m.B.length, 200 + i, 1));
    });
    const rows = readGolden(name).rows;

    const tf = await loadTransformer(e, base, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const plain = await logits(tf, rows);
    const detach = attachAdapter(e, tf.model, adapter);
    const adapted = await logits(tf, rows);
    detach();

    const mergedLogits = async (dtype: 'f16' | 'f32') => {
      const merged = await mergeModel(base, adapter, undefined, dtype);
      const files: Record<string, Uint8Array> = {};
      for (const f of merged.files) files[f.path] = await readWhole(f);
      await merged.close();
      const folder = memoryFolder(files, `${name}-merged-${dtype}`);
      return logits(await loadTransformer(e, folder, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' }), rows);
    };

    // f32: only the order of float operations differs (W + s·BA summed before, not after, the matmul): within the
    // 1e-4 the forward-parity tests hold the engine to against transformers.
    const exact = { abs: 1e-4, rel: 1e-4 };
    expect(mismatches(await mergedLogits('f32'), adapted, exact)).toEqual([]);
    // The adapter moves the logits by far more than the f32 tolerance, so that comparison is not vacuous…
    const adapterEffect = maxAbsDiff(adapted, plain);
    expect(adapterEffect).toBeGreaterThan(100 * exact.abs);
    // …and the f16 export, whose every weight is rounded to 11 bits, stays within 5% of that effect.
    expect(maxAbsDiff(await mergedLogits('f16'), adapted)).toBeLessThan(0.05 * adapterEffect);
  });
});
