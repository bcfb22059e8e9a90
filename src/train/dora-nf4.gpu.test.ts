// DoRA over an NF4 base (--quant nf4) against our own NF4 reimplementation, since bitsandbytes (PEFT's NF4) is not
// installable here: the same run — DoRA with dropout on every linear of the Llama fixture, three AdamW steps — once
// over the NF4-quantized model and once over a dense f32 model whose linear weights are that quantization decoded
// (src/gpu/ref/nf4.ref.ts dequantizeNf4). The losses, grad norms and every A, B and magnitude gradient of step 1 and
// step 3 must agree: the NF4 weight norm (dora_nf4.wgsl), the NF4 base products and the DoRA path over them are the
// dense ones over the decoded weight. (The dense DoRA run itself is checked against PEFT in dora-golden.gpu.test.ts.)
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
const tmp = mkdtempSync(join(tmpdir(), 'dora-nf4-'));
beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('DoRA over NF4', () => {
  it('trains as DoRA over the decoded weights: losses, grad norms, dA, dB and dm', async () => {
    const decoded = await decodedNf4Fixture(tmp);
    const rows = [
      { input_ids: Int32Array.from([5, 9, 13, 17, 21, 25, 29, 33, 37]), labels: Int32Array.from([-100, -100, 13, 17, 21, 25, 29, 33, 37]) },
      { input_ids: Int32Array.from([40, 41, 42, 43, 44, 45, 46]), labels: Int32Array.from([-100, 41, 42, 43, 44, 45, 46]) },
    ];
    const config = (quant: 'none' | 'nf4'): TrainConfig => ({
      ...DEFAULT_CONFIG, method: 'dora', quant, targets: ['all-linear'], rank: 4, alpha: 8, dropout: 0.1, lr: 1e-2,
      schedule: 'constant', warmupSteps: 0, batchSize: 2, maxSteps: 3, seed: 7,
    });
    const runs: { losses: number[]; norms: number[]; grads: Float32Array[] }[] = [];
    for (const [folder, quant] of [[join(FIXTURES, 'models', 'llama'), 'nf4'], [decoded, 'none']] as const) {
      const tf = await loadTransformer(e, nodeFolder(folder), kernelChoiceFor('naive'), { dtype: 'f32', quant });
      const trainer = new Trainer({ engine: e, transformer: tf, config: config(quant), train: rows, padId: 0 });
      const run = { losses: [] as number[], norms: [] as number[], grads: [] as Float32Array[] };
      try {
        for (let step = 1; step <= 3; step++) {
          const m = await trainer.trainStep();
          run.losses.push(m.loss);
          run.norms.push(m.gradNorm);
          if (step !== 2) run.grads.push(await readF32(e.device, trainer.method.grads, trainer.method.layout.totalLength));
        }
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
      expect(mismatches(g, dense.grads[i], { abs: 1e-5 * scale, rel: 1e-4 }), `gradients of step ${i === 0 ? 1 : 3}`).toEqual([]);
    });
  });
});
