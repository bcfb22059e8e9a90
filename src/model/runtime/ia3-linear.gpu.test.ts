// An IA³-wrapped linear layer against a float64 reference written here from PEFT's forward (attention projections:
// y = (x·Wᵀ + b) ⊙ l; feed-forward: y = (x ⊙ l)·Wᵀ + b): forward, dx and dl, on nn.Linear and Conv1D layouts and over
// an NF4 base (the reference then uses the weight NF4 decodes to), accumulating into dx and dl as a micro-batch does.
// dl is also checked against finite differences of the reference's loss Σ y ⊙ dy.
import { beforeAll, describe, expect, it } from 'vitest';
import { readF32 } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { uploadNf4 } from '../../gpu/kernels/nf4.ts';
import { dequantizeNf4, quantizeNf4 } from '../../gpu/ref/nf4.ref.ts';
import { mismatches, numericGrad, randomArray } from '../../gpu/ref/testing.ts';
import { testEngine, upload, zeros } from '../../gpu/testing-gpu.ts';
import { kernelChoiceFor, recordLinearBackward, recordLinearForward, type Linear } from './linear.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const T = 7;
const IN = 70; // not a multiple of the 64-element NF4 block, nor of a workgroup
const OUT = 23;

/** W as [out, in] (row o, column i), whatever its storage. */
function reference(W: Float64Array, bias: Float32Array, l: ArrayLike<number>, feedforward: boolean, x: Float32Array, dy: Float32Array, dx0: Float32Array) {
  const y = new Float64Array(T * OUT);
  const base = new Float64Array(T * OUT);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < OUT; o++) {
      let s = 0;
      for (let i = 0; i < IN; i++) s += W[o * IN + i] * x[t * IN + i] * (feedforward ? l[i] : 1);
      base[t * OUT + o] = s + bias[o];
      y[t * OUT + o] = feedforward ? s + bias[o] : (s + bias[o]) * l[o];
    }
  }
  const dx = Float64Array.from(dx0);
  const dl = new Float64Array(l.length);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < IN; i++) {
      let g = 0;
      for (let o = 0; o < OUT; o++) g += dy[t * OUT + o] * W[o * IN + i] * (feedforward ? 1 : l[o]);
      if (feedforward) {
        dl[i] += g * x[t * IN + i];
        dx[t * IN + i] += g * l[i];
      } else {
        dx[t * IN + i] += g;
      }
    }
    if (!feedforward) for (let o = 0; o < OUT; o++) dl[o] += dy[t * OUT + o] * base[t * OUT + o];
  }
  return { y, dx, dl };
}

type Storage = 'linear' | 'conv1d' | 'nf4';

describe.each([false, true])('IA³ linear layer (feed-forward %s)', (feedforward) => {
  it.each<Storage>(['linear', 'conv1d', 'nf4'])('%s base: forward, dx and dl as the reference', async (storage) => {
    const Wrows = randomArray(OUT * IN, 1, 0.5); // [out, in]
    const q = storage === 'nf4' ? quantizeNf4(Wrows, { doubleQuant: false }) : null;
    const W = Float64Array.from(q ? dequantizeNf4(q) : Wrows);
    let weight: Linear['weight'];
    if (storage === 'nf4') weight = { kind: 'nf4', weight: uploadNf4(e, q!, OUT, IN) };
    else if (storage === 'conv1d') {
      const t = new Float32Array(IN * OUT);
      for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) t[i * OUT + o] = Wrows[o * IN + i];
      weight = { kind: 'dense', buffer: upload(e, t), elem: 'f32', conv1d: true };
    } else weight = { kind: 'dense', buffer: upload(e, Wrows), elem: 'f32', conv1d: false };
    const n = feedforward ? IN : OUT;
    const l = randomArray(n, 2, 0.5).map((v) => 1 + v);
    const bias = randomArray(OUT, 3, 0.2);
    const x = randomArray(T * IN, 4);
    const dy = randomArray(T * OUT, 5);
    const dx0 = randomArray(T * IN, 6);
    const dl0 = randomArray(n, 7);
    const dlBuf = upload(e, dl0);
    const layer: Linear = { path: 'test.proj', inFeatures: IN, outFeatures: OUT, weight, bias: upload(e, bias), ia3: { feedforward, l: upload(e, l), dl: dlBuf } };
    const xb = upload(e, x);
    const y = zeros(e, T * OUT);
    const dx = upload(e, dx0);
    const k = kernelChoiceFor('naive');
    const rec = e.record('ia3 linear');
    const saved = recordLinearForward(rec, e, k, layer, T, xb, y);
    recordLinearBackward(rec, e, k, layer, T, xb, saved, upload(e, dy), dx, { accumulateDx: true, accumulateGrads: true });
    await rec.submit();
    const want = reference(W, bias, l, feedforward, x, dy, dx0);
    const tol = { abs: 3e-5, rel: 3e-5 };
    expect(mismatches(await readF32(e.device, y, T * OUT), want.y, tol), 'y').toEqual([]);
    expect(mismatches(await readF32(e.device, dx, T * IN), want.dx, tol), 'dx').toEqual([]);
    const dl = await readF32(e.device, dlBuf, n);
    expect(mismatches(dl.map((v, i) => v - dl0[i]), want.dl, { abs: 1e-4, rel: 1e-4 }), 'dl').toEqual([]);
    // The reference's dl is the derivative of Σ y ⊙ dy with respect to l.
    const numeric = numericGrad((lv) => {
      const r = reference(W, bias, lv, feedforward, x, dy, dx0); // float64 l: an f32 copy would round the step away
      return r.y.reduce((s, v, i) => s + v * dy[i], 0);
    }, l, 1e-4);
    expect(mismatches(want.dl, numeric, { abs: 1e-5, rel: 1e-4 }), 'dl vs finite differences').toEqual([]);
  });
});
