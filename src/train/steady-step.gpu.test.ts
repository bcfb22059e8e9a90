// The training step's structure, not its numbers: once the first step has sized the workspace, a step over rows of
// any length (up to the run's longest) creates no GPU buffer and no bind group, reads back once, and leaves the
// pool's peak where it was; and a non-finite step changes nothing on the GPU (AdamW's finite guard), so the status
// that is read after the submission can still stop the run at its last good state.
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { readF32, writeBuffer } from '../gpu/buffers.ts';
import { countersSince, snapshotCounters } from '../gpu/counters.ts';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import type { TokenizedRow } from '../data/encode.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';
import { StepProfiler } from '../gpu/profiler.ts';
import { Trainer, TrainingDivergedError } from './trainer.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

/** Rows of lengths 3..maxLen in a seeded order: every batch has another T. */
function variedRows(n: number, maxLen: number, vocab: number): TokenizedRow[] {
  return Array.from({ length: n }, (_, i) => {
    const len = 3 + ((i * 7) % (maxLen - 2));
    const ids = Int32Array.from({ length: len }, (_, t) => 1 + ((i * 13 + t * 5) % (vocab - 1)));
    return { input_ids: ids, labels: ids };
  });
}

const config = (over: Partial<TrainConfig>): TrainConfig => ({
  ...DEFAULT_CONFIG,
  warmupRatio: 0,
  schedule: 'constant',
  rank: 4,
  alpha: 8,
  targets: ['all-linear'],
  lr: 1e-3,
  packing: false,
  ...over,
});

async function trainer(name: string, over: Partial<TrainConfig>, variant: 'naive' | 'blocked4' = 'naive') {
  const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor(variant), { dtype: 'f32', quant: 'none' });
  const rows = variedRows(24, 17, tf.model.config.vocabSize);
  return new Trainer({ engine: e, transformer: tf, config: config(over), train: rows, padId: 0 });
}

describe('a steady-state training step', () => {
  // blocked4: the GPU route (base matmul, the rank-r products split over k, the LM head on the matmul).
  for (const [name, over, variant] of [
    ['gpt2', { batchSize: 3, dropout: 0.1 }, 'naive'],
    ['llama', { batchSize: 2, gradAccum: 2 }, 'naive'],
    ['gpt2', { batchSize: 3, dropout: 0.1 }, 'blocked4'],
  ] as const) {
    it(`${name}, ${variant} kernels: creates no buffer or bind group after step 1, reads back once, keeps the pool's peak flat`, async () => {
      const t = await trainer(name, { ...over, maxSteps: 6 }, variant);
      try {
        await t.trainStep();
        const peak = e.buffers.stats().peakBytes;
        const Ts = new Set<number>();
        for (let i = 0; i < 5; i++) {
          const before = snapshotCounters(e.device);
          const m = await t.trainStep();
          const c = countersSince(e.device, before);
          expect(c.buffersCreated, `step ${m.step}: buffers created`).toBe(0);
          expect(c.bindGroupsCreated, `step ${m.step}: bind groups created`).toBe(0);
          expect(c.readbacks, `step ${m.step}: read-backs`).toBe(1);
          expect(c.submits, `step ${m.step}: submissions`).toBe(1);
          expect(e.buffers.stats().peakBytes, `step ${m.step}: pool peak`).toBe(peak);
          Ts.add(Math.round(m.tokensPerSecond * m.ms)); // processed rows differ per step (another T each time)
          expect(Number.isFinite(m.loss)).toBe(true);
        }
        expect(Ts.size, 'the steps saw batches of different shapes').toBeGreaterThan(1);
      } finally {
        t.dispose();
      }
    });
  }
});

