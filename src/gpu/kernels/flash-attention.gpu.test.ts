// Flash attention against the float64 reference (src/gpu/ref/attention.ref.ts) at odd sizes, with and without
// subgroups, and its backward against central finite differences of its own forward; the same with prefix
// key/value rows (prefix tuning, shape.P > 0).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from '../engine.ts';
import { openNodeGpu } from '../node.ts';
import { attentionBackwardRef, attentionRef, type AttentionShape } from '../ref/attention.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, driverName, testEngine, upload, zeros } from '../testing-gpu.ts';
import {
  flashAttentionStatsBytes,
  flashPrefixChunks,
  flashTileRows,
  recordFlashAttentionBackward,
  recordFlashAttentionForward,
} from './flash-attention.ts';

let withSg: Engine;
let noSg: Engine;
beforeAll(async () => {
  withSg = await testEngine();
  noSg = await createEngine(await openNodeGpu({ disableFeatures: ['subgroups'] }));
});
afterAll(() => noSg?.gpu.destroy());

interface Case extends AttentionShape {
  name: string;
  seg: number[];
}

/** Segment ids for consecutive runs of the given lengths (padding: runs of 1). */
function segments(...lengths: number[]): number[] {
  return lengths.flatMap((n, s) => Array<number>(n).fill(s));
}

const CASES: Case[] = [
  { name: 'T=1 D=5', T: 1, Hq: 1, Hkv: 1, D: 5, seg: [0] },
  { name: 'T=37 G=3 D=7, segments 1, 20, 1, 15', T: 37, Hq: 3, Hkv: 1, D: 7, seg: segments(1, 20, 1, 15) },
  { name: 'T=45 Hq=4 Hkv=2 D=64, rows of 5 and 30 + 3 padding + 7', T: 45, Hq: 4, Hkv: 2, D: 64, seg: segments(5, 30, 1, 1, 1, 7) },
  { name: 'T=23 G=2 D=128, interleaved segments, scale 0.3', T: 23, Hq: 2, Hkv: 1, D: 128, scale: 0.3, seg: Array.from({ length: 23 }, (_, i) => (i * 7) % 3) },
  { name: 'T=70 G=1 D=16, segments 33 and 37 (three blocks)', T: 70, Hq: 2, Hkv: 2, D: 16, seg: segments(33, 37) },
  { name: 'T=600 G=2 D=3, segments 560 and 40 (scans past 512 tokens)', T: 600, Hq: 2, Hkv: 1, D: 3, seg: segments(560, 40) },
];

// f32 dot products of ≤ 128 terms summed as 4 interleaved lanes, online-softmax rescaling, sums over ≤ 600 rows:
// observed errors ≤ 4e-7 on lavapipe and SwiftShader; declared with room.
const TOL = { abs: 2e-6, rel: 2e-5 };

async function run(e: Engine, c: Case, seed: number, subgroups: boolean) {
  const { T, Hq, Hkv, D } = c;
  const P = c.P ?? 0;
  const Q = randomArray(T * Hq * D, seed);
  const K = randomArray(T * Hkv * D, seed + 1);
  const V = randomArray(T * Hkv * D, seed + 2);
  const dO = randomArray(T * Hq * D, seed + 3);
  const prefixKV = P > 0 ? randomArray(P * 2 * Hkv * D, seed + 4) : undefined;
  const nPrefix = P * 2 * Hkv * D;
  const buf = {
    Q: upload(e, Q),
    K: upload(e, K),
    V: upload(e, V),
    seg: upload(e, Uint32Array.from(c.seg)),
    O: zeros(e, T * Hq * D),
    L: zeros(e, T * Hq),
    dO: upload(e, dO),
    stats: zeros(e, flashAttentionStatsBytes(c) / 4),
    // Non-zero garbage: the backward must overwrite, not accumulate.
    dQ: upload(e, randomArray(T * Hq * D, 1)),
    dK: upload(e, randomArray(T * Hkv * D, 2)),
    dV: upload(e, randomArray(T * Hkv * D, 3)),
    ...(prefixKV ? { prefixKV: upload(e, prefixKV), dPrefixKV: upload(e, randomArray(nPrefix, 4)) } : {}),
  };
  const rec = e.record('flash-attention-test');
  recordFlashAttentionForward(rec, c, buf, { subgroups });
  recordFlashAttentionBackward(rec, c, buf, { subgroups });
  await rec.submit();
  const got = {
    O: await download(e, buf.O, T * Hq * D),
    L: await download(e, buf.L, T * Hq),
    dQ: await download(e, buf.dQ, T * Hq * D),
    dK: await download(e, buf.dK, T * Hkv * D),
    dV: await download(e, buf.dV, T * Hkv * D),
    dPrefixKV: buf.dPrefixKV ? await download(e, buf.dPrefixKV, nPrefix) : new Float32Array(0),
  };
  const x = { ...c, Q, K, V, seg: c.seg, prefixKV };
  const want = { ...attentionRef(x), ...attentionBackwardRef({ ...x, dO }) };
  return { got, want };
}

