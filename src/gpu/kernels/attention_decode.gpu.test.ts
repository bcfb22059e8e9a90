import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { attentionRef } from '../ref/attention.ref.ts';
import { attentionDecodeRef, type AttentionDecodeShape } from '../ref/attention_decode.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { recordAttentionDecode, recordKvAppend } from './attention_decode.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

interface Case extends AttentionDecodeShape {
  name: string;
}

const CASES: Case[] = [
  { name: 'first token: n=1 p0=0', n: 1, p0: 0, maxLen: 4, Hq: 1, Hkv: 1, D: 8 },
  { name: 'one step: n=1 p0=12 Hq=4 Hkv=2 D=16', n: 1, p0: 12, maxLen: 20, Hq: 4, Hkv: 2, D: 16 },
  { name: 'n=5 after p0=7, Hq=Hkv=3 D=12', n: 5, p0: 7, maxLen: 13, Hq: 3, Hkv: 3, D: 12 },
  { name: 'prefill of 70 rows (three workgroups of rows) Hq=2 Hkv=1 D=8', n: 70, p0: 0, maxLen: 71, Hq: 2, Hkv: 1, D: 8 },
  { name: 'n=2 p0=20 Hq=2 Hkv=1 D=128 scale 0.3', n: 2, p0: 20, maxLen: 30, Hq: 2, Hkv: 1, D: 128, scale: 0.3 },
];

// Same sums as attention.wgsl's forward (≤ 71 keys, dot products of ≤ 128): same tolerance as its test.
const TOL = { abs: 1e-6, rel: 1e-5 };

describe('attention_decode', () => {
  it.each(CASES)('the decode of the last rows equals the full causal forward: $name', async (c) => {
    const { n, p0, maxLen, Hq, Hkv, D } = c;
    const T = p0 + n;
    const seed = T * 7 + D;
    // The whole sequence, as the training forward sees it.
    const Qall = randomArray(T * Hq * D, seed);
    const K = randomArray(T * Hkv * D, seed + 1);
    const V = randomArray(T * Hkv * D, seed + 2);
    const full = attentionRef({ T, Hq, Hkv, D, scale: c.scale, Q: Qall, K, V, seg: new Uint32Array(T) });
    const want = full.O.slice(p0 * Hq * D);

    // The cache holds positions 0..p0−1; the new rows' K/V arrive separately and are appended. Every position
    // the kernel must not read (the new rows' slots before the append, everything past p0+n−1) is NaN.
    const rowKv = Hkv * D;
    const Kc = new Float32Array(maxLen * rowKv).fill(NaN);
    const Vc = new Float32Array(maxLen * rowKv).fill(NaN);
    Kc.set(K.subarray(0, p0 * rowKv));
    Vc.set(V.subarray(0, p0 * rowKv));
    const buf = {
      Q: upload(e, Qall.slice(p0 * Hq * D)),
      k: upload(e, K.slice(p0 * rowKv)),
      v: upload(e, V.slice(p0 * rowKv)),
      Kc: upload(e, Kc),
      Vc: upload(e, Vc),
      O: upload(e, new Float32Array(n * Hq * D).fill(NaN)),
    };
    const rec = e.record('attention-decode-test');
    recordKvAppend(rec, c, buf);
    recordAttentionDecode(rec, c, buf);
    await rec.submit();
    const got = await download(e, buf.O, n * Hq * D);

    const ref = attentionDecodeRef({ ...c, Q: Qall.slice(p0 * Hq * D), Kc: K, Vc: V });
    expect(mismatches(ref, want, { abs: 1e-12, rel: 1e-12 }), 'reference').toEqual([]);
    expect(mismatches(got, want, TOL), 'kernel').toEqual([]);
    const cached = await download(e, buf.Kc, T * rowKv);
    expect(mismatches(cached, K, { abs: 0, rel: 0 }), 'appended K').toEqual([]);
  });

  it('rejects positions outside the cache, head_dim above 128 and Hq not a multiple of Hkv', () => {
    const rec = e.record('attention-decode-reject');
    const b = { Q: rec.unused, Kc: rec.unused, Vc: rec.unused, O: rec.unused };
    expect(() => recordAttentionDecode(rec, { n: 2, p0: 7, maxLen: 8, Hq: 1, Hkv: 1, D: 8 }, b)).toThrow(/do not fit a cache of 8/);
    expect(() => recordAttentionDecode(rec, { n: 1, p0: 0, maxLen: 1, Hq: 1, Hkv: 1, D: 130 }, b)).toThrow(/head_dim 130/);
    expect(() => recordAttentionDecode(rec, { n: 1, p0: 0, maxLen: 1, Hq: 3, Hkv: 2, D: 8 }, b)).toThrow(/multiple of Hkv/);
    expect(() => recordKvAppend(rec, { n: 0, p0: 0, maxLen: 1, Hq: 1, Hkv: 1, D: 8 }, { k: zeros(e, 1), v: zeros(e, 1), Kc: zeros(e, 1), Vc: zeros(e, 1) }))
      .toThrow(/n must be a positive integer/);
  });
});
