// prompt_encoder.wgsl against its float64 reference: each dense entry point at odd sizes (ReLU on and off, the
// masked input gradient, accumulating or not), the whole encoder's forward and backward chained on the GPU as P-tuning
// runs it; and the reference's backward against finite differences of its forward.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { gradBRef, gradWRef, gradXRef, linearRef, promptEncoderBackwardRef, promptEncoderRef, type PromptEncoderParams } from '../ref/prompt-encoder.ref.ts';
import { mismatches, numericGrad, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { recordDenseForward, recordDenseInputGrad, recordDenseParamGrads } from './prompt-encoder.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const tol = (K: number) => ({ abs: 1e-5 * Math.sqrt(K), rel: 1e-5 });
const add = (x: ArrayLike<number>, y: ArrayLike<number>) => Float64Array.from(x, (v, i) => v + y[i]);

describe('prompt encoder dense layers', () => {
  it.each([
    [1, 1, 1],
    [3, 7, 5],
    [5, 33, 70],
    [20, 65, 17],
  ])('rows=%i K=%i O=%i: forward, weight, bias and input gradients', async (rows, K, O) => {
    const X = randomArray(rows * K, 1);
    const W = randomArray(O * K, 2);
    const bias = randomArray(O, 3);
    const dZ = randomArray(rows * O, 4);
    const H = randomArray(rows * K, 5); // a mask: positive about half the time
    const dW0 = randomArray(O * K, 6);
    const db0 = randomArray(O, 7);
    const dX0 = randomArray(rows * K, 8);
    const s = { rows, K, O };
    const b = { X: upload(e, X), W: upload(e, W), bias: upload(e, bias), dZ: upload(e, dZ), H: upload(e, H) };
    const Y = [zeros(e, rows * O), zeros(e, rows * O)];
    const dW = [upload(e, dW0), upload(e, dW0)];
    const db = [upload(e, db0), upload(e, db0)];
    const dX = [upload(e, dX0), upload(e, dX0), upload(e, dX0)];
    const rec = e.record();
    [false, true].forEach((relu, j) => recordDenseForward(rec, s, { X: b.X, W: b.W, bias: b.bias, Y: Y[j] }, relu));
    [false, true].forEach((acc, j) => recordDenseParamGrads(rec, s, { dZ: b.dZ, X: b.X, dW: dW[j], db: db[j] }, acc));
    recordDenseInputGrad(rec, s, { dZ: b.dZ, W: b.W, dX: dX[0] }, false);
    recordDenseInputGrad(rec, s, { dZ: b.dZ, W: b.W, mask: b.H, dX: dX[1] }, false);
    recordDenseInputGrad(rec, s, { dZ: b.dZ, W: b.W, mask: b.H, dX: dX[2] }, true);
    await rec.submit();
    const got = (buf: GPUBuffer, n: number) => download(e, buf, n);
    expect(mismatches(await got(Y[0], rows * O), linearRef(X, W, bias, rows, K, O, false), tol(K)), 'linear').toEqual([]);
    expect(mismatches(await got(Y[1], rows * O), linearRef(X, W, bias, rows, K, O, true), tol(K)), 'linear + relu').toEqual([]);
    expect(mismatches(await got(dW[0], O * K), gradWRef(dZ, X, rows, K, O), tol(rows)), 'dW').toEqual([]);
    expect(mismatches(await got(dW[1], O * K), add(dW0, gradWRef(dZ, X, rows, K, O)), tol(rows)), 'dW accumulated').toEqual([]);
    expect(mismatches(await got(db[0], O), gradBRef(dZ, rows, O), tol(rows)), 'db').toEqual([]);
    expect(mismatches(await got(db[1], O), add(db0, gradBRef(dZ, rows, O)), tol(rows)), 'db accumulated').toEqual([]);
    expect(mismatches(await got(dX[0], rows * K), gradXRef(dZ, W, rows, K, O), tol(O)), 'dX').toEqual([]);
    expect(mismatches(await got(dX[1], rows * K), gradXRef(dZ, W, rows, K, O, H), tol(O)), 'dX masked').toEqual([]);
    expect(mismatches(await got(dX[2], rows * K), add(dX0, gradXRef(dZ, W, rows, K, O, H)), tol(O)), 'dX masked, accumulated').toEqual([]);
  });

  it('the encoder\'s backward is the derivative of its forward (finite differences on every parameter)', () => {
    const s = { n: 3, C: 5, H: 4 };
    const p: PromptEncoderParams = {
      E: randomArray(s.n * s.C, 1),
      W0: randomArray(s.H * s.C, 2),
      b0: randomArray(s.H, 3),
      W2: randomArray(s.H * s.H, 4),
      b2: randomArray(s.H, 5),
      W4: randomArray(s.C * s.H, 6),
      b4: randomArray(s.C, 7),
    };
    const w = randomArray(s.n * s.C, 8); // loss = Σ w ⊙ P
    const grads = promptEncoderBackwardRef(p, s, w);
    for (const key of Object.keys(p) as (keyof PromptEncoderParams)[]) {
      const loss = (x: Float64Array) => promptEncoderRef({ ...p, [key]: x }, s).P.reduce((t, v, i) => t + v * w[i], 0);
      expect(mismatches(grads[key], numericGrad(loss, p[key], 1e-4), { abs: 1e-6, rel: 1e-5 }), key).toEqual([]);
    }
  });
});