// Prefix rows: one tile (P=1), a few (P=3), and more than one tile and one workgroup of prefix rows (P=33 > BT, ROWS);
// packed segments of odd lengths, an odd head dim and D = 64, GQA (G = 3) and Hq = Hkv. The last three split
// backward_dprefix's G·T query rows into chunks (flashPrefixChunks; the others are one chunk each): 7 chunks of 65
// rows (chunk edges inside tiles, heads and segments), 4 of 73 at D = 64, and 2 of 66 with Hq = Hkv and P = 33. Two
// head dims only, and one team-sum variant per driver (PREFIX_VARIANTS): the prefix path is its own compiled variant,
// and a cold lavapipe compile of one costs a minute or more in CI; the team sums it uses are the P = 0 cases' and are
// tested there. Observed errors under TOL: ≤ 1.1e-6 absolute (L of P=33, |L| ≈ 5; dPrefixKV ≤ 7.3e-7, a sum over
// every query and head of the group; the chunked cases ≤ 8.1e-7, dPrefixKV ≤ 5.1e-7) on lavapipe and SwiftShader.
const PREFIX_CASES: Case[] = [
  { name: 'P=1 T=37 Hq=6 Hkv=2 D=5, segments 1, 20, 1, 15', T: 37, Hq: 6, Hkv: 2, D: 5, P: 1, seg: segments(1, 20, 1, 15) },
  { name: 'P=3 T=45 Hq=Hkv=3 D=5, segments 5, 30 + 3 padding + 7', T: 45, Hq: 3, Hkv: 3, D: 5, P: 3, seg: segments(5, 30, 1, 1, 1, 7) },
  { name: 'P=33 T=41 Hq=6 Hkv=2 D=64, segments 13, 27, 1', T: 41, Hq: 6, Hkv: 2, D: 64, P: 33, seg: segments(13, 27, 1) },
  { name: 'P=33 T=23 Hq=Hkv=2 D=5, interleaved segments, scale 0.3', T: 23, Hq: 2, Hkv: 2, D: 5, P: 33, scale: 0.3, seg: Array.from({ length: 23 }, (_, i) => (i * 7) % 3) },
  { name: 'P=3 T=150 Hq=6 Hkv=2 D=5, 7 chunks, segments 70, 1, 79', T: 150, Hq: 6, Hkv: 2, D: 5, P: 3, seg: segments(70, 1, 79) },
  { name: 'P=5 T=97 Hq=6 Hkv=2 D=64, 4 chunks, segments 40, 57', T: 97, Hq: 6, Hkv: 2, D: 64, P: 5, seg: segments(40, 57) },
  { name: 'P=33 T=131 Hq=Hkv=3 D=5, 2 chunks, segments 64, 67', T: 131, Hq: 3, Hkv: 3, D: 5, P: 33, seg: segments(64, 67) },
];

const VARIANTS = [
  { name: 'subgroups', subgroups: true },
  { name: 'no subgroups', subgroups: false },
];
/** The prefix cases' variant: subgroups on lavapipe, the workgroup-memory sums on SwiftShader (both drivers have
 *  subgroups; between them both variants run the prefix path). */
const PREFIX_VARIANTS = VARIANTS.filter((v) => v.subgroups === (driverName !== 'swiftshader'));

