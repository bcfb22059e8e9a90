// The virtual tokens' reference backward against float64 finite differences of its forward (loss = Σ w ⊙ x).
import { describe, expect, it } from 'vitest';
import { mismatches, numericGrad, randomArray } from './testing.ts';
import { virtualTokensBackwardRef, virtualTokensForwardRef } from './virtual-tokens.ref.ts';

const BASE = 13;

describe('virtual tokens reference', () => {
  it('the backward is the derivative of the forward (finite differences on P)', () => {
    const rows = 11;
    const C = 3;
    const n = 2;
    const ids = [BASE, BASE + 1, 4, 7, BASE, BASE + 1, 2, 12, 0, BASE, 5]; // three rows' virtual tokens, real ids between
    const x0 = randomArray(rows * C, 5);
    const w = randomArray(rows * C, 6); // loss = Σ w ⊙ x
    const P0 = randomArray(n * C, 7);
    const loss = (P: Float64Array) => virtualTokensForwardRef(ids, x0, P, BASE, n, C).reduce((s, v, i) => s + v * w[i], 0);
    expect(mismatches(virtualTokensBackwardRef(ids, w, BASE, n, C), numericGrad(loss, P0, 1e-3), { abs: 1e-6, rel: 1e-6 })).toEqual([]);
  });
});
