// AdaLoRA over an NF4 base (--quant nf4) against our own NF4 reimplementation, since bitsandbytes (PEFT's NF4) is not
// installable here: the same run — AdaLoRA with dropout on every linear of the Llama fixture, five AdamW steps with a
// schedule that masks (init_r 4 → target_r 2: budget steps 2–4, the final pattern at 5) — once over the NF4-quantized
// model and once over a dense f32 model whose linear weights are that quantization decoded. The losses (regulariser
// included), grad norms, the gradients of steps 1 and 5 and the final rank masks must agree: LoRA's NF4 kernels run
// A_eff = diag(E)·A unchanged. (The dense run itself is checked against PEFT in adalora-golden.gpu.test.ts.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';
import { decodedNf4Fixture, expectSameRun, NF4_TEST_ROWS, recordRun, type RecordedRun } from './testing-nf4.ts';

let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'adalora-nf4-'));
beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every module's rank mask at the end of the run, in order. */
const masks = (run: RecordedRun) => [...run.tensors].filter(([name]) => name.endsWith('.adalora_mask')).flatMap(([, v]) => [...v]);

describe('AdaLoRA over NF4', () => {
  it('trains as AdaLoRA over the decoded weights: losses, grad norms, gradients and rank masks', async () => {
    const config = (quant: 'none' | 'nf4'): TrainConfig => ({
      ...DEFAULT_CONFIG, method: 'adalora', quant, targets: ['all-linear'], initR: 4, targetR: 2, tinit: 1, tfinal: 1, deltaT: 1, alpha: 8,
      dropout: 0.1, lr: 1e-2, schedule: 'constant', warmupSteps: 0, batchSize: 2, maxSteps: 5, seed: 7,
    });
    const gradSteps = [1, 5];
    const nf4 = await recordRun(e, join(FIXTURES, 'models', 'llama'), config('nf4'), NF4_TEST_ROWS, gradSteps);
    const dense = await recordRun(e, await decodedNf4Fixture(tmp), config('none'), NF4_TEST_ROWS, gradSteps);
    expectSameRun(nf4, dense, gradSteps);
    // The budget reached target_r per module on average, the same triplets in both.
    expect(masks(nf4).reduce((a, b) => a + b, 0)).toBe(masks(nf4).length / 2);
    expect(masks(nf4)).toEqual(masks(dense));
  });
});
