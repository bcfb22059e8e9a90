// QLoRA's dequant route inside a training run (matmul_nf4.ts, linear.ts): with the NF4 variant `dequant`, every base
// product of a step's micro-batch of ≥ NF4_DEQUANT_MIN_ROWS rows decodes its weight into the workspace's one shared
// scratch and runs the dense kernel. Against the fused kernel over the same NF4 weights: the same bits for every loss,
// grad norm and gradient, with dropout (its mask regenerated in the backward) — and, once step 1 has sized the
// scratch, steps that create no buffer and no bind group (the steady state of steady-step.gpu.test.ts).
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { countersSince, snapshotCounters } from '../gpu/counters.ts';
import type { Engine } from '../gpu/engine.ts';
import { NF4_DEQUANT_MIN_ROWS } from '../gpu/kernels/matmul_nf4.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import type { TokenizedRow } from '../data/encode.ts';
import { kernelChoiceFor, type KernelChoice } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';
import { expectSameRun, recordRun } from './testing-nf4.ts';
import { Trainer } from './trainer.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const LLAMA = join(FIXTURES, 'models', 'llama');
// 4 rows of 70 tokens: one micro-batch of 280 rows, past the route's threshold.
const ROWS: TokenizedRow[] = Array.from({ length: 4 }, (_, r) => {
  const ids = Int32Array.from({ length: 70 }, (_, t) => 1 + ((r * 31 + t * 7) % 120));
  return { input_ids: ids, labels: ids };
});
const config: TrainConfig = {
  ...DEFAULT_CONFIG, method: 'lora', quant: 'nf4', targets: ['all-linear'], rank: 4, alpha: 8, dropout: 0.1, lr: 1e-2,
  schedule: 'constant', warmupSteps: 0, batchSize: 4, maxSteps: 3, seed: 3,
};
const dequantKernels: KernelChoice = { ...kernelChoiceFor('naive'), nf4: 'dequant' };

describe('QLoRA on the dequant route', () => {
  it('trains to the fused kernel\'s bits: losses, grad norms, gradients', async () => {
    expect(ROWS.reduce((n, r) => n + r.input_ids.length, 0)).toBeGreaterThanOrEqual(NF4_DEQUANT_MIN_ROWS);
    const gradSteps = [1, 3];
    const fused = await recordRun(e, LLAMA, config, ROWS, gradSteps);
    const dequant = await recordRun(e, LLAMA, config, ROWS, gradSteps, dequantKernels);
    expectSameRun(dequant, fused, gradSteps, true);
  });

  it('decodes into one scratch: after step 1, no buffer or bind group is created; every NF4 product decodes first', async () => {
    /** Steps 2 and 3's API counters for a run with `kernels`. */
    const steadySteps = async (kernels: KernelChoice) => {
      const tf = await loadTransformer(e, nodeFolder(LLAMA), kernels, { dtype: 'f32', quant: 'nf4' });
      const trainer = new Trainer({ engine: e, transformer: tf, config: { ...config, maxSteps: 4 }, train: ROWS, padId: 0 });
      try {
        await trainer.trainStep();
        const steps = [];
        for (let i = 0; i < 2; i++) {
          const before = snapshotCounters(e.device);
          await trainer.trainStep();
          steps.push(countersSince(e.device, before));
        }
        return steps;
      } finally {
        trainer.dispose();
      }
    };
    const fused = await steadySteps(kernelChoiceFor('naive'));
    const dequant = await steadySteps(dequantKernels);
    for (const c of dequant) {
      expect(c.buffersCreated, 'buffers created').toBe(0);
      expect(c.bindGroupsCreated, 'bind groups created').toBe(0);
    }
    // One decode ahead of each base product: the forward's 14 (2 blocks × 7 linears) and the input gradients'.
    expect(dequant[1].dispatches - fused[1].dispatches).toBeGreaterThanOrEqual(14);
  });
});
