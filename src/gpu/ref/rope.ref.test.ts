// ropeRef's backward (the inverse rotation) against float64 finite differences of its forward.
import { describe, expect, it } from 'vitest';
import { ropeRef } from './rope.ref.ts';
import { mismatches, randomArray } from './testing.ts';

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

describe('ropeRef', () => {
  const T = 5;
  const H = 3;
  const D = 12;
  const positions = [0, 1, 2, 0, 9];
  const invFreq = Array.from({ length: D / 2 }, (_, i) => 1 / 10000 ** ((2 * i) / D));

  it('backward (inverse rotation) is the gradient of Σ w·forward(x), by central differences', () => {
    const x = Array.from(randomArray(T * H * D, 1));
    const w = randomArray(T * H * D, 2);
    const loss = (xs: number[]) => dot(ropeRef({ T, H, D, x: xs, positions, invFreq }), w);
    const grad = ropeRef({ T, H, D, x: w, positions, invFreq, inverse: true });
    const h = 1e-6;
    const numeric = x.map((_, i) => {
      const plus = x.slice();
      const minus = x.slice();
      plus[i] += h;
      minus[i] -= h;
      return (loss(plus) - loss(minus)) / (2 * h);
    });
    expect(mismatches(grad, numeric, { abs: 1e-8, rel: 1e-7 })).toEqual([]);
  });

  it('rotates by pos·invFreq: position 0 is the identity, inverse undoes forward', () => {
    const x = randomArray(T * H * D, 3);
    const y = ropeRef({ T, H, D, x, positions, invFreq });
    for (let i = 0; i < H * D; i++) expect(y[i]).toBe(x[i]);
    expect(Math.abs(y[H * D] - x[H * D])).toBeGreaterThan(1e-4); // token 1 moved
    const back = ropeRef({ T, H, D, x: y, positions, invFreq, inverse: true });
    expect(mismatches(back, x, { abs: 1e-12, rel: 0 })).toEqual([]);
  });

  it('pairs element i with i + D/2 (rotate-half), not adjacent elements', () => {
    const x = new Float64Array(D);
    x[0] = 1; // only the first element of the first half
    const y = ropeRef({ T: 1, H: 1, D, x, positions: [1], invFreq });
    expect(y[0]).toBeCloseTo(Math.cos(1), 6);
    expect(y[D / 2]).toBeCloseTo(Math.sin(1), 6);
    expect(y[1]).toBe(0);
  });
});
