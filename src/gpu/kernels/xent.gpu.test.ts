import { beforeAll, describe, expect, it } from 'vitest';
import { uploadBuffer } from '../buffers.ts';
import type { Engine } from '../engine.ts';
import { fromF16Array, toF16Array } from '../ref/elementwise.ref.ts';
import { mismatches, randomArray, rng, type Tolerance } from '../ref/testing.ts';
import { IGNORE_INDEX, logitsRef, xentBackwardRef, xentForwardRef, xentGradientsRef, type XentRefInputs } from '../ref/xent.ref.ts';
import { uploadRowSharded } from '../sharded.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import type { ElementType } from '../wgsl.ts';
import type { MatmulVariant } from './matmul.ts';
import { recordCrossEntropy, recordLogits, xentScratchElements } from './xent.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// Logits are f32 fma dots of ≤ 24 terms; lse, exp and the tree sums add a few ulps each. dhs sums up to 301 terms.
// Per-row losses are O(log V + |logit|) ≈ 10, so the loss sum over ≤ 33 rows is checked at 1e-5 relative.
const TOL_F32: Tolerance = { abs: 2e-5, rel: 2e-5 };
// f16 Wh: the reference gets the same f16-rounded Wh and f16 → f32 is exact, so the f32 bound holds.
const TOL_F16: Tolerance = { abs: 2e-5, rel: 2e-5 };

type Labels = 'mixed' | 'all-ignored' | 'none-ignored';

function makeInputs(T: number, C: number, V: number, labels: Labels, seed: number, elem: ElementType): XentRefInputs {
  const next = rng(seed);
  const lab = Array.from({ length: T }, (_, t) => {
    if (labels === 'all-ignored' || (labels === 'mixed' && t % 4 === 2)) return IGNORE_INDEX;
    return Math.min(V - 1, Math.floor(next() * V));
  });
  if (labels === 'mixed' && T > 1) lab[T - 1] = V - 1; // the last vocabulary row is a target somewhere
  let Wh: ArrayLike<number> = randomArray(V * C, seed + 1);
  if (elem === 'f16') Wh = fromF16Array(toF16Array(Wh));
  return { T, C, V, hs: randomArray(T * C, seed + 2, 2), Wh, labels: lab };
}

/** Wh on the GPU: one buffer, or split by rows into shards of at most `shardRows` rows' worth of bytes. */
function uploadWh(x: XentRefInputs, elem: ElementType, shardRows?: number) {
  const data = elem === 'f16' ? toF16Array(x.Wh) : Float32Array.from(x.Wh);
  if (shardRows === undefined) return upload(e, data);
  const table = uploadRowSharded(e.buffers, e.device, data, x.V, x.C, shardRows * x.C * (elem === 'f16' ? 2 : 4), 'Wh');
  expect(table.shards.length).toBeGreaterThan(1);
  return table;
}

async function runXent(
  x: XentRefInputs,
  elem: ElementType,
  o: { chunkRows?: number; withGrad: boolean; total0?: [number, number]; shardRows?: number; matmul?: MatmulVariant },
) {
  const { T, C, V } = x;
  const gradScale = 1 / 7;
  const buffers = {
    hs: upload(e, Float32Array.from(x.hs)),
    Wh: uploadWh(x, elem, o.shardRows),
    labels: uploadBuffer(e.buffers, e.device, Int32Array.from(x.labels), 'labels'),
    work: zeros(e, xentScratchElements(x, o.chunkRows)),
    total: upload(e, Float32Array.from(o.total0 ?? [0, 0])),
    dhs: o.withGrad ? upload(e, randomArray(T * C, 99)) : undefined, // garbage in: every row must be overwritten
  };
  const rec = e.record('xent-test');
  recordCrossEntropy(rec, x, buffers, { elem, gradScale, chunkRows: o.chunkRows, accumulate: !!o.total0, matmul: o.matmul });
  await rec.submit();
  const total = await download(e, buffers.total, 2);
  const rows = await download(e, buffers.work, 2 * T);
  const dhs = buffers.dhs && (await download(e, buffers.dhs, T * C));
  const f = xentForwardRef(x);
  return { total, rows, dhs, want: { f, dhs: xentBackwardRef(x, gradScale) } };
}

const SIZES: [number, number, number][] = [];
for (const T of [1, 9, 33]) for (const C of [5, 24]) for (const V of [3, 50, 301]) SIZES.push([T, C, V]);

