import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX, xentBackwardRef, xentForwardRef, xentGradientsRef, type XentRefInputs } from './xent.ref.ts';
import { mismatches, randomArray, rng } from './testing.ts';

function inputs(T: number, C: number, V: number, seed: number, ignoreEvery = 3): XentRefInputs {
  const next = rng(seed);
  const labels = Array.from({ length: T }, (_, t) => (t % ignoreEvery === 1 ? IGNORE_INDEX : Math.floor(next() * V)));
  return { T, C, V, hs: Float64Array.from(randomArray(T * C, seed + 1, 2)), Wh: Float64Array.from(randomArray(V * C, seed + 2)), labels };
}

describe('xentBackwardRef matches finite differences of xentForwardRef', () => {
  it.each([
    [4, 3, 5],
    [5, 6, 2],
    [3, 4, 11],
  ])('T=%i C=%i V=%i', (T, C, V) => {
    const x = inputs(T, C, V, T * 100 + V);
    const gradScale = 1 / 3;
    const dhs = xentBackwardRef(x, gradScale);
    const eps = 1e-5;
    const numeric = new Float64Array(T * C);
    for (let i = 0; i < T * C; i++) {
      const plus = Float64Array.from(x.hs);
      plus[i] += eps;
      const minus = Float64Array.from(x.hs);
      minus[i] -= eps;
      numeric[i] = (gradScale * (xentForwardRef({ ...x, hs: plus }).lossSum - xentForwardRef({ ...x, hs: minus }).lossSum)) / (2 * eps);
    }
    // Central differences: truncation error O(eps²·|third derivative|) ≈ 1e-10, rounding ≈ 1e-16/eps ≈ 1e-11.
    expect(mismatches(dhs, numeric, { abs: 1e-8, rel: 1e-7 })).toEqual([]);
    // Ignored positions get exactly zero gradient.
    for (let t = 0; t < T; t++) if (x.labels[t] === IGNORE_INDEX) for (let c = 0; c < C; c++) expect(dhs[t * C + c]).toBe(0);
  });
});

describe('xentGradientsRef: the head gradient dWh matches finite differences over Wh', () => {
  it.each([
    [4, 3, 5],
    [3, 4, 11],
  ])('T=%i C=%i V=%i', (T, C, V) => {
    const x = inputs(T, C, V, T * 10 + V);
    const gradScale = 1 / 3;
    const { dWh } = xentGradientsRef(x, gradScale);
    const eps = 1e-5;
    const numeric = new Float64Array(V * C);
    for (let i = 0; i < V * C; i++) {
      const plus = Float64Array.from(x.Wh);
      plus[i] += eps;
      const minus = Float64Array.from(x.Wh);
      minus[i] -= eps;
      numeric[i] = (gradScale * (xentForwardRef({ ...x, Wh: plus }).lossSum - xentForwardRef({ ...x, Wh: minus }).lossSum)) / (2 * eps);
    }
    expect(mismatches(dWh, numeric, { abs: 1e-8, rel: 1e-7 })).toEqual([]);
  });
});

describe('xentForwardRef', () => {
  it('uniform logits give log V per counted token', () => {
    const x: XentRefInputs = { T: 3, C: 2, V: 7, hs: new Float64Array(6), Wh: randomArray(14, 1), labels: [3, IGNORE_INDEX, 0] };
    const f = xentForwardRef(x);
    expect(f.count).toBe(2);
    expect(f.lossSum).toBeCloseTo(2 * Math.log(7), 12);
    expect(f.rowLoss[1]).toBe(0);
  });

  it('all ignored: zero loss, zero count', () => {
    const x = { ...inputs(4, 3, 5, 9), labels: [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX] };
    expect(xentForwardRef(x)).toMatchObject({ lossSum: 0, count: 0 });
  });

  it('is stable for large logits (no overflow in exp)', () => {
    const x: XentRefInputs = { T: 1, C: 1, V: 2, hs: [1000], Wh: [1, 0.5], labels: [1] };
    expect(xentForwardRef(x).lossSum).toBeCloseTo(500, 9); // lse ≈ 1000, logit of label = 500
  });
});
