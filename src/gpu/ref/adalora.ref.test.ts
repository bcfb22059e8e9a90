// AdaLoRA's references against float64 central differences: the layer's dA, dE and dB through A_eff = diag(E)·A (the
// chain rule the GPU runs after LoRA's backward), and the orthogonality regulariser's dA, dB; the scores' means.
import { describe, expect, it } from 'vitest';
import { adaloraLayerBackwardRef, adaloraLayerForwardRef, orthRegRef, tripletScoresRef, type AdaloraLayerInputs } from './adalora.ref.ts';
import { mismatches, numericGrad, randomArray } from './testing.ts';

const T = 3;
const I = 7;
const O = 5;
const R = 3;

function layer(): AdaloraLayerInputs {
  return {
    T, inFeatures: I, outFeatures: O, r: R, scale: 8 / (R + 1e-5),
    x: Float64Array.from(randomArray(T * I, 1)),
    W: Float64Array.from(randomArray(O * I, 2)),
    A: Float64Array.from(randomArray(R * I, 3)),
    E: Float64Array.from(randomArray(R, 4)),
    B: Float64Array.from(randomArray(O * R, 5)),
  };
}

describe('AdaLoRA layer reference', () => {
  it('dA, dE and dB match central differences of Σ y ⊙ dy', () => {
    const o = layer();
    const dy = randomArray(T * O, 6);
    const loss = (p: AdaloraLayerInputs) => adaloraLayerForwardRef(p).reduce((s, v, i) => s + v * dy[i], 0);
    const got = adaloraLayerBackwardRef(o, dy);
    const tol = { abs: 1e-8, rel: 1e-6 };
    expect(mismatches(got.dA, numericGrad((A) => loss({ ...o, A }), o.A), tol)).toEqual([]);
    expect(mismatches(got.dE, numericGrad((E) => loss({ ...o, E }), o.E), tol)).toEqual([]);
    expect(mismatches(got.dB, numericGrad((B) => loss({ ...o, B }), o.B), tol)).toEqual([]);
    // E = 0 (PEFT's init): the update is zero, and so are dA and dB, but not dE.
    const z = adaloraLayerBackwardRef({ ...o, E: new Float64Array(R) }, dy);
    expect(z.dA.every((v) => v === 0) && z.dB.every((v) => v === 0)).toBe(true);
    expect(z.dE.some((v) => v !== 0)).toBe(true);
  });
});

describe('orthogonality regulariser reference', () => {
  it('R is the mean of ‖AAᵀ − I‖ and ‖BᵀB − I‖, and its gradients match central differences', () => {
    const mods = [
      { in: 7, out: 5, A: Float64Array.from(randomArray(R * 7, 11)), B: Float64Array.from(randomArray(5 * R, 12)) },
      { in: 4, out: 9, A: Float64Array.from(randomArray(R * 4, 13)), B: Float64Array.from(randomArray(9 * R, 14)) },
    ];
    const got = orthRegRef(R, mods);
    // Orthonormal rows: ‖AAᵀ − I‖ = 0, so R counts only the rest.
    const eye = { in: R, out: R, A: Float64Array.from({ length: R * R }, (_, i) => (i % (R + 1) === 0 ? 1 : 0)), B: Float64Array.from({ length: R * R }, (_, i) => (i % (R + 1) === 0 ? 1 : 0)) };
    expect(orthRegRef(R, [eye]).R).toBe(0);
    mods.forEach((m, i) => {
      const tol = { abs: 1e-8, rel: 1e-6 };
      expect(mismatches(got.dA[i], numericGrad((A) => orthRegRef(R, mods.map((x, j) => (j === i ? { ...x, A } : x))).R, m.A), tol)).toEqual([]);
      expect(mismatches(got.dB[i], numericGrad((B) => orthRegRef(R, mods.map((x, j) => (j === i ? { ...x, B } : x))).R, m.B), tol)).toEqual([]);
    });
  });

  it('triplet scores: E plus the mean over A\'s row plus the mean over B\'s column', () => {
    const sA = [1, 2, 3, 4, 5, 6]; // r = 2, in = 3
    const sB = [1, 10, 3, 30]; // out = 2
    expect([...tripletScoresRef(2, 3, 2, sA, [100, 200], sB)]).toEqual([100 + 2 + 2, 200 + 5 + 20]);
  });
});
