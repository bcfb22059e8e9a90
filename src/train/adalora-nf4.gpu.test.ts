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
import { readF32 } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import { mismatches } from '../gpu/ref/testing.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';
import { decodedNf4Fixture } from './testing-nf4.ts';
import { Trainer } from './trainer.ts';

let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'adalora-nf4-'));
beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('AdaLoRA over NF4', () => {
  it('trains as AdaLoRA over the decoded weights: losses, grad norms, gradients and rank masks', async () => {
    const decoded = await decodedNf4Fixture(tmp);
    const rows = [
      { input_ids: Int32Array.from([5, 9, 13, 17, 21, 25, 29, 33, 37]), labels: Int32Array.from([-100, -100, 13, 17, 21, 25, 29, 33, 37]) },
      { input_ids: Int32Array.from([40, 41, 42, 43, 44, 45, 46]), labels: Int32Array.from([-100, 41, 42, 43, 44, 45, 46]) },
    ];
    const config = (quant: 'none' | 'nf4'): TrainConfig => ({
      ...DEFAULT_CONFIG, method: 'adalora', quant, targets: ['all-linear'], initR: 4, targetR: 2, tinit: 1, tfinal: 1, deltaT: 1, alpha: 8,
      dropout: 0.1, lr: 1e-2, schedule: 'constant', warmupSteps: 0, batchSize: 2, maxSteps: 5, seed: 7,
    });
    const runs: { losses: number[]; norms: number[]; grads: Float32Array[]; masks: number[] }[] = [];
    for (const [folder, quant] of [[join(FIXTURES, 'models', 'llama'), 'nf4'], [decoded, 'none']] as const) {
      const tf = await loadTransformer(e, nodeFolder(folder), kernelChoiceFor('naive'), { dtype: 'f32', quant });
      const trainer = new Trainer({ engine: e, transformer: tf, config: config(quant), train: rows, padId: 0 });
      const run = { losses: [] as number[], norms: [] as number[], grads: [] as Float32Array[], masks: [] as number[] };
      try {
        for (let step = 1; step <= 5; step++) {
          const m = await trainer.trainStep();
          run.losses.push(m.loss);
          run.norms.push(m.gradNorm);
          if (step === 1 || step === 5) run.grads.push(await readF32(e.device, trainer.method.grads, trainer.method.layout.totalLength));
        }
        const t = await trainer.trainedTensors();
        run.masks = [...t].filter(([name]) => name.endsWith('.adalora_mask')).flatMap(([, v]) => [...v]);
      } finally {
        trainer.dispose();
      }
      runs.push(run);
    }
    const [nf4, dense] = runs;
    expect(mismatches(nf4.losses, dense.losses, { abs: 0, rel: 1e-5 }), 'losses').toEqual([]);
    expect(mismatches(nf4.norms, dense.norms, { abs: 0, rel: 1e-4 }), 'grad norms').toEqual([]);
    nf4.grads.forEach((g, i) => {
      const scale = Math.max(...dense.grads[i].map(Math.abs));
      expect(mismatches(g, dense.grads[i], { abs: 1e-5 * scale, rel: 1e-4 }), `gradients of step ${i === 0 ? 1 : 5}`).toEqual([]);
    });
    // The budget reached target_r per module on average, the same triplets in both.
    expect(nf4.masks.reduce((a, b) => a + b, 0)).toBe(nf4.masks.length / 2);
    expect(nf4.masks).toEqual(dense.masks);
  });
});
