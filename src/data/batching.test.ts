// Packing invariants, the batcher's layout and determinism, seeded shuffles and splits, histograms.

import { describe, expect, it } from 'vitest';
import { Batcher, collate } from './batcher.ts';
import { IGNORE_INDEX, type TokenizedRow } from './encode.ts';
import { lengthHistogram } from './histogram.ts';
import { packRows } from './packing.ts';
import { deriveSeed, permutation, Rng, shuffled, splitEval } from './rng.ts';

/** Rows of varied lengths with a masked prefix, ids encoding (row, position) so mix-ups show. */
function makeRows(lengths: number[]): TokenizedRow[] {
  return lengths.map((n, r) => {
    const input_ids = Int32Array.from({ length: n }, (_, t) => 1000 * (r + 1) + t);
    const labels = Int32Array.from(input_ids, (id, t) => (t < Math.min(2, n - 1) ? IGNORE_INDEX : id));
    return { input_ids, labels };
  });
}

/** (sum of fake per-target losses, count) under the loss contract, packed or not. */
function lossTerms(tokens: Int32Array, labels: Int32Array, segmentIds: Int32Array | null, T: number) {
  let sum = 0;
  let count = 0;
  for (let b = 0; b < tokens.length / T; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const target = labels[b * T + t + 1];
      if (target === IGNORE_INDEX) continue;
      if (segmentIds) expect(segmentIds[b * T + t]).toBe(segmentIds[b * T + t + 1]); // never across rows
      sum += target * 7 + tokens[b * T + t];
      count++;
    }
  }
  return { sum, count };
}

describe('packing', () => {
  const lengths = [5, 3, 9, 1, 2, 8, 4, 4, 6, 10];
  const rows = makeRows(lengths);
  const packed = packRows(rows, 10);

  it('keeps every row once, in order, within maxLength', () => {
    expect(packed.flatMap((p) => p.sources)).toEqual(lengths.map((_, i) => i));
    for (const p of packed) expect(p.input_ids.length).toBeLessThanOrEqual(10);
    expect(packed.length).toBeLessThan(rows.length);
  });

  it('segments number rows from 1 and positions restart at 0 per row', () => {
    for (const p of packed) {
      let at = 0;
      p.sources.forEach((src, k) => {
        const n = rows[src].input_ids.length;
        expect(Array.from(p.segment_ids.subarray(at, at + n))).toEqual(new Array(n).fill(k + 1));
        expect(Array.from(p.positions.subarray(at, at + n))).toEqual(Array.from({ length: n }, (_, t) => t));
        expect(Array.from(p.input_ids.subarray(at, at + n))).toEqual(Array.from(rows[src].input_ids));
        expect(p.labels[at]).toBe(IGNORE_INDEX);
        at += n;
      });
    }
  });

  it('leaves the loss unchanged: same trained targets, none across a row boundary', () => {
    const unpacked = rows.map((r) => lossTerms(r.input_ids, r.labels, null, r.input_ids.length));
    const flat = packed.map((p) => lossTerms(p.input_ids, p.labels, p.segment_ids, p.input_ids.length));
    const total = (xs: { sum: number; count: number }[]) => xs.reduce((a, x) => ({ sum: a.sum + x.sum, count: a.count + x.count }), { sum: 0, count: 0 });
    expect(total(flat)).toEqual(total(unpacked));
  });

  it('refuses rows longer than the block', () => {
    expect(() => packRows(makeRows([11]), 10)).toThrow(/truncate first/);
  });
});

describe('batcher', () => {
  const rows = makeRows([5, 3, 7, 2, 6]);

  it('pads with a padding segment: pad id, label -100, segment 0, positions from 0', () => {
    const mb = collate([rows[0], rows[1]], [0, 1], { padId: 99, padToMultipleOf: 4 });
    expect([mb.B, mb.T]).toEqual([2, 8]);
    const row1 = (a: Int32Array) => Array.from(a.subarray(8, 16));
    expect(row1(mb.tokens)).toEqual([2000, 2001, 2002, 99, 99, 99, 99, 99]);
    expect(row1(mb.labels)).toEqual([-100, -100, 2002, -100, -100, -100, -100, -100]);
    expect(row1(mb.segmentIds)).toEqual([1, 1, 1, 0, 0, 0, 0, 0]);
    expect(row1(mb.positions)).toEqual([0, 1, 2, 0, 1, 2, 3, 4]);
    expect(mb.trainedTokens).toBe(3 + 1);
    expect(lossTerms(mb.tokens, mb.labels, mb.segmentIds, mb.T).count).toBe(mb.trainedTokens);
  });

  it('carries packed segment ids and positions through', () => {
    const packed = packRows(rows, 10);
    const mb = collate(packed, [0], { padId: 0, seqLen: 12 });
    expect(mb.T).toBe(12);
    expect(Array.from(mb.segmentIds.subarray(0, packed[0].input_ids.length))).toEqual(Array.from(packed[0].segment_ids));
    expect(() => collate(packed, [0], { padId: 0, seqLen: 4 })).toThrow(/more than seqLen/);
  });

  it('visits every row once per epoch, reshuffles per epoch, and is reproducible by (seed, epoch, index)', () => {
    const many = makeRows(Array.from({ length: 23 }, (_, i) => 2 + (i % 5)));
    const a = new Batcher(many, { batchSize: 4, padId: 0, seed: 42 });
    const b = new Batcher(many, { batchSize: 4, padId: 0, seed: 42 });
    expect(a.batchesPerEpoch).toBe(6);
    const seen = [...a.epoch(0)].flatMap((mb) => mb.rowIndices);
    expect(seen.slice().sort((x, y) => x - y)).toEqual(Array.from({ length: 23 }, (_, i) => i));
    expect(seen).not.toEqual(Array.from({ length: 23 }, (_, i) => i));
    expect([...a.epoch(1)].flatMap((mb) => mb.rowIndices)).not.toEqual(seen);
    // Resuming at batch 3 of epoch 1 rebuilds the same batch, token for token.
    expect(b.batch(1, 3)).toEqual([...a.epoch(1)][3]);
    expect(new Batcher(many, { batchSize: 4, padId: 0, seed: 43 }).order(0)).not.toEqual(a.order(0));
    expect(Array.from(new Batcher(many, { batchSize: 4, padId: 0, seed: null }).order(5))).toEqual(Array.from({ length: 23 }, (_, i) => i));
    expect(new Batcher(many, { batchSize: 4, padId: 0, seed: 1, dropLast: true }).batchesPerEpoch).toBe(5);
  });
});

