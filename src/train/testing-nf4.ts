// What the NF4 training tests (dora-nf4, adalora-nf4, qlora-dequant) share: the Llama fixture with every linear
// weight replaced by its NF4 quantization decoded (src/gpu/ref/nf4.ref.ts), so a dense run over it is the reference of
// a run over the NF4-quantized fixture (bitsandbytes, PEFT's NF4, is not installable here); two rows of mixed prompt
// and answer tokens; and a few training steps recorded for comparison. Test-only.
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { readF32 } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import { dequantizeNf4, quantizeNf4 } from '../gpu/ref/nf4.ref.ts';
import { mismatches } from '../gpu/ref/testing.ts';
import type { TokenizedRow } from '../data/encode.ts';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor, type KernelChoice } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import type { TrainConfig } from './config.ts';
import { Trainer } from './trainer.ts';

/** Two rows of the Llama fixture's vocabulary, the first tokens of each masked as a prompt. */
export const NF4_TEST_ROWS: TokenizedRow[] = [
  { input_ids: Int32Array.from([5, 9, 13, 17, 21, 25, 29, 33, 37]), labels: Int32Array.from([-100, -100, 13, 17, 21, 25, 29, 33, 37]) },
  { input_ids: Int32Array.from([40, 41, 42, 43, 44, 45, 46]), labels: Int32Array.from([-100, 41, 42, 43, 44, 45, 46]) },
];

/** What a run of a few steps gave: every step's loss and grad norm, the raw gradients after the steps asked for, and
 *  the trained tensors at the end. */
export interface RecordedRun {
  losses: number[];
  norms: number[];
  grads: Float32Array[];
  tensors: Map<string, Float32Array>;
}

/** `config.maxSteps` steps of `config` over `rows` on the model in `folder` (loaded with config.quant), with the
 *  gradients read after each step in `gradSteps`. */
export async function recordRun(
  e: Engine,
  folder: string,
  config: TrainConfig,
  rows: readonly TokenizedRow[],
  gradSteps: readonly number[],
  kernels: KernelChoice = kernelChoiceFor('naive'),
): Promise<RecordedRun> {
  const tf = await loadTransformer(e, nodeFolder(folder), kernels, { dtype: 'f32', quant: config.quant });
  const trainer = new Trainer({ engine: e, transformer: tf, config, train: [...rows], padId: 0 });
  const run: RecordedRun = { losses: [], norms: [], grads: [], tensors: new Map() };
  try {
    for (let step = 1; step <= config.maxSteps!; step++) {
      const m = await trainer.trainStep();
      run.losses.push(m.loss);
      run.norms.push(m.gradNorm);
      if (gradSteps.includes(step)) run.grads.push(await readF32(e.device, trainer.method.grads, trainer.method.layout.totalLength));
    }
    run.tensors = await trainer.trainedTensors();
  } finally {
    trainer.dispose();
  }
  return run;
}

/** A run over NF4 weights against one over their decoded values (or another route over the same weights): losses within
 *  1e-5, grad norms within 1e-4, each gradient within 1e-4 relative (1e-5 of its largest value absolute); `exact`: the
 *  same bits everywhere. */
export function expectSameRun(got: RecordedRun, want: RecordedRun, gradSteps: readonly number[], exact = false): void {
  const tol = (rel: number, abs = 0) => (exact ? { abs: 0, rel: 0 } : { abs, rel });
  expect(mismatches(got.losses, want.losses, tol(1e-5)), 'losses').toEqual([]);
  expect(mismatches(got.norms, want.norms, tol(1e-4)), 'grad norms').toEqual([]);
  got.grads.forEach((g, i) => {
    const scale = Math.max(...want.grads[i].map(Math.abs));
    expect(mismatches(g, want.grads[i], tol(1e-4, 1e-5 * scale)), `gradients after step ${gradSteps[i]}`).toEqual([]);
  });
}

/** The Llama fixture with every linear weight (…_proj.weight, [out, in]) replaced by its NF4 quantization decoded,
 *  written under `tmp`. */
export async function decodedNf4Fixture(tmp: string): Promise<string> {
  const src = join(FIXTURES, 'models', 'llama');
  const dir = join(tmp, 'llama-nf4-decoded');
  mkdirSync(dir);
  for (const f of readdirSync(src)) if (f !== 'model.safetensors') copyFileSync(join(src, f), join(dir, f));
  const file = await SafetensorsFile.open((await nodeFolder(src).open('model.safetensors'))!);
  const out = new Map<string, TensorToWrite>();
  let linears = 0;
  for (const name of file.names()) {
    const data = await file.readTensor(name, 'f32');
    const shape = file.info(name).shape;
    const decoded = /_proj\.weight$/.test(name) ? (linears++, dequantizeNf4(quantizeNf4(data, { doubleQuant: false }))) : data;
    out.set(name, { dtype: 'F32', shape, data: Float32Array.from(decoded) });
  }
  await file.close();
  expect(linears).toBeGreaterThan(0);
  writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(out, { format: 'pt' }));
  return dir;
}
