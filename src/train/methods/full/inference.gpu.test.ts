// The inference-only attach of a fully fine-tuned model (inference.ts): with a run's trained tensors in place the
// model's eval loss is the trainer's own eval loss after those steps (f32: 1e-5 relative; f16, the trained weights
// rounded to f16: 1e-2), and the undo gives back the loaded model exactly (same loss bit for bit, no buffer left
// allocated). GPT-2 (learned positions, Conv1D weights, biases, LayerNorm), Llama (tied head) and Qwen3 (q/k norms).
// Refusals change nothing: an NF4 model, a tensor of the wrong size, a NaN, a model a full run is training.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Batcher } from '../../../data/batcher.ts';
import type { Engine } from '../../../gpu/engine.ts';
import { testEngine } from '../../../gpu/testing-gpu.ts';
import { kernelChoiceFor } from '../../../model/runtime/linear.ts';
import { loadTransformer } from '../../../model/runtime/load.ts';
import { FIXTURES } from '../../../model/runtime/testing.ts';
import { nodeFolder } from '../../../model/sources/node-file.ts';
import { goldenConfig, goldenRows, type GoldenRun } from '../../testing-golden.ts';
import { evaluateLoss, Trainer } from '../../trainer.ts';
import { attachTrainedModel } from './inference.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const golden = (name: string): GoldenRun => JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_full_${name}.json`), 'utf8'));

describe.each(['gpt2', 'llama', 'qwen3'])('a fully fine-tuned %s for inference', (name) => {
  it('gives the trainer\'s eval loss with the trained tensors in place, and the loaded model back after', async () => {
    const g = golden(name);
    const rows = goldenRows(g);
    const folder = nodeFolder(join(FIXTURES, 'models', name));
    const tf = await loadTransformer(e, folder, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const batcher = () => new Batcher(rows, { batchSize: rows.length, padId: 0, seed: null });
    const base = (await evaluateLoss(e, tf, batcher())).loss;

    const trainer = new Trainer({ engine: e, transformer: tf, config: { ...goldenConfig(g, { method: 'full', targets: [] }), maxSteps: 3 }, train: rows, eval: rows, padId: 0 });
    let trained: number;
    let tensors: Map<string, Float32Array>;
    try {
      for (let i = 0; i < 3; i++) await trainer.trainStep();
      trained = (await trainer.evaluate()).loss;
      tensors = await trainer.trainedTensors();
      // While the run holds the weights, another set is refused.
      expect(() => attachTrainedModel(e, tf.model, tensors)).toThrow(/full fine-tuning run is training/);
    } finally {
      trainer.dispose();
    }
    expect(trained).not.toBeCloseTo(base, 3);

    const liveBefore = e.buffers.stats().liveBytes;
    const detach = attachTrainedModel(e, tf.model, tensors);
    try {
      const loss = (await evaluateLoss(e, tf, batcher())).loss;
      expect(Math.abs(loss - trained)).toBeLessThan(1e-5 * trained);
    } finally {
      detach();
    }
    expect((await evaluateLoss(e, tf, batcher())).loss).toBe(base);
    expect(e.buffers.stats().liveBytes).toBe(liveBefore);

    if (e.gpu.hasF16) {
      const half = await loadTransformer(e, folder, kernelChoiceFor('naive'), { dtype: 'f16', quant: 'none' });
      const undo = attachTrainedModel(e, half.model, tensors);
      try {
        const loss = (await evaluateLoss(e, half, batcher())).loss;
        expect(Math.abs(loss - trained)).toBeLessThan(1e-2 * trained);
      } finally {
        undo();
      }
    }
  });
});

describe('attachTrainedModel refusals', () => {
  it('refuses an NF4 model, a tensor of another size and a NaN, leaving the model as loaded', async () => {
    const g = golden('llama');
    const rows = goldenRows(g);
    const folder = nodeFolder(join(FIXTURES, 'models', 'llama'));
    const tf = await loadTransformer(e, folder, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const batcher = () => new Batcher(rows, { batchSize: rows.length, padId: 0, seed: null });
    const base = (await evaluateLoss(e, tf, batcher())).loss;
    const trainer = new Trainer({ engine: e, transformer: tf, config: { ...goldenConfig(g, { method: 'full', targets: [] }), maxSteps: 1 }, train: rows, padId: 0 });
    const tensors = await trainer.trainedTensors();
    trainer.dispose();

    const short = new Map(tensors);
    const [first, values] = [...short.entries()].at(-1)!;
    short.set(first, values.subarray(1));
    expect(() => attachTrainedModel(e, tf.model, short)).toThrow(new RegExp(`${first.replace(/\./g, '\\.')}: ${values.length - 1} trained values`));
    const nan = new Map(tensors);
    const poisoned = values.slice();
    poisoned[2] = Number.NaN;
    nan.set(first, poisoned);
    expect(() => attachTrainedModel(e, tf.model, nan)).toThrow(/element 2 is NaN/);
    const foreign = new Map(tensors).set('model.layers.99.mlp.up_proj.weight', new Float32Array(4));
    expect(() => attachTrainedModel(e, tf.model, foreign)).toThrow(/not a tensor of the loaded llama model/);
    expect((await evaluateLoss(e, tf, batcher())).loss).toBe(base);

    const nf4 = await loadTransformer(e, folder, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'nf4' });
    expect(() => attachTrainedModel(e, nf4.model, tensors)).toThrow(/NF4/);
  });
});