describe('seeded randomness', () => {
  it('the same seed gives the same sequence; the state resumes it', () => {
    const a = new Rng(7);
    const first = Array.from({ length: 5 }, () => a.nextU32());
    const b = new Rng(7);
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(first);
    const saved = b.state;
    const next = b.nextU32();
    expect(new Rng(saved).nextU32()).toBe(next);
    expect(new Rng(8).nextU32()).not.toBe(first[0]);
    expect(deriveSeed(42, 0)).not.toBe(deriveSeed(43, 0));
    expect(deriveSeed(42, 0)).not.toBe(deriveSeed(42, 1));
  });

  it('is xoshiro128** (reference values from the C implementation, state 1,2,3,4)', () => {
    // From scripts/golden_xoshiro.py, a port of Blackman & Vigna's xoshiro128starstar.c (the same numbers come out of
    // the C file compiled with gcc), never from rng.ts.
    const r = new Rng([1, 2, 3, 4]);
    expect(Array.from({ length: 10 }, () => r.nextU32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492, 1287239034, 3734860849, 3729100597, 4258142804]);
    expect(r.state).toEqual([939045227, 1864939416, 1451579149, 2199351389]);
    // The state round-trips: a checkpointed generator continues the same sequence.
    const resumed = new Rng(r.state);
    expect(resumed.nextU32()).toBe(r.nextU32());
  });

  it('below() is uniform enough and in range', () => {
    const r = new Rng(3);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[r.below(6)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(400);
  });

  it('shuffles deterministically and permutes', () => {
    const xs = Array.from({ length: 50 }, (_, i) => i);
    expect(shuffled(xs, 1)).toEqual(shuffled(xs, 1));
    expect(shuffled(xs, 1)).not.toEqual(shuffled(xs, 2));
    expect(shuffled(xs, 1).sort((a, b) => a - b)).toEqual(xs);
    expect(Array.from(permutation(50, 9)).sort((a, b) => a - b)).toEqual(xs);
  });

  it('splits an eval set by fraction, seeded, disjoint and order-preserving', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i);
    const s = splitEval(xs, 0.1, 42);
    expect(s.eval).toHaveLength(10);
    expect(s.train).toHaveLength(90);
    expect([...s.train, ...s.eval].sort((a, b) => a - b)).toEqual(xs);
    expect(s.eval).toEqual(s.eval.slice().sort((a, b) => a - b));
    expect(splitEval(xs, 0.1, 42)).toEqual(s);
    expect(splitEval(xs, 0.1, 43).eval).not.toEqual(s.eval);
    expect(splitEval([1, 2], 0.01, 0).eval).toHaveLength(1);
    expect(() => splitEval(xs, 1, 0)).toThrow(/fraction/);
    expect(() => splitEval([1], 0.5, 0)).toThrow(/at least 2 rows/);
  });
});

describe('length histogram', () => {
  it('counts lengths per equal-width bucket', () => {
    const h = lengthHistogram([1, 2, 10, 11, 19, 20, 35], { buckets: 4, upTo: 40 });
    expect(h.edges).toEqual([0, 10, 20, 30, 40]);
    expect(h.counts).toEqual([2, 3, 1, 1]);
    expect([h.min, h.max, h.total]).toEqual([1, 35, 7]);
    expect(h.mean).toBeCloseTo(98 / 7);
    const clipped = lengthHistogram([4, 500], { buckets: 2, upTo: 10 });
    expect(clipped.counts).toEqual([1, 1]);
    expect(lengthHistogram([]).total).toBe(0);
  });
});
