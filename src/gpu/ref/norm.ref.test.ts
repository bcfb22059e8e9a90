import { describe, expect, it } from 'vitest';
import { normBackwardRef, normForwardRef, type NormKind, type NormShape } from './norm.ref.ts';
import { mismatches, numericGrad, randomArray } from './testing.ts';

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * b[i], 0);

// Central differences at h = 1e-6 in float64: truncation and rounding errors both ≲ 1e-8 at these magnitudes.
const FD_TOL = { abs: 1e-7, rel: 1e-6 };

describe('norm reference forward', () => {
  it('LayerNorm normalises each row to mean 0, variance 1 before the affine part', () => {
    const shape = { rows: 2, C: 4, eps: 0 };
    const x = [1, 2, 3, 4, -1, -1, 1, 1];
    const { y, mean, rstd } = normForwardRef('layernorm', shape, x, [1, 1, 1, 1], [0, 0, 0, 0]);
    expect(Array.from(mean)).toEqual([2.5, 0]);
    expect(rstd[0]).toBeCloseTo(1 / Math.sqrt(1.25), 14);
    expect(Array.from(y.subarray(4))).toEqual([-1, -1, 1, 1]);
    const { y: affine } = normForwardRef('layernorm', shape, x, [2, 2, 2, 2], [0.5, 0.5, 0.5, 0.5]);
    expect(affine[4]).toBe(-1.5);
  });

  it('RMSNorm divides by the root mean square (Llama: x·rsqrt(mean(x²) + eps)·w)', () => {
    const { y, mean, rstd } = normForwardRef('rmsnorm', { rows: 1, C: 2, eps: 0 }, [3, 4], [1, 2]);
    const rms = Math.sqrt((9 + 16) / 2);
    expect(mean[0]).toBe(0);
    expect(rstd[0]).toBeCloseTo(1 / rms, 14);
    expect(y[0]).toBeCloseTo(3 / rms, 14);
    expect(y[1]).toBeCloseTo((2 * 4) / rms, 14);
  });
});

describe.each<NormKind>(['layernorm', 'rmsnorm'])('%s reference backward', (kind) => {
  it.each<NormShape>([
    { rows: 1, C: 1, eps: 1e-5 },
    { rows: 3, C: 7, eps: 1e-5 },
    { rows: 2, C: 16, eps: 1e-6 },
  ])('matches finite differences at rows=$rows C=$C', (shape) => {
    const n = shape.rows * shape.C;
    const x = randomArray(n, shape.C, 2).map((v) => v + 0.7);
    const w = randomArray(shape.C, 2).map((v) => v + 1);
    const b = randomArray(shape.C, 3);
    const dy = randomArray(n, 4);
    const bias = kind === 'layernorm' ? b : undefined;
    const loss = (xv: ArrayLike<number>, wv: ArrayLike<number>, bv?: ArrayLike<number>) =>
      dot(normForwardRef(kind, shape, xv, wv, bv).y, dy);
    const got = normBackwardRef(kind, shape, x, w, dy);
    expect(mismatches(got.dx, numericGrad((v) => loss(v, w, bias), x), FD_TOL), 'dx').toEqual([]);
    expect(mismatches(got.dweight, numericGrad((v) => loss(x, v, bias), w), FD_TOL), 'dweight').toEqual([]);
    if (bias) expect(mismatches(got.dbias, numericGrad((v) => loss(x, w, v), bias), FD_TOL), 'dbias').toEqual([]);
  });

  it('adds dx to what was there when accumulating', () => {
    const shape = { rows: 2, C: 3, eps: 1e-5 };
    const x = randomArray(6, 1);
    const w = randomArray(3, 2);
    const dy = randomArray(6, 3);
    const dx0 = randomArray(6, 4);
    const plain = normBackwardRef(kind, shape, x, w, dy).dx;
    const acc = normBackwardRef(kind, shape, x, w, dy, dx0).dx;
    expect(mismatches(acc, Float64Array.from(plain, (v, i) => v + dx0[i]), { abs: 1e-15, rel: 1e-15 })).toEqual([]);
  });
});