describe.each(['f32', 'f16'] as const)('cross-entropy with the LM head, %s Wh', (elem) => {
  it.for(SIZES)('matches the reference at T=%i C=%i V=%i', async ([T, C, V], ctx) => {
    if (elem === 'f16' && !e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    const tol = elem === 'f16' ? TOL_F16 : TOL_F32;
    const x = makeInputs(T, C, V, 'mixed', T * 1000 + C * 10 + V, elem);
    // A chunk smaller than T (and not dividing it) where there is more than one row.
    const { total, rows, dhs, want } = await runXent(x, elem, { withGrad: true, chunkRows: T > 1 ? 4 : undefined });
    expect(mismatches(rows.subarray(0, T), want.f.rowLoss, tol), 'per-row loss').toEqual([]);
    expect(mismatches(total, [want.f.lossSum, want.f.count], tol), 'loss sum, count').toEqual([]);
    expect(total[1]).toBe(want.f.count); // the count is exact
    expect(mismatches(dhs!, want.dhs, tol), 'dhs').toEqual([]);
  });
});

describe('cross-entropy with the logits and dhs on the engine matmul', () => {
  // Chunks at element offsets of hs, work and dhs (130 rows in chunks of 64, or of 5: offsets that are no multiple
  // of 4, where blocked4 falls back to blocked); odd C and V.
  it.for([
    ['naive', 130, 24, 301, 64],
    ['blocked4', 130, 24, 301, 64],
    ['blocked4', 130, 5, 50, undefined],
    ['blocked', 70, 24, 50, 5],
  ] as const)('%s at T=%i C=%i V=%i, chunks of %s rows', async ([matmul, T, C, V, chunkRows]) => {
    const x = makeInputs(T, C, V, 'mixed', T + C + V, 'f32');
    const { total, rows, dhs, want } = await runXent(x, 'f32', { withGrad: true, chunkRows, matmul });
    expect(mismatches(rows.subarray(0, T), want.f.rowLoss, TOL_F32), 'per-row loss').toEqual([]);
    expect(mismatches(total, [want.f.lossSum, want.f.count], TOL_F32), 'loss sum, count').toEqual([]);
    expect(mismatches(dhs!, want.dhs, TOL_F32), 'dhs').toEqual([]);
  });

  it.for(['naive', 'blocked4'] as const)('adds the LM head\'s own gradient dWh (%s)', async (matmul) => {
    const x = makeInputs(130, 24, 50, 'mixed', 5, 'f32');
    const gradScale = 1 / 7;
    const dWh0 = randomArray(50 * 24, 44);
    const buffers = {
      hs: upload(e, Float32Array.from(x.hs)),
      Wh: upload(e, Float32Array.from(x.Wh)),
      labels: uploadBuffer(e.buffers, e.device, Int32Array.from(x.labels), 'labels'),
      work: zeros(e, xentScratchElements(x, 64)),
      total: zeros(e, 2),
      dhs: zeros(e, 130 * 24),
      dWh: upload(e, dWh0),
    };
    const rec = e.record('xent-dwh');
    recordCrossEntropy(rec, x, buffers, { gradScale, chunkRows: 64, matmul });
    await rec.submit();
    const want = xentGradientsRef(x, gradScale);
    expect(mismatches(await download(e, buffers.dhs, 130 * 24), want.dhs, TOL_F32), 'dhs').toEqual([]);
    expect(mismatches(await download(e, buffers.dWh, 50 * 24), want.dWh.map((v, i) => v + dWh0[i]), TOL_F32), 'dWh').toEqual([]);
    expect(() => recordCrossEntropy(e.record('x'), x, { ...buffers, dhs: undefined }, { gradScale, matmul })).toThrow(/dWh needs dhs/);
  });

  it('falls back to the kernel\'s tiles for a sharded head', async () => {
    const x = makeInputs(70, 24, 50, 'mixed', 77, 'f32');
    const { total, dhs, want } = await runXent(x, 'f32', { withGrad: true, shardRows: 16, matmul: 'blocked4' });
    expect(mismatches(total, [want.f.lossSum, want.f.count], TOL_F32)).toEqual([]);
    expect(mismatches(dhs!, want.dhs, TOL_F32)).toEqual([]);
  });
});

describe('cross-entropy edge cases', () => {
  it('all positions ignored: zero loss, zero count, zero gradient', async () => {
    const x = makeInputs(9, 5, 50, 'all-ignored', 3, 'f32');
    const { total, dhs } = await runXent(x, 'f32', { withGrad: true });
    expect(Array.from(total)).toEqual([0, 0]);
    expect(Array.from(dhs!).every((v) => v === 0)).toBe(true);
  });

  it('forward only (no dhs) gives the same loss; chunking does not change the per-row results', async () => {
    const x = makeInputs(33, 24, 301, 'none-ignored', 5, 'f32');
    const a = await runXent(x, 'f32', { withGrad: false });
    const b = await runXent(x, 'f32', { withGrad: true, chunkRows: 5 });
    expect(a.dhs).toBeUndefined();
    expect(mismatches(a.total, [a.want.f.lossSum, 33], TOL_F32)).toEqual([]);
    expect(mismatches(a.rows, b.rows, { abs: 0, rel: 0 }), 'per-row results do not depend on chunking').toEqual([]);
  });

  it('accumulates the loss sum and count across micro-batches', async () => {
    const x = makeInputs(9, 24, 50, 'mixed', 8, 'f32');
    const { total, want } = await runXent(x, 'f32', { withGrad: true, total0: [12.5, 20] });
    expect(mismatches(total, [want.f.lossSum + 12.5, want.f.count + 20], TOL_F32)).toEqual([]);
  });

  it('is stable for large logits', async () => {
    // |hs·Wh| up to ~ 24·40·1 ≈ 10³: exp would overflow without the max subtraction.
    const x = makeInputs(9, 24, 50, 'mixed', 12, 'f32');
    x.hs = Float32Array.from(x.hs, (v) => v * 20);
    const { total, dhs, want } = await runXent(x, 'f32', { withGrad: true });
    expect(mismatches(total, [want.f.lossSum, want.f.count], { abs: 1e-3, rel: 1e-5 })).toEqual([]);
    expect(mismatches(dhs!, want.dhs, TOL_F32)).toEqual([]);
  });
});

describe('recordLogits', () => {
  it.for(['f32', 'f16'] as const)('gives hs[row0 : row0+rows]·Whᵀ (%s)', async (elem, ctx) => {
    if (elem === 'f16' && !e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    const x = makeInputs(9, 24, 301, 'mixed', 21, elem);
    const out = zeros(e, 2 * 301);
    const rec = e.record('logits-test');
    recordLogits(
      rec,
      x,
      { hs: upload(e, Float32Array.from(x.hs)), Wh: elem === 'f16' ? upload(e, toF16Array(x.Wh)) : upload(e, Float32Array.from(x.Wh)), logits: out },
      { elem, row0: 7, rows: 2 },
    );
    await rec.submit();
    expect(mismatches(await download(e, out, 2 * 301), logitsRef(x, 7, 2), TOL_F32)).toEqual([]);
  });
});

// An LM head split by rows (src/gpu/sharded.ts): logits shard by shard into their columns, row stats over the whole
// row, dhs continued shard after shard. The logits of one (row, v) and the order of dhs's fma chain over v do not
// depend on the split, so the results must equal the single-buffer run exactly, not just within tolerance.
describe.each(['f32', 'f16'] as const)('cross-entropy and logits with a row-sharded %s Wh', (elem) => {
  // V not a multiple of the shard, shards of 3 rows (f16 at odd C: 2), and one of 7 > the 16-wide tile's remainder.
  const CASES: [number, number, number, number][] = [
    [9, 5, 50, 3],
    [33, 24, 301, 3],
    [33, 24, 301, 37],
    [1, 5, 3, 2],
  ];
  it.for(CASES)('T=%i C=%i V=%i, shards of %i rows: identical to one buffer', async ([T, C, V, shardRows], ctx) => {
    if (elem === 'f16' && !e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    const x = makeInputs(T, C, V, 'mixed', T * 7 + C * 3 + V, elem);
    const chunkRows = T > 1 ? 4 : undefined;
    const one = await runXent(x, elem, { withGrad: true, chunkRows });
    const split = await runXent(x, elem, { withGrad: true, chunkRows, shardRows });
    expect(Array.from(split.total)).toEqual(Array.from(one.total));
    expect(Array.from(split.rows)).toEqual(Array.from(one.rows));
    expect(Array.from(split.dhs!)).toEqual(Array.from(one.dhs!));
    // Forward only (eval) as well.
    const fwd = await runXent(x, elem, { withGrad: false, chunkRows, shardRows });
    expect(Array.from(fwd.total)).toEqual(Array.from(one.total));
    // And the reference, so neither path can be wrong the same way.
    const tol = elem === 'f16' ? TOL_F16 : TOL_F32;
    expect(mismatches(split.total, [split.want.f.lossSum, split.want.f.count], tol)).toEqual([]);
    expect(mismatches(split.dhs!, split.want.dhs, tol), 'dhs').toEqual([]);

    const rows = Math.min(2, T);
    const row0 = T - rows;
    const logits = async (Wh: GPUBuffer | ReturnType<typeof uploadWh>) => {
      const out = upload(e, new Float32Array(rows * V + 1).fill(42));
      const rec = e.record('logits-test');
      recordLogits(rec, x, { hs: upload(e, Float32Array.from(x.hs)), Wh, logits: out }, { elem, row0, rows });
      await rec.submit();
      return download(e, out, rows * V + 1);
    };
    const want = await logits(uploadWh(x, elem));
    const got = await logits(uploadWh(x, elem, shardRows));
    expect(Array.from(got)).toEqual(Array.from(want));
    expect(got[rows * V], 'wrote past the logits').toBe(42);
    expect(mismatches(got.subarray(0, rows * V), logitsRef(x, row0, rows), TOL_F32)).toEqual([]);
  });
});
