// embedding_grad.wgsl against its float64 reference: repeated ids (the case a scatter-add would race on), odd T and C,
// the table split into shards, dispatches split below the distinct-id limit, with and without accumulation. Also
// checked against finite differences of the lookup's loss Σ E[ids[t]] · dx[t] (the gradient of a lookup is linear,
// so the reference's derivative is exact).
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { embeddingGradRef } from '../ref/embedding-grad.ref.ts';
import { mismatches, numericGrad, randomArray, rng } from '../ref/testing.ts';
import { download, testEngine, upload } from '../testing-gpu.ts';
import { planEmbeddingGrad, recordEmbeddingGrad } from './embedding-grad.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const VOCAB = 11;

function idsFor(T: number, seed: number): Uint32Array {
  const next = rng(seed);
  // Skewed towards a few ids, so most repeat.
  return Uint32Array.from({ length: T }, () => Math.floor(next() ** 2 * VOCAB));
}

describe('embedding gradient without atomics', () => {
  it.each([
    [1, 1],
    [7, 5],
    [33, 67],
    [130, 130],
  ])('T=%i C=%i: every shard split and dispatch size, accumulating or not', async (T, C) => {
    const ids = idsFor(T, T + C);
    const dx = randomArray(T * C, C);
    const dE0 = randomArray(VOCAB * C, 3);
    const plan = planEmbeddingGrad(ids, VOCAB);
    const b = { dx: upload(e, dx), order: upload(e, plan.order), starts: upload(e, plan.starts), ids: upload(e, plan.ids) };
    for (const accumulate of [false, true]) {
      for (const [split, perDispatch] of [[VOCAB, 65535], [7, 2]] as const) {
        const whole = upload(e, dE0);
        // Two shards: rows [0, split) and [split, VOCAB), each its own buffer; or one.
        const shards = split === VOCAB
          ? [{ dE: whole, firstRow: 0, rows: VOCAB }]
          : [{ dE: whole, firstRow: 0, rows: split }, { dE: upload(e, dE0.slice(split * C)), firstRow: split, rows: VOCAB - split }];
        const rec = e.record();
        recordEmbeddingGrad(rec, { T, C }, plan, b, shards, accumulate, perDispatch);
        await rec.submit();
        const got = new Float32Array(VOCAB * C);
        got.set((await download(e, shards[0].dE as GPUBuffer, VOCAB * C)).subarray(0, shards[0].rows * C));
        if (shards[1]) got.set(await download(e, shards[1].dE as GPUBuffer, shards[1].rows * C), split * C);
        const want = embeddingGradRef(ids, dx, VOCAB, C, accumulate ? dE0 : undefined);
        // Rows no id touches keep dE0 (accumulating) or are left as they were: compare only touched rows when not.
        const touched = new Set(ids);
        for (let v = 0; v < VOCAB; v++) {
          if (!accumulate && !touched.has(v)) continue;
          const tol = { abs: 1e-6 * Math.sqrt(T), rel: 1e-6 };
          expect(mismatches(got.subarray(v * C, (v + 1) * C), want.subarray(v * C, (v + 1) * C), tol), `row ${v} (split ${split}, ${perDispatch} per dispatch, accumulate ${accumulate})`).toEqual([]);
        }
      }
    }
  });

  it('is the derivative of the lookup (finite differences on the table)', () => {
    const T = 9;
    const C = 3;
    const ids = idsFor(T, 5);
    const dx = randomArray(T * C, 6);
    const E0 = randomArray(VOCAB * C, 7);
    const loss = (E: Float64Array) => {
      let s = 0;
      for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) s += E[ids[t] * C + c] * dx[t * C + c];
      return s;
    };
    expect(mismatches(embeddingGradRef(ids, dx, VOCAB, C), numericGrad(loss, E0, 1e-3), { abs: 1e-6, rel: 1e-6 })).toEqual([]);
  });

  it('groups positions by id in position order, and refuses an id outside the vocabulary', () => {
    const plan = planEmbeddingGrad([4, 1, 4, 0, 1, 4], 5);
    expect(Array.from(plan.ids)).toEqual([0, 1, 4]);
    expect(Array.from(plan.starts)).toEqual([0, 1, 3, 6]);
    expect(Array.from(plan.order)).toEqual([3, 1, 4, 0, 2, 5]);
    expect(() => planEmbeddingGrad([1, 5], 5)).toThrow(/id 5 at position 1 is outside the vocabulary of 5/);
  });
});
