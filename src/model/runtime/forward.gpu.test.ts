// Forward parity: the engine's logits and loss on every fixture match transformers' own model classes (goldens in
// float64 from scripts/golden_models.py) within 1e-4 relative.
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readF32 } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { recordLogits } from '../../gpu/kernels/xent.ts';
import { mismatches } from '../../gpu/ref/testing.ts';
import { testEngine } from '../../gpu/testing-gpu.ts';
import { nodeFolder } from '../sources/node-file.ts';
import { kernelChoiceFor } from './linear.ts';
import { loadTransformer } from './load.ts';
import { FIXTURES, packRows, readGolden } from './testing.ts';
import { recordForward, releaseActs, releaseBatch, uploadBatch } from './transformer.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const FP32_FIXTURES = ['gpt2', 'llama', 'llama-rope-scaling', 'llama-sharded', 'mistral', 'qwen3'];
const F16_FIXTURES = ['gpt2-f16', 'qwen2'];

async function logitsAndLoss(name: string, dtype: 'f32' | 'f16') {
  const golden = readGolden(name);
  const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype, quant: 'none' });
  const batch = uploadBatch(e, packRows(golden.rows));
  const rec = e.record('forward-test');
  const acts = recordForward(rec, e, tf, batch, true);
  const V = tf.model.config.vocabSize;
  const logits = e.buffers.acquire(batch.T * V * 4, undefined, 'logits');
  recordLogits(rec, { T: batch.T, C: tf.model.config.hiddenSize, V }, { hs: acts.hs, Wh: tf.model.head, logits }, { elem: tf.model.dtype });
  await rec.submit();
  const got = await readF32(e.device, logits, batch.T * V);
  const [lossSum, count] = await readF32(e.device, acts.total, 2);
  releaseActs(e, acts);
  releaseBatch(e, batch);
  return { golden, got, lossSum, count };
}

describe.each(FP32_FIXTURES)('forward parity with transformers: %s', (name) => {
  it('logits and token-weighted loss within 1e-4 relative', async () => {
    const { golden, got, lossSum, count } = await logitsAndLoss(name, 'f32');
    const want = golden.rows.flatMap((r) => r.logits.flat());
    expect(mismatches(got, want, { abs: 1e-4, rel: 1e-4 })).toEqual([]);
    expect(count).toBe(golden.tokens);
    expect(Math.abs(lossSum / count - golden.loss) / golden.loss).toBeLessThan(1e-4);
  });
});

describe.each(F16_FIXTURES)('forward parity with f16 weights: %s', (name) => {
  it('f16 storage where the adapter has shader-f16, else the same weights widened to f32', async () => {
    // The checkpoint is f16: widening to f32 is exact, so the f32 path must match as tightly as an f32 model;
    // the f16 path reads the same values and differs only by f32 accumulation order.
    const dtype = e.gpu.hasF16 ? 'f16' : 'f32';
    const { golden, got, lossSum, count } = await logitsAndLoss(name, dtype);
    const want = golden.rows.flatMap((r) => r.logits.flat());
    expect(mismatches(got, want, { abs: 1e-4, rel: 1e-4 })).toEqual([]);
    expect(count).toBe(golden.tokens);
    expect(Math.abs(lossSum / count - golden.loss) / golden.loss).toBeLessThan(1e-4);
  });
});

describe('unsupported architectures are refused by name, not run wrongly', () => {
  it('an activation the MLP kernels do not implement', async () => {
    const { readFile } = await import('node:fs/promises');
    const { memoryFolder } = await import('../sources/memory.ts');
    const dir = join(FIXTURES, 'models', 'gpt2');
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    const folder = memoryFolder(
      {
        'config.json': JSON.stringify({ ...config, activation_function: 'relu' }),
        'model.safetensors': new Uint8Array(await readFile(join(dir, 'model.safetensors'))),
      },
      'gpt2-relu',
    );
    await expect(loadTransformer(e, folder, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' })).rejects.toThrow(
      /gpt2-relu: a plain MLP with activation "relu" is not supported by the engine \(supported: gelu_new, gelu_pytorch_tanh\)/,
    );
  });
});
