// The DoRA layer reference's backward against float64 central differences of its forward (the norm held at its
// value, as PEFT detaches it), with and without a dropout mask, nn.Linear and Conv1D layouts; and the forward's two
// forms agree: without dropout y = c ⊙ (W·x + s·B·A·x) + b.
import { describe, expect, it } from 'vitest';
import { doraLayerBackwardRef, doraLayerForwardRef, doraWeightNormRef, type DoraLayerInputs } from './dora.ref.ts';
import { dropoutMask } from './lora.ref.ts';
import { mismatches, numericGrad, randomArray } from './testing.ts';

const T = 3;
const I = 7;
const O = 5;
const R = 2;

function inputs(conv1d: boolean, dropout: boolean): DoraLayerInputs {
  const W = Float64Array.from(randomArray(O * I, 1));
  const A = Float64Array.from(randomArray(R * I, 2));
  const B = Float64Array.from(randomArray(O * R, 3));
  const scale = 1.5;
  // m away from ‖W + sBA‖ so c ≠ 1 and every term counts.
  const n = doraWeightNormRef({ out: O, in: I, r: R, scale }, W, A, B);
  const m = Float64Array.from(n, (v, j) => v * (1 + 0.3 * Math.sin(j + 1)));
  let Wstored: Float64Array = W;
  if (conv1d) {
    Wstored = new Float64Array(I * O);
    for (let j = 0; j < O; j++) for (let i = 0; i < I; i++) Wstored[i * O + j] = W[j * I + i];
  }
  return {
    T, inFeatures: I, outFeatures: O, r: R, scale, conv1d,
    x: Float64Array.from(randomArray(T * I, 4)),
    W: Wstored,
    bias: Float64Array.from(randomArray(O, 5)),
    A, B, m,
    mask: dropout ? dropoutMask(77, 0.3, T * I) : undefined,
  };
}

describe.each([
  [false, false],
  [false, true],
  [true, true],
])('DoRA layer reference (conv1d %s, dropout %s)', (conv1d, dropout) => {
  it('backward = central differences of Σ y ⊙ dy, the norm detached', () => {
    const p = inputs(conv1d, dropout);
    const dy = Float64Array.from(randomArray(T * O, 6));
    const norm = doraLayerForwardRef(p).n;
    const g = doraLayerBackwardRef(p, dy);
    const tol = { abs: 1e-7, rel: 1e-6 };
    for (const key of ['x', 'A', 'B', 'm'] as const) {
      const numeric = numericGrad((v) => {
        const { y } = doraLayerForwardRef({ ...p, [key]: v, norm });
        return y.reduce((s, yi, i) => s + yi * dy[i], 0);
      }, p[key]);
      expect(mismatches(g[`d${key}` as 'dx'], numeric, tol), `d${key}`).toEqual([]);
    }
  });
});

describe('DoRA layer reference', () => {
  it('without dropout is c ⊙ (W·x + s·B·A·x) + b with n = ‖W + sBA‖', () => {
    const p = inputs(false, false);
    const { y, n } = doraLayerForwardRef(p);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < O; j++) {
        let v = 0;
        for (let i = 0; i < I; i++) {
          let ba = 0;
          for (let k = 0; k < R; k++) ba += p.B[j * R + k] * p.A[k * I + i];
          v += (p.W[j * I + i] + p.scale * ba) * p.x[t * I + i];
        }
        expect(y[t * O + j]).toBeCloseTo((p.m[j] / n[j]) * v + p.bias![j], 12);
      }
    }
  });

  it('with m = ‖W‖ and B = 0 is the base layer (PEFT initialises m to the row norms)', () => {
    const p = inputs(false, true);
    const B = new Float64Array(O * R);
    const m = doraWeightNormRef({ out: O, in: I, r: R, scale: p.scale }, p.W, p.A, B);
    const { y } = doraLayerForwardRef({ ...p, B, m });
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < O; j++) {
        let v = p.bias![j];
        for (let i = 0; i < I; i++) v += p.W[j * I + i] * p.x[t * I + i];
        expect(y[t * O + j]).toBeCloseTo(v, 12);
      }
    }
  });
});
