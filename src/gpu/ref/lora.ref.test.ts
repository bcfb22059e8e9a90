import { describe, expect, it } from 'vitest';
import { dropoutHash, dropoutMask, dropoutThreshold, loraBackwardRef, loraForwardRef, type LoraRefInputs } from './lora.ref.ts';
import { mismatches, randomArray } from './testing.ts';

function inputs(shape: { T: number; inFeatures: number; outFeatures: number; r: number; conv1d?: boolean }, seed: number): LoraRefInputs {
  const { T, inFeatures: I, outFeatures: O, r } = shape;
  return {
    ...shape,
    x: Float64Array.from(randomArray(T * I, seed)),
    W: Float64Array.from(randomArray(O * I, seed + 1)),
    bias: Float64Array.from(randomArray(O, seed + 2)),
    A: Float64Array.from(randomArray(r * I, seed + 3)),
    B: Float64Array.from(randomArray(O * r, seed + 4)),
    scale: 1.75,
  };
}

/** Σ dy∘y, the scalar whose gradient loraBackwardRef returns. */
function loss(x: LoraRefInputs, dy: ArrayLike<number>): number {
  const { y } = loraForwardRef(x);
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * dy[i];
  return s;
}

/** Central differences of `loss` with respect to every element of x[key]. */
function numericGrad(x: LoraRefInputs, dy: ArrayLike<number>, key: 'x' | 'A' | 'B'): Float64Array {
  const base = Float64Array.from(x[key]);
  const grad = new Float64Array(base.length);
  const eps = 1e-6;
  for (let i = 0; i < base.length; i++) {
    const plus = Float64Array.from(base);
    plus[i] += eps;
    const minus = Float64Array.from(base);
    minus[i] -= eps;
    grad[i] = (loss({ ...x, [key]: plus }, dy) - loss({ ...x, [key]: minus }, dy)) / (2 * eps);
  }
  return grad;
}

// The loss is linear in each of x, A, B separately, so central differences are exact up to float64 rounding.
const FD_TOL = { abs: 1e-7, rel: 1e-7 };

describe('loraBackwardRef matches finite differences of loraForwardRef', () => {
  const cases = [
    { name: 'Linear, no dropout', shape: { T: 3, inFeatures: 5, outFeatures: 4, r: 2 }, mask: false },
    { name: 'Conv1D, no dropout', shape: { T: 2, inFeatures: 4, outFeatures: 6, r: 3, conv1d: true }, mask: false },
    { name: 'Linear, fixed dropout mask', shape: { T: 3, inFeatures: 6, outFeatures: 5, r: 2 }, mask: true },
    { name: 'Conv1D, fixed dropout mask', shape: { T: 4, inFeatures: 5, outFeatures: 3, r: 1, conv1d: true }, mask: true },
  ];
  it.each(cases)('$name', ({ shape, mask }) => {
    const x = inputs(shape, 17);
    if (mask) {
      const m = dropoutMask(99, 0.4, shape.T * shape.inFeatures);
      expect(m.some((v) => v === 0)).toBe(true); // the mask really drops something
      x.mask = m;
    }
    const dy = Float64Array.from(randomArray(shape.T * shape.outFeatures, 5));
    const grads = loraBackwardRef(x, dy);
    expect(mismatches(grads.dx, numericGrad(x, dy, 'x'), FD_TOL), 'dx').toEqual([]);
    expect(mismatches(grads.dA, numericGrad(x, dy, 'A'), FD_TOL), 'dA').toEqual([]);
    expect(mismatches(grads.dB, numericGrad(x, dy, 'B'), FD_TOL), 'dB').toEqual([]);
  });

  it('with B = 0 (PEFT init) the output is the base layer and dA is zero', () => {
    const shape = { T: 2, inFeatures: 3, outFeatures: 4, r: 2 };
    const x = { ...inputs(shape, 3), B: new Float64Array(8) };
    const base = loraForwardRef({ ...x, A: new Float64Array(6) }).y;
    expect(Array.from(loraForwardRef(x).y)).toEqual(Array.from(base));
    const { dA } = loraBackwardRef(x, randomArray(8, 1));
    expect(Array.from(dA)).toEqual(new Array(6).fill(0));
  });
});

describe('dropout mask', () => {
  it('keeps about 1 − p of the elements, scaled by 1/(1 − p), and depends on the seed', () => {
    const n = 20000;
    const a = dropoutMask(1, 0.1, n);
    const kept = a.filter((v) => v !== 0);
    expect(kept.length / n).toBeGreaterThan(0.89);
    expect(kept.length / n).toBeLessThan(0.91);
    expect(kept.every((v) => v === Math.fround(1 / 0.9))).toBe(true);
    const b = dropoutMask(2, 0.1, n);
    let same = 0;
    for (let i = 0; i < n; i++) if ((a[i] === 0) === (b[i] === 0)) same++;
    expect(same / n).toBeLessThan(0.85); // independent masks agree on 0.9² + 0.1² = 82%
  });

  it('p = 0 keeps everything with factor exactly 1', () => {
    expect(dropoutThreshold(0)).toBe(0);
    expect(Array.from(dropoutMask(5, 0, 100))).toEqual(new Array(100).fill(1));
  });

  it('rejects probabilities outside [0, 1)', () => {
    expect(() => dropoutThreshold(1)).toThrow(/dropout: 1/);
    expect(() => dropoutThreshold(-0.1)).toThrow(RangeError);
  });

  it('hash equals the same PCG arithmetic done in exact BigInt u32 (so Math.imul wrapping is right)', () => {
    const u32 = (v: bigint) => BigInt.asUintN(32, v);
    const pcg = (v: bigint) => {
      const state = u32(v * 747796405n + 2891336453n);
      const word = u32(((state >> ((state >> 28n) + 4n)) ^ state) * 277803737n);
      return (word >> 22n) ^ word;
    };
    for (const seed of [0, 7, 0xdeadbeef, 0xffffffff])
      for (const i of [0, 1, 2, 12345, 999_999, 4_000_000_000]) {
        expect(dropoutHash(seed, i)).toBe(Number(pcg(pcg(BigInt(i)) ^ BigInt(seed))));
      }
  });
});
