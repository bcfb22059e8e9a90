import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { normBackwardRef, normForwardRef, type NormKind, type NormShape } from '../ref/norm.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import type { FoldOptions } from './elementwise.ts';
import { NORM_KINDS, normStatsLength, recordNormBackward, recordNormForward } from './norm.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// Rows 1, 7, 33 and C 1 (a degenerate LayerNorm: y = b, dx = 0), 5 (under one workgroup of 64), 67 (one past it,
// and three column tiles of 32 for the weight gradient).
const SHAPES: NormShape[] = [1, 7, 33].flatMap((rows) => [1, 5, 67].map((C) => ({ rows, C, eps: 1e-5 })));

// f32 sums of ≤ 67 terms of size ≲ 3 and a reciprocal square root: a few ulp of the largest term.
const FWD_TOL = { abs: 2e-6, rel: 2e-6 };
const BWD_TOL = { abs: 1e-5, rel: 1e-5 };

interface Case {
  kind: NormKind;
  shape: NormShape;
  bias?: boolean;
  accumulate?: boolean;
  accumulateWeightGrad?: boolean;
  fold?: FoldOptions;
  seed: number;
}

async function runNorm(c: Case) {
  const { rows, C } = c.shape;
  const n = rows * C;
  // Rows with a mean well away from zero: a one-pass E[x²] − mean² variance would lose digits here.
  const x = randomArray(n, c.seed, 2).map((v) => v + 3);
  const w = randomArray(C, c.seed + 1).map((v) => v + 1);
  const b = c.bias ? randomArray(C, c.seed + 2) : undefined;
  const dy = randomArray(n, c.seed + 3);
  const dx0 = c.accumulate ? randomArray(n, c.seed + 4) : undefined;
  const dw0 = c.accumulateWeightGrad ? randomArray(C, c.seed + 5) : undefined;
  const db0 = c.accumulateWeightGrad && c.bias ? randomArray(C, c.seed + 6) : undefined;

  const xb = upload(e, x);
  const wb = upload(e, w);
  const y = zeros(e, n);
  const stats = zeros(e, normStatsLength(rows));
  const dx = dx0 ? upload(e, dx0) : zeros(e, n);
  const dweight = dw0 ? upload(e, dw0) : zeros(e, C);
  const dbias = c.bias ? (db0 ? upload(e, db0) : zeros(e, C)) : undefined;
  const rec = e.record();
  recordNormForward(rec, c.shape, { x: xb, weight: wb, bias: b && upload(e, b), y, stats }, { kind: c.kind, ...c.fold });
  recordNormBackward(
    rec,
    c.shape,
    { x: xb, weight: wb, dy: upload(e, dy), stats, dx, dweight, dbias },
    { kind: c.kind, accumulate: c.accumulate, accumulateWeightGrad: c.accumulateWeightGrad, ...c.fold },
  );
  await rec.submit();

  const fwd = normForwardRef(c.kind, c.shape, x, w, b);
  const grads = normBackwardRef(c.kind, c.shape, x, w, dy, dx0);
  const statsWant = new Float64Array(2 * rows);
  for (let r = 0; r < rows; r++) [statsWant[2 * r], statsWant[2 * r + 1]] = [fwd.mean[r], fwd.rstd[r]];
  const plus = (a: Float64Array, base?: ArrayLike<number>) => (base ? Float64Array.from(a, (v, i) => v + base[i]) : a);
  expect(mismatches(await download(e, y, n), fwd.y, FWD_TOL), 'y').toEqual([]);
  expect(mismatches(await download(e, stats, 2 * rows), statsWant, FWD_TOL), 'stats').toEqual([]);
  expect(mismatches(await download(e, dx, n), grads.dx, BWD_TOL), 'dx').toEqual([]);
  expect(mismatches(await download(e, dweight, C), plus(grads.dweight, dw0), BWD_TOL), 'dweight').toEqual([]);
  if (dbias) expect(mismatches(await download(e, dbias, C), plus(grads.dbias, db0), BWD_TOL), 'dbias').toEqual([]);
}

describe.each(NORM_KINDS)('%s', (kind) => {
  it.each(SHAPES)('forward, dx and dweight match the reference at rows=$rows C=$C', async (shape) => {
    await runNorm({ kind, shape, bias: kind === 'layernorm', seed: shape.rows * 100 + shape.C });
  });

  it('accumulates dx and the weight gradient, with the row dispatch folded', async () => {
    // 7 rows with at most 3 workgroups per dimension: 3×3 workgroups, two of them past the last row.
    await runNorm({
      kind,
      shape: { rows: 7, C: 67, eps: 1e-6 },
      bias: kind === 'layernorm',
      accumulate: true,
      accumulateWeightGrad: true,
      fold: { maxWorkgroupsPerDim: 3 },
      seed: 9,
    });
  });

  it('computes dx alone when no weight-gradient buffer is given (frozen weights)', async () => {
    const shape = { rows: 5, C: 9, eps: 1e-5 };
    const x = randomArray(45, 1);
    const w = randomArray(9, 2);
    const dy = randomArray(45, 3);
    const stats = zeros(e, normStatsLength(5));
    const y = zeros(e, 45);
    const dx = zeros(e, 45);
    const xb = upload(e, x);
    const wb = upload(e, w);
    const rec = e.record();
    recordNormForward(rec, shape, { x: xb, weight: wb, y, stats }, { kind });
    recordNormBackward(rec, shape, { x: xb, weight: wb, dy: upload(e, dy), stats, dx }, { kind });
    await rec.submit();
    expect(mismatches(await download(e, y, 45), normForwardRef(kind, shape, x, w).y, FWD_TOL)).toEqual([]);
    expect(mismatches(await download(e, dx, 45), normBackwardRef(kind, shape, x, w, dy).dx, BWD_TOL)).toEqual([]);
  });
});

describe('layernorm without a bias', () => {
  it('matches the reference', async () => {
    await runNorm({ kind: 'layernorm', shape: { rows: 7, C: 5, eps: 1e-5 }, seed: 4 });
  });
});
