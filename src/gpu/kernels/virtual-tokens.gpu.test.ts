// virtual_tokens.wgsl against its float64 reference: virtual ids mixed with real ones (below and above the base,
// repeated in several rows as packing makes them), odd rows and C, the forward adding into what the gather wrote and
// the backward with and without accumulation (the reference's backward against finite differences:
// ref/virtual-tokens.ref.test.ts).
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { virtualTokensBackwardRef, virtualTokensForwardRef } from '../ref/virtual-tokens.ref.ts';
import { mismatches, randomArray, rng } from '../ref/testing.ts';
import { download, testEngine, upload } from '../testing-gpu.ts';
import { recordVirtualTokensBackward, recordVirtualTokensForward } from './virtual-tokens.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const BASE = 13;

/** Rows of real ids (< BASE) with a run of the n virtual ids at each row start, as the trainer lays them out. */
function idsFor(rows: number, n: number, seed: number): Uint32Array {
  const next = rng(seed);
  const ids = new Uint32Array(rows);
  let k = 0;
  for (let t = 0; t < rows; t++) {
    if (next() < 0.15) k = 0; // a new segment
    ids[t] = k < n ? BASE + k++ : Math.floor(next() * BASE);
  }
  return ids;
}

describe('virtual tokens', () => {
  it.each([
    [1, 1, 1],
    [7, 5, 3],
    [33, 67, 4],
    [130, 70, 9],
  ])('rows=%i C=%i n=%i: forward and backward against the reference', async (rows, C, n) => {
    const ids = idsFor(rows, n, rows + C);
    const P = randomArray(n * C, 1);
    const x0 = randomArray(rows * C, 2);
    const dx = randomArray(rows * C, 3);
    const dP0 = randomArray(n * C, 4);
    const s = { rows, C, base: BASE, n };
    const idsBuf = upload(e, ids);
    const x = upload(e, x0);
    const dPacc = upload(e, dP0);
    const dPnew = upload(e, dP0);
    const rec = e.record();
    recordVirtualTokensForward(rec, s, { ids: idsBuf, P: upload(e, P), x });
    const dxBuf = upload(e, dx);
    recordVirtualTokensBackward(rec, s, { ids: idsBuf, dx: dxBuf, dP: dPacc }, true);
    recordVirtualTokensBackward(rec, s, { ids: idsBuf, dx: dxBuf, dP: dPnew }, false);
    await rec.submit();
    expect(mismatches(await download(e, x, rows * C), virtualTokensForwardRef(ids, x0, P, BASE, n, C), { abs: 1e-6, rel: 1e-6 })).toEqual([]);
    const tol = { abs: 1e-6 * Math.sqrt(rows), rel: 1e-6 };
    expect(mismatches(await download(e, dPacc, n * C), virtualTokensBackwardRef(ids, dx, BASE, n, C, dP0), tol), 'accumulating').toEqual([]);
    expect(mismatches(await download(e, dPnew, n * C), virtualTokensBackwardRef(ids, dx, BASE, n, C), tol), 'overwriting').toEqual([]);
  });
});
