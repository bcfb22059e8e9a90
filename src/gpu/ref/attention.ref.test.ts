// attentionRef's backward against float64 central differences of its forward, and the forward's mask and GQA
// semantics against independent restatements of them.
import { describe, expect, it } from 'vitest';
import { attentionBackwardRef, attentionRef, type AttentionShape } from './attention.ref.ts';
import { mismatches, numericGrad, randomArray } from './testing.ts';

function inputs(shape: AttentionShape, seg: number[], seed: number) {
  const { T, Hq, Hkv, D } = shape;
  return {
    ...shape,
    Q: Array.from(randomArray(T * Hq * D, seed, 2)),
    K: Array.from(randomArray(T * Hkv * D, seed + 1, 2)),
    V: Array.from(randomArray(T * Hkv * D, seed + 2)),
    seg,
  };
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

const FD_CASES: { name: string; shape: AttentionShape; seg: number[] }[] = [
  { name: 'GQA Hq=4 Hkv=2, two segments', shape: { T: 6, Hq: 4, Hkv: 2, D: 3 }, seg: [0, 0, 0, 0, 1, 1] },
  { name: 'MHA Hq=Hkv=3, custom scale', shape: { T: 5, Hq: 3, Hkv: 3, D: 4, scale: 0.7 }, seg: [0, 0, 1, 1, 1] },
  { name: 'MQA Hq=2 Hkv=1, interleaved segments', shape: { T: 5, Hq: 2, Hkv: 1, D: 2 }, seg: [0, 1, 0, 1, 1] },
];

describe('attentionBackwardRef', () => {
  it.each(FD_CASES)('is the gradient of Σ W·O by central differences: $name', ({ shape, seg }) => {
    const x = inputs(shape, seg, 7);
    const W = randomArray(shape.T * shape.Hq * shape.D, 99);
    const grads = attentionBackwardRef({ ...x, dO: W });
    const loss = (over: Partial<typeof x>) => dot(attentionRef({ ...x, ...over }).O, W);
    const TOL = { abs: 1e-8, rel: 1e-6 };
    expect(mismatches(grads.dQ, numericGrad((Q) => loss({ Q: Array.from(Q) }), x.Q), TOL), 'dQ').toEqual([]);
    expect(mismatches(grads.dK, numericGrad((K) => loss({ K: Array.from(K) }), x.K), TOL), 'dK').toEqual([]);
    expect(mismatches(grads.dV, numericGrad((V) => loss({ V: Array.from(V) }), x.V), TOL), 'dV').toEqual([]);
  });
});

describe('attentionRef', () => {
  const shape = { T: 7, Hq: 4, Hkv: 2, D: 5 };
  const seg = [3, 3, 3, 3, 8, 8, 8];

  it('sees only earlier tokens of the same segment', () => {
    const x = inputs(shape, seg, 1);
    const base = attentionRef(x).O;
    for (let j = 0; j < shape.T; j++) {
      const K = x.K.slice();
      const V = x.V.slice();
      for (let e = 0; e < shape.Hkv * shape.D; e++) {
        K[j * shape.Hkv * shape.D + e] += 0.5;
        V[j * shape.Hkv * shape.D + e] += 0.5;
      }
      const O = attentionRef({ ...x, K, V }).O;
      for (let i = 0; i < shape.T; i++) {
        const row = (a: Float64Array) => a.slice(i * shape.Hq * shape.D, (i + 1) * shape.Hq * shape.D);
        const changed = mismatches(row(O), row(base), { abs: 1e-12, rel: 0 }).length > 0;
        expect(changed, `query ${i}, key ${j}`).toBe(j <= i && seg[j] === seg[i]);
      }
    }
  });

  it('a segment of one token outputs its own V; L is that row’s log-sum-exp', () => {
    const x = inputs({ T: 3, Hq: 2, Hkv: 1, D: 4 }, [0, 0, 1], 5);
    const { O, L } = attentionRef(x);
    for (let h = 0; h < 2; h++) for (let d = 0; d < 4; d++) expect(O[(2 * 2 + h) * 4 + d]).toBeCloseTo(x.V[2 * 4 + d], 12);
    // row (i = 1, h = 1) sees keys 0 and 1
    const s = [0, 1].map((j) => dot(x.Q.slice((1 * 2 + 1) * 4, (1 * 2 + 2) * 4), x.K.slice(j * 4, j * 4 + 4)) / 2);
    expect(L[1 * 2 + 1]).toBeCloseTo(Math.log(Math.exp(s[0]) + Math.exp(s[1])), 12);
  });

  it('grouped-query heads equal multi-head attention with each K/V head repeated over its group', () => {
    const x = inputs(shape, seg, 2);
    const G = shape.Hq / shape.Hkv;
    const repeat = (a: number[]) => {
      const out: number[] = [];
      for (let t = 0; t < shape.T; t++)
        for (let h = 0; h < shape.Hq; h++) {
          const g = Math.floor(h / G);
          out.push(...a.slice((t * shape.Hkv + g) * shape.D, (t * shape.Hkv + g + 1) * shape.D));
        }
      return out;
    };
    const gqa = attentionRef(x).O;
    const mha = attentionRef({ ...x, Hkv: shape.Hq, K: repeat(x.K), V: repeat(x.V) }).O;
    expect(mismatches(gqa, mha, { abs: 1e-14, rel: 0 })).toEqual([]);
  });

  it('rejects Hq not a multiple of Hkv', () => {
    expect(() => attentionRef(inputs({ T: 2, Hq: 3, Hkv: 2, D: 2 }, [0, 0], 1))).toThrow(/multiple of Hkv/);
  });
});
