// prompt_encoder.wgsl against its float64 reference: each dense entry point at odd sizes (ReLU on and off, the
// masked input gradient, accumulating or not), the whole encoder's forward and backward chained on the GPU as P-tuning
// runs it (the reference's backward against finite differences: ref/prompt-encoder.ref.test.ts).
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import {
  gradBRef,
  gradWRef,
  gradXRef,
  linearRef,
  prefixEncoderBackwardRef,
  prefixEncoderRef,
  promptEncoderBackwardRef,
  promptEncoderRef,
} from '../ref/prompt-encoder.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
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

  it('chained as P-tuning runs it (n 5, C 33, H 17): P, and every parameter\'s gradient from dP', async () => {
    const s = { n: 5, C: 33, H: 17 };
    const host = {
      E: randomArray(s.n * s.C, 11), W0: randomArray(s.H * s.C, 12, 0.3), b0: randomArray(s.H, 13), W2: randomArray(s.H * s.H, 14, 0.3),
      b2: randomArray(s.H, 15), W4: randomArray(s.C * s.H, 16, 0.3), b4: randomArray(s.C, 17),
    };
    const dPhost = randomArray(s.n * s.C, 18);
    const p = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, upload(e, v)])) as Record<keyof typeof host, GPUBuffer>;
    const g = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, zeros(e, v.length)])) as Record<keyof typeof host, GPUBuffer>;
    const [h1, h2, P, dz2, dz1] = [zeros(e, s.n * s.H), zeros(e, s.n * s.H), zeros(e, s.n * s.C), zeros(e, s.n * s.H), zeros(e, s.n * s.H)];
    const dP = upload(e, dPhost);
    const rec = e.record();
    recordDenseForward(rec, { rows: s.n, K: s.C, O: s.H }, { X: p.E, W: p.W0, bias: p.b0, Y: h1 }, true);
    recordDenseForward(rec, { rows: s.n, K: s.H, O: s.H }, { X: h1, W: p.W2, bias: p.b2, Y: h2 }, true);
    recordDenseForward(rec, { rows: s.n, K: s.H, O: s.C }, { X: h2, W: p.W4, bias: p.b4, Y: P }, false);
    recordDenseParamGrads(rec, { rows: s.n, K: s.H, O: s.C }, { dZ: dP, X: h2, dW: g.W4, db: g.b4 }, false);
    recordDenseInputGrad(rec, { rows: s.n, K: s.H, O: s.C }, { dZ: dP, W: p.W4, mask: h2, dX: dz2 }, false);
    recordDenseParamGrads(rec, { rows: s.n, K: s.H, O: s.H }, { dZ: dz2, X: h1, dW: g.W2, db: g.b2 }, false);
    recordDenseInputGrad(rec, { rows: s.n, K: s.H, O: s.H }, { dZ: dz2, W: p.W2, mask: h1, dX: dz1 }, false);
    recordDenseParamGrads(rec, { rows: s.n, K: s.C, O: s.H }, { dZ: dz1, X: p.E, dW: g.W0, db: g.b0 }, false);
    recordDenseInputGrad(rec, { rows: s.n, K: s.C, O: s.H }, { dZ: dz1, W: p.W0, dX: g.E }, false);
    await rec.submit();
    expect(mismatches(await download(e, P, s.n * s.C), promptEncoderRef(host, s).P, tol(s.C)), 'P').toEqual([]);
    const want = promptEncoderBackwardRef(host, s, dPhost);
    for (const k of Object.keys(host) as (keyof typeof host)[]) {
      const scale = Math.max(...Array.from(want[k], Math.abs), 1e-12);
      expect(mismatches(await download(e, g[k], host[k].length), want[k], { abs: 1e-5 * scale, rel: 1e-5 }), `d${k}`).toEqual([]);
    }
  });

  it.each([
    [1, 1, 1],
    [3, 7, 5],
    [5, 33, 70],
  ])('tanh (prefix tuning): rows=%i K=%i O=%i, the forward and the input gradient through 1 − t²', async (rows, K, O) => {
    const X = randomArray(rows * K, 21, 2); // pre-activations well past ±1, and a few past the ±9 clamp below
    const W = randomArray(O * K, 22);
    const bias = Float32Array.from(randomArray(O, 23), (v, i) => (i % 3 === 0 ? v * 40 : v));
    const dZ = randomArray(rows * O, 24);
    const t = Float32Array.from(randomArray(rows * K, 25), (v) => Math.tanh(v)); // a tanh output
    const dX0 = randomArray(rows * K, 26);
    const s = { rows, K, O };
    const b = { X: upload(e, X), W: upload(e, W), bias: upload(e, bias), dZ: upload(e, dZ), t: upload(e, t) };
    const Y = zeros(e, rows * O);
    const dX = [zeros(e, rows * K), upload(e, dX0)];
    const rec = e.record();
    recordDenseForward(rec, s, { X: b.X, W: b.W, bias: b.bias, Y }, 'tanh');
    [false, true].forEach((acc, j) => recordDenseInputGrad(rec, s, { dZ: b.dZ, W: b.W, tanh: b.t, dX: dX[j] }, acc));
    await rec.submit();
    const y = await download(e, Y, rows * O);
    expect(y.every(Number.isFinite), 'finite past the clamp').toBe(true);
    expect(mismatches(y, linearRef(X, W, bias, rows, K, O, 'tanh'), tol(K)), 'linear + tanh').toEqual([]);
    expect(mismatches(await download(e, dX[0], rows * K), gradXRef(dZ, W, rows, K, O, t, 'tanh'), tol(O)), 'dX through tanh').toEqual([]);
    expect(mismatches(await download(e, dX[1], rows * K), add(dX0, gradXRef(dZ, W, rows, K, O, t, 'tanh')), tol(O)), 'dX through tanh, accumulated').toEqual([]);
  });

  it('chained as prefix tuning\'s projection runs it (n 3, token_dim 9, H 13, L·2·token_dim 36): the table, and every gradient', async () => {
    const s = { n: 3, K: 9, H: 13, O: 36 };
    const host = { E: randomArray(s.n * s.K, 31), W0: randomArray(s.H * s.K, 32, 0.5), b0: randomArray(s.H, 33), W2: randomArray(s.O * s.H, 34, 0.5), b2: randomArray(s.O, 35) };
    const dThost = randomArray(s.n * s.O, 36);
    const p = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, upload(e, v)])) as Record<keyof typeof host, GPUBuffer>;
    const g = Object.fromEntries(Object.entries(host).map(([k, v]) => [k, zeros(e, v.length)])) as Record<keyof typeof host, GPUBuffer>;
    const [h, table, dz] = [zeros(e, s.n * s.H), zeros(e, s.n * s.O), zeros(e, s.n * s.H)];
    const dT = upload(e, dThost);
    const rec = e.record();
    recordDenseForward(rec, { rows: s.n, K: s.K, O: s.H }, { X: p.E, W: p.W0, bias: p.b0, Y: h }, 'tanh');
    recordDenseForward(rec, { rows: s.n, K: s.H, O: s.O }, { X: h, W: p.W2, bias: p.b2, Y: table }, false);
    recordDenseParamGrads(rec, { rows: s.n, K: s.H, O: s.O }, { dZ: dT, X: h, dW: g.W2, db: g.b2 }, false);
    recordDenseInputGrad(rec, { rows: s.n, K: s.H, O: s.O }, { dZ: dT, W: p.W2, tanh: h, dX: dz }, false);
    recordDenseParamGrads(rec, { rows: s.n, K: s.K, O: s.H }, { dZ: dz, X: p.E, dW: g.W0, db: g.b0 }, false);
    recordDenseInputGrad(rec, { rows: s.n, K: s.K, O: s.H }, { dZ: dz, W: p.W0, dX: g.E }, false);
    await rec.submit();
    expect(mismatches(await download(e, table, s.n * s.O), prefixEncoderRef(host, s).table, tol(s.H)), 'table').toEqual([]);
    const want = prefixEncoderBackwardRef(host, s, dThost);
    for (const k of Object.keys(host) as (keyof typeof host)[]) {
      const scale = Math.max(...Array.from(want[k], Math.abs), 1e-12);
      expect(mismatches(await download(e, g[k], host[k].length), want[k], { abs: 1e-5 * scale, rel: 1e-5 }), `d${k}`).toEqual([]);
    }
  });
});
