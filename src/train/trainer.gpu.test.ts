import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { driverName, testEngine } from '../gpu/testing-gpu.ts';
import type { TokenizedRow } from '../data/encode.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import type { Transformer } from '../model/runtime/transformer.ts';
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';
import { detachLora } from './lora-state.ts';
import { evaluateLoss, Trainer } from './trainer.ts';
import { Batcher } from '../data/batcher.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

/** A learnable task: each row counts up from a random start (id k is followed by k+1), prompt masked. */
function countingRows(n: number, len: number, vocab: number, seed: number): TokenizedRow[] {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
  return Array.from({ length: n }, () => {
    const start = 3 + Math.floor(rnd() * (vocab - len - 4));
    const ids = Int32Array.from({ length: len }, (_, i) => start + i);
    return { input_ids: ids, labels: ids.map((id, i) => (i < 2 ? -100 : id)) };
  });
}

async function load(name: string): Promise<Transformer> {
  return loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
}

const config = (over: Partial<TrainConfig>): TrainConfig => ({ ...DEFAULT_CONFIG, warmupRatio: 0, schedule: 'constant', ...over });

async function trainLosses(tf: Transformer, rows: TokenizedRow[], cfg: TrainConfig, steps: number, trainer?: Trainer) {
  const t = trainer ?? new Trainer({ engine: e, transformer: tf, config: cfg, train: rows, padId: 0 });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push((await t.trainStep()).loss);
  return { t, losses };
}

// Whole training runs are integration tests: they run once per suite, on the faster CPU driver (or a real GPU);
// SwiftShader is ~5× slower and the kernels' f32 paths they use are covered on it by the kernel tests.
const longRuns = driverName === 'swiftshader' ? it.skip : it;

describe.each(['gpt2', 'llama', 'mistral', 'qwen2', 'qwen3'])('LoRA training on %s', (name) => {
  longRuns('a learnable synthetic dataset loses at least 20% of its loss in 60 steps', async () => {
    const tf = await load(name);
    const rows = countingRows(16, 12, tf.model.config.vocabSize, 7);
    const { t, losses } = await trainLosses(tf, rows, config({ rank: 8, alpha: 16, targets: ['all-linear'], lr: 1e-2, batchSize: 8, maxSteps: 60 }), 60);
    detachLora(e, t.lora);
    expect(losses.every(Number.isFinite)).toBe(true);
    const first = losses[0];
    const last = losses.slice(-5).reduce((a, b) => a + b, 0) / 5;
    expect(last, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`).toBeLessThan(0.8 * first);
  });
});

describe('training invariants (llama fixture)', () => {
  it('B = 0 at step 0: the adapted model is the base model exactly', async () => {
    const tf = await load('llama');
    const rows = countingRows(6, 10, tf.model.config.vocabSize, 3);
    const batcher = new Batcher(rows, { batchSize: 3, padId: 0, seed: null });
    const base = await evaluateLoss(e, tf, batcher);
    const t = new Trainer({ engine: e, transformer: tf, config: config({ targets: ['all-linear'] }), train: rows, padId: 0 });
    const adapted = await evaluateLoss(e, tf, batcher);
    detachLora(e, t.lora);
    expect(adapted.tokens).toBe(base.tokens);
    expect(adapted.loss).toBe(base.loss);
  });

  it('the same seed gives the same curve; another seed another one', async () => {
    const tf = await load('llama');
    const rows = countingRows(12, 10, tf.model.config.vocabSize, 5);
    const cfg = config({ lr: 5e-3, batchSize: 4, dropout: 0.1, maxSteps: 5 });
    const a = await trainLosses(tf, rows, cfg, 5);
    detachLora(e, a.t.lora);
    const b = await trainLosses(tf, rows, cfg, 5);
    detachLora(e, b.t.lora);
    const c = await trainLosses(tf, rows, { ...cfg, seed: 43 }, 5);
    detachLora(e, c.t.lora);
    expect(b.losses).toEqual(a.losses);
    expect(c.losses).not.toEqual(a.losses);
  });

  it('a run resumed from a checkpoint continues the same curve', async () => {
    const tf = await load('llama');
    const rows = countingRows(10, 9, tf.model.config.vocabSize, 9);
    const cfg = config({ lr: 5e-3, batchSize: 3, dropout: 0.05, maxSteps: 8, schedule: 'cosine', warmupSteps: 2 });
    const straight = await trainLosses(tf, rows, cfg, 8);
    detachLora(e, straight.t.lora);
    const first = await trainLosses(tf, rows, cfg, 4);
    const ck = await first.t.checkpoint();
    detachLora(e, first.t.lora);
    const resumed = new Trainer({ engine: e, transformer: tf, config: cfg, train: rows, padId: 0 });
    // The same segment names with other sizes (a corrupted or foreign record) are refused before anything is written.
    expect(() => resumed.restore({ ...ck, m: ck.m.subarray(1) })).toThrow(/checkpoint's m holds \d+ values; this run's tensors need \d+/);
    resumed.restore(ck);
    const rest = await trainLosses(tf, rows, cfg, 4, resumed);
    detachLora(e, resumed.lora);
    expect([...first.losses, ...rest.losses]).toEqual(straight.losses);
    expect(resumed.history.map((h) => h.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('gradient accumulation is token-weighted: 2 micro-batches of 2 rows step like 1 batch of 4', async () => {
    const tf = await load('llama');
    // Rows of different lengths, so a mean of per-batch means would differ from the token-weighted mean.
    const rows = [...countingRows(2, 6, tf.model.config.vocabSize, 1), ...countingRows(2, 11, tf.model.config.vocabSize, 2)];
    const whole = await trainLosses(tf, rows, config({ lr: 5e-3, batchSize: 4, maxSteps: 3, seed: 1 }), 3);
    detachLora(e, whole.t.lora);
    const split = await trainLosses(tf, rows, config({ lr: 5e-3, batchSize: 2, gradAccum: 2, maxSteps: 3, seed: 1 }), 3);
    detachLora(e, split.t.lora);
    for (let i = 0; i < 3; i++) expect(Math.abs(split.losses[i] - whole.losses[i])).toBeLessThan(2e-6 * whole.losses[i]);
  });

  it('packing changes nothing but the layout: the same loss over the same rows', async () => {
    const tf = await load('llama');
    const rows = [...countingRows(3, 5, tf.model.config.vocabSize, 11), ...countingRows(3, 9, tf.model.config.vocabSize, 12)];
    // One micro-batch holds every row (packed: every block), so the first step's loss covers the same positions.
    const plain = await trainLosses(tf, rows, config({ batchSize: 6, maxSteps: 1, maxLength: 32 }), 1);
    detachLora(e, plain.t.lora);
    const packed = await trainLosses(tf, rows, config({ batchSize: 6, maxSteps: 1, maxLength: 32, packing: true }), 1);
    expect(packed.t.batcher.rows.length).toBeLessThan(rows.length); // it did pack
    detachLora(e, packed.t.lora);
    expect(Math.abs(packed.losses[0] - plain.losses[0])).toBeLessThan(2e-6 * plain.losses[0]);
  });
});
