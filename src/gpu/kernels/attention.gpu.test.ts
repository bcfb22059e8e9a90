import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { attentionBackwardRef, attentionRef, type AttentionShape } from '../ref/attention.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import {
  attentionStatsBytes,
  recordAttentionBackward,
  recordAttentionBackwardRowwise,
  recordAttentionForward,
  recordAttentionForwardRowwise,
} from './attention.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

interface Case extends AttentionShape {
  name: string;
  seg: number[];
}

/** Segment ids for consecutive runs of the given lengths (padding: runs of 1). */
function segments(...lengths: number[]): number[] {
  return lengths.flatMap((n, s) => Array<number>(n).fill(s));
}

const CASES: Case[] = [
  { name: 'T=1', T: 1, Hq: 1, Hkv: 1, D: 8, seg: [0] },
  { name: 'T=7 Hq=4 Hkv=2 D=16', T: 7, Hq: 4, Hkv: 2, D: 16, seg: segments(7) },
  { name: 'T=19 Hq=Hkv=3 D=12, segments of 12 and 7', T: 19, Hq: 3, Hkv: 3, D: 12, seg: segments(12, 7) },
  { name: 'T=19 Hq=4 Hkv=2 D=64, rows of 5 and 11 + 3 padding', T: 19, Hq: 4, Hkv: 2, D: 64, seg: segments(5, 11, 1, 1, 1) },
  { name: 'T=9 Hq=2 Hkv=1 D=128, interleaved segments, scale 0.3', T: 9, Hq: 2, Hkv: 1, D: 128, scale: 0.3, seg: [0, 1, 0, 1, 1, 0, 2, 2, 0] },
  { name: 'T=70 Hq=2 Hkv=2 D=8 (two workgroups of rows)', T: 70, Hq: 2, Hkv: 2, D: 8, seg: segments(33, 37) },
];

// f32 sums of ≤ 70 terms, dot products of ≤ 128: observed errors ≤ 3e-7 on lavapipe and SwiftShader.
const TOL = { abs: 1e-6, rel: 1e-5 };

async function runAttention(c: Case, seed: number) {
  const { T, Hq, Hkv, D } = c;
  const P = c.P ?? 0;
  const nPrefix = P * 2 * Hkv * D;
  const prefixKV = P > 0 ? randomArray(nPrefix, seed + 4) : undefined;
  const Q = randomArray(T * Hq * D, seed);
  const K = randomArray(T * Hkv * D, seed + 1);
  const V = randomArray(T * Hkv * D, seed + 2);
  const dO = randomArray(T * Hq * D, seed + 3);
  const seg = Uint32Array.from(c.seg);
  const buf = {
    Q: upload(e, Q),
    K: upload(e, K),
    V: upload(e, V),
    seg: upload(e, seg),
    O: zeros(e, T * Hq * D),
    L: zeros(e, T * Hq),
    dO: upload(e, dO),
    stats: zeros(e, attentionStatsBytes(c) / 4),
    // Non-zero garbage: the backward must overwrite, not accumulate.
    dQ: upload(e, randomArray(T * Hq * D, 1)),
    dK: upload(e, randomArray(T * Hkv * D, 2)),
    dV: upload(e, randomArray(T * Hkv * D, 3)),
    ...(prefixKV ? { prefixKV: upload(e, prefixKV), dPrefixKV: upload(e, randomArray(nPrefix, 4)) } : {}),
  };
  const rec = e.record('attention-test');
  recordAttentionForward(rec, c, buf);
  recordAttentionBackward(rec, c, buf);
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

describe('attention', () => {
  it.each(CASES)('forward and backward match the reference: $name', async (c) => {
    const { got, want } = await runAttention(c, c.T * 13 + c.D);
    for (const key of ['O', 'L', 'dQ', 'dK', 'dV'] as const) {
      expect(mismatches(got[key], want[key], TOL), key).toEqual([]);
    }
  });

  it.each([
    { name: 'P=3 T=19 Hq=6 Hkv=2 D=8, segments of 12 and 7', T: 19, Hq: 6, Hkv: 2, D: 8, P: 3, seg: segments(12, 7) },
    { name: 'P=33 T=9 Hq=Hkv=2 D=5, interleaved segments', T: 9, Hq: 2, Hkv: 2, D: 5, P: 33, seg: [0, 1, 0, 1, 1, 0, 2, 2, 0] },
  ])('with prefix rows, forward and backward (dPrefixKV too) match the reference: $name', async (c) => {
    const { got, want } = await runAttention(c, c.T * 13 + c.D);
    for (const key of ['O', 'L', 'dQ', 'dK', 'dV', 'dPrefixKV'] as const) {
      expect(mismatches(got[key], want[key], TOL), key).toEqual([]);
    }
  });

  it('the row-wise kernel refuses prefix rows', () => {
    const rec = e.record('attention-rowwise-prefix');
    const u = rec.unused;
    const b = { Q: u, K: u, V: u, seg: u, O: u, L: u, prefixKV: u };
    const shape = { T: 2, Hq: 1, Hkv: 1, D: 1, P: 1 };
    expect(() => recordAttentionForwardRowwise(rec, shape, b)).toThrow(/row-wise kernel.*P = 1.*flash kernel/);
    expect(() => recordAttentionBackwardRowwise(rec, shape, { ...b, dO: u, stats: u, dQ: u, dK: u, dV: u, dPrefixKV: u })).toThrow(/row-wise kernel/);
  });

  it('rejects head_dim above 128 and Hq not a multiple of Hkv', () => {
    const rec = e.record('attention-reject');
    const b = { Q: rec.unused, K: rec.unused, V: rec.unused, seg: rec.unused, O: rec.unused, L: rec.unused };
    expect(() => recordAttentionForward(rec, { T: 1, Hq: 1, Hkv: 1, D: 130 }, b)).toThrow(/head_dim 130/);
    expect(() => recordAttentionForward(rec, { T: 1, Hq: 3, Hkv: 2, D: 8 }, b)).toThrow(/multiple of Hkv/);
  });
});
