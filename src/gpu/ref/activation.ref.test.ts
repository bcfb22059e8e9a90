import { describe, expect, it } from 'vitest';
import { geluBackwardRef, geluRef, reluBackwardRef, reluRef, siluBackwardRef, siluRef, swigluBackwardRef, swigluRef } from './activation.ref.ts';
import { mismatches, numericGrad, randomArray } from './testing.ts';

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * b[i], 0);

// Central differences at h = 1e-6 in float64: truncation ~h²·f''' and rounding ~1e-16/h, both ≲ 1e-9 here.
const FD_TOL = { abs: 1e-8, rel: 1e-6 };

describe('GELU reference', () => {
  it('matches transformers NewGELUActivation at known points', () => {
    // torch: NewGELUActivation()(torch.tensor([1., -2., 3.5], dtype=torch.float64))
    expect(mismatches(geluRef([1, -2, 3.5, 0]), [0.8411919906082768, -0.04540230591222494, 3.499383802344626, 0], { abs: 1e-15, rel: 1e-15 })).toEqual([]);
  });

  it('backward matches finite differences', () => {
    const x = randomArray(40, 1, 4);
    const dy = randomArray(40, 2);
    const numeric = numericGrad((v) => dot(geluRef(v), dy), x);
    expect(mismatches(geluBackwardRef(x, dy), numeric, FD_TOL)).toEqual([]);
  });
});

describe('SwiGLU reference', () => {
  it('computes silu(gate)·up', () => {
    // silu(1.5)·2 = 1.5·σ(1.5)·2
    expect(swigluRef([1.5, 0, -40], [2, 3, 1])[0]).toBeCloseTo(2.452723428580931, 14);
    expect(swigluRef([1.5, 0, -40], [2, 3, 1])[1]).toBe(0);
    expect(Math.abs(swigluRef([1.5, 0, -40], [2, 3, 1])[2])).toBeLessThan(1e-15);
  });

  it('backward matches finite differences for gate and up', () => {
    const gate = randomArray(40, 3, 6);
    const up = randomArray(40, 4, 2);
    const dout = randomArray(40, 5);
    const { dgate, dup } = swigluBackwardRef(gate, up, dout);
    expect(mismatches(dgate, numericGrad((g) => dot(swigluRef(g, up), dout), gate), FD_TOL)).toEqual([]);
    expect(mismatches(dup, numericGrad((u) => dot(swigluRef(gate, u), dout), up), FD_TOL)).toEqual([]);
  });
});

describe('ReLU and SiLU references', () => {
  it('match torch at known points', () => {
    // torch: F.silu(torch.tensor([1.5, -2., 0.], dtype=torch.float64))
    expect(mismatches(siluRef([1.5, -2, 0]), [1.2263617142904655, -0.2384058440442351, 0], { abs: 1e-15, rel: 1e-14 })).toEqual([]);
    expect(Array.from(reluRef([1.5, -2, 0]))).toEqual([1.5, 0, 0]);
    // torch's relu backward is 0 at exactly 0 (threshold_backward: x > 0).
    expect(Array.from(reluBackwardRef([1.5, -2, 0], [3, 4, 5]))).toEqual([3, 0, 0]);
  });

  it('backward matches finite differences (ReLU away from its kink)', () => {
    const x = randomArray(40, 6, 4).map((v) => (Math.abs(v) < 1e-3 ? 0.5 : v));
    const dy = randomArray(40, 7);
    expect(mismatches(siluBackwardRef(x, dy), numericGrad((v) => dot(siluRef(v), dy), x), FD_TOL)).toEqual([]);
    expect(mismatches(reluBackwardRef(x, dy), numericGrad((v) => dot(reluRef(v), dy), x), FD_TOL)).toEqual([]);
  });
});
