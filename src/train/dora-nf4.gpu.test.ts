// DoRA over an NF4 base (--quant nf4) against our own NF4 reimplementation, since bitsandbytes (PEFT's NF4) is not
// installable here: the same run — DoRA with dropout on every linear of the Llama fixture, three AdamW steps — once
// over the NF4-quantized model and once over a dense f32 model whose linear weights are that quantization decoded
// (src/gpu/ref/nf4.ref.ts dequantizeNf4). The losses, grad norms and every A, B and magnitude gradient of step 1 and
// step 3 must agree: the NF4 weight norm (dora_nf4.wgsl), the NF4 base products and the DoRA path over them are the
// dense ones over the decoded weight. (The dense DoRA run itself is checked against PEFT in dora-golden.gpu.test.ts.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';
import { decodedNf4Fixture, expectSameRun, NF4_TEST_ROWS, recordRun } from './testing-nf4.ts';

let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'dora-nf4-'));
beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('DoRA over NF4', () => {
  it('trains as DoRA over the decoded weights: losses, grad norms, dA, dB and dm', async () => {
    const config = (quant: 'none' | 'nf4'): TrainConfig => ({
      ...DEFAULT_CONFIG, method: 'dora', quant, targets: ['all-linear'], rank: 4, alpha: 8, dropout: 0.1, lr: 1e-2,
      schedule: 'constant', warmupSteps: 0, batchSize: 2, maxSteps: 3, seed: 7,
    });
    const gradSteps = [1, 3];
    const nf4 = await recordRun(e, join(FIXTURES, 'models', 'llama'), config('nf4'), NF4_TEST_ROWS, gradSteps);
    const dense = await recordRun(e, await decodedNf4Fixture(tmp), config('none'), NF4_TEST_ROWS, gradSteps);
    expectSameRun(nf4, dense, gradSteps);
  });
});