describe(`flash attention (${driverName})`, () => {
  it('tiles fit 16 KiB of workgroup memory for every head dim', () => {
    for (const subgroups of [true, false]) {
      for (let D = 1; D <= 128; D++) {
        const bt = flashTileRows({ D, subgroups });
        const dp = 4 * Math.ceil(D / 4);
        const bytes = 2 * bt * dp * 4 + (subgroups ? 0 : 32 * 4 * bt * 2 * 4) + bt * 12 + 32 * 4 + 12;
        expect(bytes, `D=${D}`).toBeLessThanOrEqual(16384);
        expect(bt).toBeGreaterThanOrEqual(subgroups ? 15 : 7);
      }
    }
  });

  it('splits the prefix gradient into chunks by shape: one for small cases, ≥ 256 workgroups for large ones', () => {
    expect(PREFIX_CASES.map((c) => flashPrefixChunks(c))).toEqual([
      { chunks: 1, span: 111 },
      { chunks: 1, span: 45 },
      { chunks: 1, span: 123 },
      { chunks: 1, span: 23 },
      { chunks: 7, span: 65 },
      { chunks: 4, span: 73 },
      { chunks: 2, span: 66 },
    ]);
    expect(flashPrefixChunks({ T: 37, Hq: 6, Hkv: 2, D: 5 })).toEqual({ chunks: 1, span: 111 }); // P = 0 (the host dispatches no backward_dprefix)
    // Qwen2.5-0.5B (Hq = 14, Hkv = 2, D = 64) with a packed batch of 2048 tokens: 2 prefix blocks × 128 chunks.
    const qwen = { T: 2048, Hq: 14, Hkv: 2, D: 64, P: 20 };
    expect(flashPrefixChunks(qwen)).toEqual({ chunks: 128, span: 112 });
    // The partials (128, P, 2, Hkv, D) fit where the G > 1 dK, dV partials go.
    expect(flashAttentionStatsBytes(qwen)).toBe((2 * 2048 * 14 + 2 * 2048 * 14 * 64) * 4);
    // Hq = Hkv: the stats grow by the partials alone.
    const mha = { T: 4000, Hq: 4, Hkv: 4, D: 8, P: 40 };
    const { chunks } = flashPrefixChunks(mha);
    expect(chunks * Math.ceil(40 / 32) * 4).toBeGreaterThanOrEqual(256);
    expect(flashAttentionStatsBytes(mha)).toBe((2 * 4000 * 4 + chunks * 40 * 2 * 4 * 8) * 4);
  });

  for (const v of VARIANTS) {
    it.for(CASES)(`${v.name}: forward and backward match the reference: $name`, async (c, ctx) => {
      if (v.subgroups && !withSg.gpu.features.has('subgroups')) return ctx.skip(); // adapter without subgroups
      const e = v.subgroups ? withSg : noSg;
      const { got, want } = await run(e, c, c.T * 13 + c.D, v.subgroups);
      for (const key of ['O', 'L', 'dQ', 'dK', 'dV'] as const) {
        expect(mismatches(got[key], want[key], TOL), key).toEqual([]);
      }
    });

    it.for(PREFIX_CASES)(`${v.name}: prefix rows: forward and backward (dPrefixKV too) match the reference: $name`, async (c, ctx) => {
      if (!PREFIX_VARIANTS.includes(v)) return ctx.skip(); // the other driver runs this variant's prefix path
      if (v.subgroups && !withSg.gpu.features.has('subgroups')) return ctx.skip();
      const e = v.subgroups ? withSg : noSg;
      const { got, want } = await run(e, c, c.T * 17 + c.D + (c.P ?? 0), v.subgroups);
      expect(got.dPrefixKV.length).toBe((c.P ?? 0) * 2 * c.Hkv * c.D);
      for (const key of ['O', 'L', 'dQ', 'dK', 'dV', 'dPrefixKV'] as const) {
        expect(mismatches(got[key], want[key], TOL), key).toEqual([]);
      }
    });
  }

  it('P = 0 given explicitly is bit-identical to no prefix', async () => {
    const c = CASES[2];
    for (const v of VARIANTS) {
      if (v.subgroups && !withSg.gpu.features.has('subgroups')) continue;
      const e = v.subgroups ? withSg : noSg;
      const a = await run(e, c, 5, v.subgroups);
      const b = await run(e, { ...c, P: 0 }, 5, v.subgroups);
      for (const key of ['O', 'L', 'dQ', 'dK', 'dV'] as const) expect(b.got[key], `${v.name} ${key}`).toEqual(a.got[key]);
    }
  });

  it('rejects a missing prefixKV or dPrefixKV when P > 0, and either when P = 0', () => {
    const rec = withSg.record('flash-attention-reject');
    const u = rec.unused;
    const b = { Q: u, K: u, V: u, seg: u, O: u, L: u };
    const bw = { ...b, dO: u, stats: u, dQ: u, dK: u, dV: u };
    const shape = { T: 3, Hq: 1, Hkv: 1, D: 4 };
    expect(() => recordFlashAttentionForward(rec, { ...shape, P: 2 }, b)).toThrow(/P = 2 prefix rows but no prefixKV/);
    expect(() => recordFlashAttentionForward(rec, shape, { ...b, prefixKV: u })).toThrow(/prefixKV buffer was given but shape.P is 0/);
    expect(() => recordFlashAttentionForward(rec, { ...shape, P: 2 }, { ...b, prefixKV: u })).toThrow(/prefixKV holds 16 bytes.*needs 64/);
    expect(() => recordFlashAttentionBackward(rec, { ...shape, P: 1 }, { ...bw, prefixKV: zeros(withSg, 8) })).toThrow(/no dPrefixKV/);
    expect(() => recordFlashAttentionBackward(rec, shape, { ...bw, dPrefixKV: u })).toThrow(/dPrefixKV buffer was given but shape.P is 0/);
    expect(() => recordFlashAttentionForward(rec, { ...shape, P: -1 }, b)).toThrow(/P \(prefix rows\) must be a non-negative integer/);
  });

  it('backward matches central differences of the kernel forward (tiny case, every input element)', async () => {
    // Base problem: T=5 tokens in segments of 3 and 2, Hq=2, Hkv=1, D=3; loss = Σ O·W. Every perturbed copy of
    // the inputs is packed as its own segments into one big batch, so one forward evaluates all of them.
    const base = { T: 5, Hq: 2, Hkv: 1, D: 3 };
    const segBase = [0, 0, 0, 1, 1];
    const Q = randomArray(base.T * base.Hq * base.D, 71);
    const K = randomArray(base.T * base.Hkv * base.D, 72);
    const V = randomArray(base.T * base.Hkv * base.D, 73);
    const W = randomArray(base.T * base.Hq * base.D, 74);
    const inputs = { Q, K, V };
    const perturb: { name: 'Q' | 'K' | 'V'; index: number; sign: number }[] = [];
    for (const name of ['Q', 'K', 'V'] as const) {
      for (let index = 0; index < inputs[name].length; index++) for (const sign of [1, -1]) perturb.push({ name, index, sign });
    }
    const copies = perturb.length;
    const eps = 1e-2;
    const big = { ...base, T: base.T * copies };
    const bigIn = { Q: new Float32Array(copies * Q.length), K: new Float32Array(copies * K.length), V: new Float32Array(copies * V.length) };
    const seg = new Uint32Array(big.T);
    perturb.forEach((p, c) => {
      for (const name of ['Q', 'K', 'V'] as const) bigIn[name].set(inputs[name], c * inputs[name].length);
      bigIn[p.name][c * inputs[p.name].length + p.index] += p.sign * eps;
      for (let t = 0; t < base.T; t++) seg[c * base.T + t] = 2 * c + segBase[t];
    });
    for (const v of VARIANTS) {
      if (v.subgroups && !withSg.gpu.features.has('subgroups')) continue;
      const e = v.subgroups ? withSg : noSg;
      const O = zeros(e, big.T * base.Hq * base.D);
      const L = zeros(e, big.T * base.Hq);
      const fwd = { Q: upload(e, bigIn.Q), K: upload(e, bigIn.K), V: upload(e, bigIn.V), seg: upload(e, seg), O, L };
      // The analytic gradient at the unperturbed point: the base problem alone, dO = W.
      const one = {
        Q: upload(e, Q), K: upload(e, K), V: upload(e, V), seg: upload(e, Uint32Array.from(segBase)),
        O: zeros(e, Q.length), L: zeros(e, base.T * base.Hq), dO: upload(e, W),
        stats: zeros(e, flashAttentionStatsBytes(base) / 4), dQ: zeros(e, Q.length), dK: zeros(e, K.length), dV: zeros(e, V.length),
      };
      const rec = e.record('flash-attention-fd');
      recordFlashAttentionForward(rec, big, fwd, v);
      recordFlashAttentionForward(rec, base, one, v);
      recordFlashAttentionBackward(rec, base, one, v);
      await rec.submit();
      const Obig = await download(e, O, big.T * base.Hq * base.D);
      const grads = { Q: await download(e, one.dQ, Q.length), K: await download(e, one.dK, K.length), V: await download(e, one.dV, V.length) };
      const fd = { Q: new Float64Array(Q.length), K: new Float64Array(K.length), V: new Float64Array(V.length) };
      perturb.forEach((p, c) => {
        let loss = 0;
        for (let k = 0; k < W.length; k++) loss += Obig[c * W.length + k] * W[k];
        fd[p.name][p.index] += (p.sign * loss) / (2 * eps);
      });
      for (const name of ['Q', 'K', 'V'] as const) {
        // f32 forward: loss rounding ~1e-6 over 2·eps, plus O(eps²) truncation.
        expect(mismatches(grads[name], fd[name], { abs: 5e-4, rel: 5e-3 }), `${v.name} d${name}`).toEqual([]);
      }
    }
  });

  it('with prefix rows, dPrefixKV and dQ match central differences of the kernel forward (tiny case, every element)', async () => {
    // Base problem: T=5 tokens in segments of 3 and 2, P=2 prefix rows, Hq=2, Hkv=1, D=5 (the prefix cases' dim: one
    // compiled variant fewer); loss = Σ O·W. Q copies share the prefix, so they pack into one forward as their own
    // segments; each prefixKV copy is its own forward.
    const base = { T: 5, Hq: 2, Hkv: 1, D: 5, P: 2 };
    const segBase = [0, 0, 0, 1, 1];
    const Q = randomArray(base.T * base.Hq * base.D, 81);
    const K = randomArray(base.T * base.Hkv * base.D, 82);
    const V = randomArray(base.T * base.Hkv * base.D, 83);
    const prefixKV = randomArray(base.P * 2 * base.Hkv * base.D, 84);
    const W = randomArray(base.T * base.Hq * base.D, 85);
    const eps = 1e-2;
    const qCopies = 2 * Q.length;
    const big = { ...base, T: base.T * qCopies };
    const bigQ = new Float32Array(qCopies * Q.length);
    const bigK = new Float32Array(qCopies * K.length);
    const bigV = new Float32Array(qCopies * V.length);
    const bigSeg = new Uint32Array(big.T);
    for (let c = 0; c < qCopies; c++) {
      bigQ.set(Q, c * Q.length);
      bigQ[c * Q.length + (c >> 1)] += (c & 1 ? -1 : 1) * eps;
      bigK.set(K, c * K.length);
      bigV.set(V, c * V.length);
      for (let t = 0; t < base.T; t++) bigSeg[c * base.T + t] = 2 * c + segBase[t];
    }
    for (const v of PREFIX_VARIANTS) {
      if (v.subgroups && !withSg.gpu.features.has('subgroups')) continue;
      const e = v.subgroups ? withSg : noSg;
      const rec = e.record('flash-attention-prefix-fd');
      const pre = upload(e, prefixKV);
      const Obig = zeros(e, big.T * base.Hq * base.D);
      recordFlashAttentionForward(rec, big, { Q: upload(e, bigQ), K: upload(e, bigK), V: upload(e, bigV), seg: upload(e, bigSeg), prefixKV: pre, O: Obig, L: zeros(e, big.T * base.Hq) }, v);
      const segOne = upload(e, Uint32Array.from(segBase));
      const [q, k, vv] = [upload(e, Q), upload(e, K), upload(e, V)];
      const prefixO = [];
      for (let c = 0; c < 2 * prefixKV.length; c++) {
        const pkv = prefixKV.slice();
        pkv[c >> 1] += (c & 1 ? -1 : 1) * eps;
        const O = zeros(e, Q.length);
        recordFlashAttentionForward(rec, base, { Q: q, K: k, V: vv, seg: segOne, prefixKV: upload(e, pkv), O, L: zeros(e, base.T * base.Hq) }, v);
        prefixO.push(O);
      }
      // The analytic gradient at the unperturbed point, dO = W.
      const one = {
        Q: q, K: k, V: vv, seg: segOne, prefixKV: pre, O: zeros(e, Q.length), L: zeros(e, base.T * base.Hq), dO: upload(e, W),
        stats: zeros(e, flashAttentionStatsBytes(base) / 4), dQ: zeros(e, Q.length), dK: zeros(e, K.length), dV: zeros(e, V.length),
        dPrefixKV: zeros(e, prefixKV.length),
      };
      recordFlashAttentionForward(rec, base, one, v);
      recordFlashAttentionBackward(rec, base, one, v);
      await rec.submit();
      const loss = (O: Float32Array, at: number) => {
        let sum = 0;
        for (let k2 = 0; k2 < W.length; k2++) sum += O[at + k2] * W[k2];
        return sum;
      };
      const fdQ = new Float64Array(Q.length);
      const Ob = await download(e, Obig, big.T * base.Hq * base.D);
      for (let c = 0; c < qCopies; c++) fdQ[c >> 1] += ((c & 1 ? -1 : 1) * loss(Ob, c * W.length)) / (2 * eps);
      const fdPre = new Float64Array(prefixKV.length);
      for (let c = 0; c < prefixO.length; c++) fdPre[c >> 1] += ((c & 1 ? -1 : 1) * loss(await download(e, prefixO[c], Q.length), 0)) / (2 * eps);
      const tol = { abs: 5e-4, rel: 5e-3 }; // as above: f32 loss rounding over 2·eps, O(eps²) truncation
      expect(mismatches(await download(e, one.dQ, Q.length), fdQ, tol), `${v.name} dQ`).toEqual([]);
      expect(mismatches(await download(e, one.dPrefixKV, prefixKV.length), fdPre, tol), `${v.name} dPrefixKV`).toEqual([]);
    }
  });
});
