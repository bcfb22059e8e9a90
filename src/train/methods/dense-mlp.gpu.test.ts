// The dense MLP recorder (dense-mlp.ts) on a tiny odd-sized case with a mix of activations neither runtime uses
// (tanh into ReLU into none): the output against a float64 forward, every gradient against float64 finite
// differences of that forward, and the accumulate contract (a second accumulating backward doubles every gradient
// exactly, so the intermediate gradients are overwritten, not added to). Each dense kernel against its reference, and
// P-tuning's and prefix tuning's own chains, are src/gpu/kernels/prompt-encoder.gpu.test.ts's.
import { beforeAll, describe, expect, it } from 'vitest';
import { writeBuffer } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { linearRef } from '../../gpu/ref/prompt-encoder.ref.ts';
import { mismatches, numericGrad, randomArray } from '../../gpu/ref/testing.ts';
import { download, testEngine, upload, zeros } from '../../gpu/testing-gpu.ts';
import { createDenseMlp, type DenseLayer } from './dense-mlp.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const ROWS = 3;
const WIDTHS = [5, 7, 4, 6]; // input, two hidden, output
const ACTS: DenseLayer['activation'][] = ['tanh', 'relu', 'none'];

/** The MLP in float64: the output (ROWS, WIDTHS[3]) from the input and each layer's [W, b]. */
function mlpRef(X: ArrayLike<number>, params: ArrayLike<number>[][]): Float64Array {
  let y: ArrayLike<number> = X;
  params.forEach(([W, b], i) => {
    const act = ACTS[i] === 'none' ? false : ACTS[i];
    y = linearRef(y, W, b, ROWS, WIDTHS[i], WIDTHS[i + 1], act);
  });
  return Float64Array.from(y);
}

describe('dense MLP recorder', () => {
  it('tanh → ReLU → none (rows 3, widths 5 → 7 → 4 → 6): output and every gradient against float64 finite differences; accumulating doubles them', async () => {
    const X = randomArray(ROWS * WIDTHS[0], 1);
    const params = ACTS.map((_, i) => [randomArray(WIDTHS[i + 1] * WIDTHS[i], 10 + i, 0.8), randomArray(WIDTHS[i + 1], 20 + i, 0.5)]);
    const dOut = randomArray(ROWS * WIDTHS[3], 2); // loss = Σ dOut ⊙ output
    // Gradients start as garbage: a non-accumulating backward must overwrite them.
    const garbage = (n: number, seed: number) => upload(e, randomArray(n, seed, 5));
    const dX = garbage(X.length, 3);
    const grads = params.map(([W, b], i) => [garbage(W.length, 30 + i), garbage(b.length, 40 + i)]);
    const layers: DenseLayer[] = ACTS.map((activation, i) => ({
      in: WIDTHS[i],
      out: WIDTHS[i + 1],
      weight: upload(e, params[i][0]),
      bias: upload(e, params[i][1]),
      dWeight: grads[i][0],
      dBias: grads[i][1],
      activation,
    }));
    const mlp = createDenseMlp(e, { label: 'test-mlp', rows: ROWS, input: upload(e, X), dInput: dX, layers });
    try {
      let rec = e.record();
      mlp.recordForward(rec);
      await rec.submit();
      // The caller writes dOutput, as the prefix's and the virtual tokens' backwards do.
      writeBuffer(e.device, mlp.dOutput, dOut);
      rec = e.record();
      mlp.recordBackward(rec, false);
      await rec.submit();

      const tol = { abs: 1e-5, rel: 1e-5 };
      expect(mismatches(await download(e, mlp.output, ROWS * WIDTHS[3]), mlpRef(X, params), tol), 'output').toEqual([]);
      const loss = (x: ArrayLike<number>, p: ArrayLike<number>[][]) => mlpRef(x, p).reduce((s, v, i) => s + v * dOut[i], 0);
      const gradTol = (want: Float64Array) => ({ abs: 1e-5 * Math.max(...Array.from(want, Math.abs), 1e-12), rel: 1e-5 });
      const got: Float32Array[] = [];
      const check = async (name: string, buf: GPUBuffer, want: Float64Array) => {
        const g = await download(e, buf, want.length);
        got.push(g);
        expect(mismatches(g, want, gradTol(want)), name).toEqual([]);
      };
      for (let i = 0; i < ACTS.length; i++) {
        for (const j of [0, 1]) {
          const perturbed = (v: Float64Array) => params.map((layer, li) => layer.map((t, tj) => (li === i && tj === j ? v : t)));
          await check(`layer ${i} ${j ? 'dBias' : 'dWeight'}`, grads[i][j], numericGrad((v) => loss(X, perturbed(v)), params[i][j], 1e-4));
        }
      }
      await check('dInput', dX, numericGrad((v) => loss(v, params), X, 1e-4));

      rec = e.record();
      mlp.recordBackward(rec, true);
      await rec.submit();
      const again = [...grads.flat(), dX];
      for (let k = 0; k < again.length; k++) {
        const twice = await download(e, again[k], got[k].length);
        expect(Array.from(twice), `gradient ${k} after an accumulating backward`).toEqual(Array.from(got[k], (v) => 2 * v));
      }
    } finally {
      mlp.release();
    }
  });

  it('refuses layers that do not chain, and an activation on the last layer (its gradient is dOutput itself)', () => {
    const b = zeros(e, 4); // never bound: the refusal comes before anything is allocated or recorded
    const layer = (inF: number, outF: number, activation: DenseLayer['activation']): DenseLayer => ({ in: inF, out: outF, weight: b, bias: b, dWeight: b, dBias: b, activation });
    const make = (layers: DenseLayer[]) => () => createDenseMlp(e, { label: 'bad', rows: 1, input: b, dInput: b, layers });
    expect(make([])).toThrow(/no layers/);
    expect(make([layer(3, 4, 'relu'), layer(5, 2, 'none')])).toThrow(/layers\[1\]\.in is 5, but layers\[0\]\.out is 4/);
    expect(make([layer(3, 4, 'relu'), layer(4, 2, 'tanh')])).toThrow(/last layer's activation must be 'none' \(got 'tanh'\)/);
  });
});
