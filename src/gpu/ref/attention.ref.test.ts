// attentionRef's backward against float64 central differences of its forward, and the forward's mask and GQA
// semantics against independent restatements of them.
import { describe, expect, it } from 'vitest';
import { attentionBackwardRef, attentionRef, type AttentionShape } from './attention.ref.ts';
import { attentionDecodeRef } from './attention_decode.ref.ts';
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

describe('attention with prefix rows (prefix tuning)', () => {
  /** Inputs with P prefix rows (P, 2, Hkv, D), keys at the same scale as K. */
  function withPrefix(shape: AttentionShape & { P: number }, seg: number[], seed: number) {
    return { ...inputs(shape, seg, seed), prefixKV: Array.from(randomArray(shape.P * 2 * shape.Hkv * shape.D, seed + 3, 2)) };
  }

  const CASES: { name: string; shape: AttentionShape & { P: number }; seg: number[] }[] = [
    { name: 'P=1 GQA Hq=4 Hkv=2, two segments', shape: { T: 6, Hq: 4, Hkv: 2, D: 3, P: 1 }, seg: [0, 0, 0, 0, 1, 1] },
    { name: 'P=3 MHA Hq=Hkv=3, custom scale, interleaved segments', shape: { T: 5, Hq: 3, Hkv: 3, D: 4, scale: 0.7, P: 3 }, seg: [0, 1, 0, 1, 1] },
  ];

  it.each(CASES)('backward is the gradient of Σ W·O by central differences, prefix rows included: $name', ({ shape, seg }) => {
    const x = withPrefix(shape, seg, 11);
    const W = randomArray(shape.T * shape.Hq * shape.D, 98);
    const grads = attentionBackwardRef({ ...x, dO: W });
    const loss = (over: Partial<typeof x>) => dot(attentionRef({ ...x, ...over }).O, W);
    const TOL = { abs: 1e-8, rel: 1e-6 };
    expect(grads.dPrefixKV.length).toBe(shape.P * 2 * shape.Hkv * shape.D);
    expect(mismatches(grads.dPrefixKV, numericGrad((pkv) => loss({ prefixKV: Array.from(pkv) }), x.prefixKV), TOL), 'dPrefixKV').toEqual([]);
    expect(mismatches(grads.dQ, numericGrad((Q) => loss({ Q: Array.from(Q) }), x.Q), TOL), 'dQ').toEqual([]);
    expect(mismatches(grads.dK, numericGrad((K) => loss({ K: Array.from(K) }), x.K), TOL), 'dK').toEqual([]);
    expect(mismatches(grads.dV, numericGrad((V) => loss({ V: Array.from(V) }), x.V), TOL), 'dV').toEqual([]);
  });

  it('each segment equals causal attention over the cache [prefix rows; its keys] (what decode sees when the KV cache is primed with the prefix at positions 0..P−1)', () => {
    const shape = { T: 9, Hq: 4, Hkv: 2, D: 5, P: 3 };
    const seg = [0, 0, 0, 0, 1, 1, 1, 1, 1];
    const x = withPrefix(shape, seg, 21);
    const { O } = attentionRef(x);
    const { Hq, Hkv, D, P } = shape;
    const row = Hkv * D;
    for (const [start, n] of [[0, 4], [4, 5]]) {
      // The cache: positions 0..P−1 hold the prefix rows, P..P+n−1 the segment's own keys and values.
      const Kc: number[] = [];
      const Vc: number[] = [];
      for (let p = 0; p < P; p++) {
        Kc.push(...x.prefixKV.slice((2 * p) * row, (2 * p + 1) * row));
        Vc.push(...x.prefixKV.slice((2 * p + 1) * row, (2 * p + 2) * row));
      }
      Kc.push(...x.K.slice(start * row, (start + n) * row));
      Vc.push(...x.V.slice(start * row, (start + n) * row));
      const decoded = attentionDecodeRef({ n, p0: P, maxLen: P + n, Hq, Hkv, D, Q: x.Q.slice(start * Hq * D, (start + n) * Hq * D), Kc, Vc });
      expect(mismatches(O.slice(start * Hq * D, (start + n) * Hq * D), decoded, { abs: 1e-13, rel: 1e-12 }), `segment at ${start}`).toEqual([]);
    }
  });

  it('P = 0 is attention without a prefix, bit for bit', () => {
    const shape = { T: 7, Hq: 4, Hkv: 2, D: 5 };
    const x = inputs(shape, [3, 3, 3, 3, 8, 8, 8], 4);
    const dO = randomArray(shape.T * shape.Hq * shape.D, 5);
    const a = attentionRef(x);
    const b = attentionRef({ ...x, P: 0 });
    expect(b.O).toEqual(a.O);
    expect(b.L).toEqual(a.L);
    const ga = attentionBackwardRef({ ...x, dO });
    const gb = attentionBackwardRef({ ...x, P: 0, dO });
    expect(gb.dQ).toEqual(ga.dQ);
    expect(gb.dK).toEqual(ga.dK);
    expect(gb.dV).toEqual(ga.dV);
    expect(gb.dPrefixKV.length).toBe(0);
  });

  it('a prefix row with a huge score takes the whole softmax; L includes the prefix', () => {
    const shape = { T: 3, Hq: 1, Hkv: 1, D: 2, P: 2, scale: 1 };
    const x = { ...shape, Q: [1, 0, 1, 0, 1, 0], K: [0, 0, 0, 0, 0, 0], V: [1, 1, 2, 2, 3, 3], seg: [0, 0, 0], prefixKV: [0, 0, 5, 6, 40, 0, 7, 8] };
    const { O, L } = attentionRef(x);
    // Scores: prefix 0 → 0, prefix 1 → 40, own keys → 0; row i has i + 1 own keys.
    for (let i = 0; i < 3; i++) {
      expect(L[i]).toBeCloseTo(40 + Math.log(1 + (2 + i) * Math.exp(-40)), 12);
      expect(O[2 * i]).toBeCloseTo(7, 12);
      expect(O[2 * i + 1]).toBeCloseTo(8, 12);
    }
  });

  it('rejects a missing or mis-sized prefixKV, a prefixKV without P, and a bad P', () => {
    const shape = { T: 2, Hq: 2, Hkv: 1, D: 2 };
    const x = inputs(shape, [0, 0], 1);
    expect(() => attentionRef({ ...x, P: 2 })).toThrow(/P = 2 prefix rows need prefixKV/);
    expect(() => attentionRef({ ...x, P: 2, prefixKV: [1, 2, 3] })).toThrow(/prefixKV has 3 elements.*needs 8/);
    expect(() => attentionRef({ ...x, prefixKV: [1, 2, 3, 4] })).toThrow(/prefixKV given but P is 0/);
    expect(() => attentionRef({ ...x, P: 1.5, prefixKV: [] })).toThrow(/P \(prefix rows\) must be a non-negative integer/);
  });
});