describe('a profiled step', () => {
  it('reports every dispatch by kernel family and layer, the CPU phases, and the same losses as an unprofiled run', async () => {
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', 'gpt2')), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const rows = variedRows(8, 9, tf.model.config.vocabSize);
    const cfg = config({ batchSize: 2, maxSteps: 3 });
    const plain = new Trainer({ engine: e, transformer: tf, config: cfg, train: rows, padId: 0 });
    const want: number[] = [];
    try {
      for (let i = 0; i < 3; i++) want.push((await plain.trainStep()).loss);
    } finally {
      plain.dispose();
    }
    const profiler = new StepProfiler(e);
    const t = new Trainer({ engine: e, transformer: tf, config: cfg, train: rows, padId: 0, profiler });
    try {
      for (let i = 0; i < 3; i++) {
        const m = await t.trainStep();
        expect(m.loss).toBe(want[i]);
        const p = m.profile!;
        expect(p.step).toBe(i + 1);
        expect(p.submits).toBe(1);
        expect(p.readbacks).toBe(1);
        expect(p.passes).toBe(p.dispatches); // a pass per dispatch while profiling
        expect(p.kernels.reduce((n, k) => n + k.calls, 0)).toBe(p.dispatches);
        expect(p.layers.map((l) => l.name)).toEqual(expect.arrayContaining(['b0', 'b1', 'head', 'optimizer']));
        for (const phase of ['record_ms', 'submit_ms', 'wait_ms', 'readback_ms'] as const) expect(p.cpu[phase]).toBeGreaterThanOrEqual(0);
        if (e.gpu.features.has('timestamp-query')) expect(p.gpu_ms!).toBeGreaterThan(0);
        else expect(p.gpu_ms).toBeNull();
        if (i > 0) expect([p.buffers_created, p.bind_groups_created]).toEqual([0, 0]);
      }
      expect(t.history.every((h) => !('profile' in h))).toBe(true);
    } finally {
      t.dispose();
    }
  });
});

describe('the step recorded ahead', () => {
  it('is recorded again when an evaluation between steps replaced workspace buffers: the curve is unchanged', async () => {
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', 'llama')), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const rows = variedRows(12, 9, tf.model.config.vocabSize);
    const longEval = variedRows(4, 30, tf.model.config.vocabSize).map((r) => ({ input_ids: r.input_ids, labels: r.labels }));
    const cfg = config({ batchSize: 3, maxSteps: 5 });
    const plain = new Trainer({ engine: e, transformer: tf, config: cfg, train: rows, padId: 0 });
    const want: number[] = [];
    try {
      for (let i = 0; i < 5; i++) want.push((await plain.trainStep()).loss);
    } finally {
      plain.dispose();
    }
    const t = new Trainer({ engine: e, transformer: tf, config: cfg, train: rows, eval: longEval, padId: 0 });
    const got: number[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        got.push((await t.trainStep()).loss);
        await t.evaluate(); // rows longer than any training row: the workspace grows under the recorded step
      }
    } finally {
      t.dispose();
    }
    expect(got).toEqual(want);
  });
});

describe('a non-finite step', () => {
  it('changes no parameter or moment, stops the run, and a restored checkpoint trains on', async () => {
    const t = await trainer('llama', { batchSize: 4, maxSteps: 8 });
    try {
      await t.trainStep();
      const good = await t.checkpoint();
      // Poison one LoRA B element: the forward's loss (and every gradient) becomes NaN.
      const b = t.lora.layout.segments[t.lora.modules[0].bSegment];
      writeBuffer(e.device, t.lora.params, new Float32Array([NaN]), b.offset * 4);
      await expect(t.trainStep()).rejects.toBeInstanceOf(TrainingDivergedError);
      const n = t.lora.layout.totalLength;
      const params = await readF32(e.device, t.lora.params, n);
      params[b.offset] = good.params[b.offset]; // the poisoned element itself
      expect(params).toEqual(good.params);
      expect(await readF32(e.device, t.lora.m, n)).toEqual(good.m);
      expect(await readF32(e.device, t.lora.v, n)).toEqual(good.v);
      // Still poisoned: the next step is refused as well (the sticky flag), never applied.
      await expect(t.trainStep()).rejects.toBeInstanceOf(TrainingDivergedError);
      expect(await readF32(e.device, t.lora.m, n)).toEqual(good.m);

      t.restore(good);
      const m = await t.trainStep();
      expect(m.step).toBe(2);
      expect(Number.isFinite(m.loss)).toBe(true);
    } finally {
      t.dispose();
    }
  });
});
