import { beforeAll, describe, expect, it } from 'vitest';
import { readBuffer } from '../buffers.ts';
import type { Engine } from '../engine.ts';
import { addRef, fromF16Array, scaleRef, sumOfSquaresRef, toF16Array, toHalfRef } from '../ref/elementwise.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import {
  foldWorkgroups,
  recordAdd,
  recordAddInPlace,
  recordCast,
  recordCopy,
  recordScale,
  recordSumOfSquares,
  sumOfSquaresPartialCount,
  type FoldOptions,
} from './elementwise.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// 1 and 7 are a lone partial workgroup, 257 one element into a second one; 1300 with at most 4 workgroups per
// dimension folds ⌈1300/256⌉ = 6 workgroups into 4×2, so two whole workgroups must do nothing.
const CASES: { n: number; fold: FoldOptions }[] = [
  { n: 1, fold: {} },
  { n: 7, fold: {} },
  { n: 257, fold: {} },
  { n: 1300, fold: { maxWorkgroupsPerDim: 4 } },
];

// One correctly rounded f32 operation on f32 inputs (WGSL's + and * are correctly rounded): the exact f32 result.
const EXACT = { abs: 0, rel: 0 };
const f32 = (x: ArrayLike<number>) => Float32Array.from(x as ArrayLike<number>);

describe('foldWorkgroups', () => {
  it('keeps small dispatches 1-D and folds large ones into 2-D covering every workgroup', () => {
    expect(foldWorkgroups(5)).toEqual([5, 1, 1]);
    expect(foldWorkgroups(65535)).toEqual([65535, 1, 1]);
    expect(foldWorkgroups(65536)).toEqual([65535, 2, 1]);
    expect(foldWorkgroups(6, 4)).toEqual([4, 2, 1]);
    expect(() => foldWorkgroups(17, 4)).toThrow(/do not fit/);
  });
});

describe.each(CASES)('elementwise f32 at n=$n $fold', ({ n, fold }) => {
  const a = randomArray(n, n + 1);
  const b = randomArray(n, n + 2, 3);

  it('add', async () => {
    const out = zeros(e, n);
    const rec = e.record();
    recordAdd(rec, n, { a: upload(e, a), b: upload(e, b), out }, fold);
    await rec.submit();
    expect(mismatches(await download(e, out, n), f32(addRef(a, b)), EXACT)).toEqual([]);
  });

  it('add in place', async () => {
    const acc = upload(e, a);
    const rec = e.record();
    recordAddInPlace(rec, n, { acc, b: upload(e, b) }, fold);
    recordAddInPlace(rec, n, { acc, b: upload(e, b) }, fold);
    await rec.submit();
    expect(mismatches(await download(e, acc, n), f32(addRef(f32(addRef(a, b)), b)), EXACT)).toEqual([]);
  });

  it('scale, in place and not, and copy', async () => {
    const x = upload(e, a);
    const scaled = zeros(e, n);
    const copied = zeros(e, n);
    const rec = e.record();
    recordScale(rec, n, { x, out: scaled }, -0.37, fold);
    recordCopy(rec, n, { x, out: copied }, fold);
    recordScale(rec, n, { x }, 2.5, fold);
    await rec.submit();
    expect(mismatches(await download(e, scaled, n), f32(scaleRef(a, Math.fround(-0.37))), EXACT)).toEqual([]);
    expect(mismatches(await download(e, copied, n), a, EXACT)).toEqual([]);
    expect(mismatches(await download(e, x, n), f32(scaleRef(a, 2.5)), EXACT)).toEqual([]);
  });

  it('does not write past n', async () => {
    const out = upload(e, new Float32Array(n + 5).fill(42));
    const rec = e.record();
    recordAdd(rec, n, { a: upload(e, new Float32Array(n + 5)), b: upload(e, new Float32Array(n + 5)), out }, fold);
    await rec.submit();
    expect(Array.from(await download(e, out, n + 5)).slice(n)).toEqual([42, 42, 42, 42, 42]);
  });
});

describe('f32 ↔ f16 casts', () => {
  // Either neighbouring half is a valid rounding in WGSL: allow one f16 ulp (2⁻¹⁰ relative, 2⁻²⁴ for subnormals).
  const HALF_TOL = { abs: 2 ** -24, rel: 2 ** -10 };

  it.for(CASES)('round-trip at n=$n $fold', async ({ n, fold }, ctx) => {
    if (!e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    const x = randomArray(n, n + 5, 4);
    // Beyond f16's range (saturates), tiny (subnormal), and exact halves.
    const specials = [1e5, -7e4, 65504, 3e-6, -(2 ** -24), 0.5, -1];
    for (let i = 0; i < Math.min(n, specials.length); i++) x[i] = specials[i];
    const half = e.buffers.acquire(n * 2, undefined, 'half');
    const back = zeros(e, n);
    const rec = e.record();
    recordCast(rec, n, { x: upload(e, x), out: half }, 'f16', fold);
    recordCast(rec, n, { x: half, out: back }, 'f32', fold);
    await rec.submit();
    const halves = fromF16Array(new Uint16Array(await readBuffer(e.device, half, Math.ceil(n / 2) * 4)).subarray(0, n));
    const want = Array.from(x, toHalfRef);
    expect(mismatches(halves, want, HALF_TOL)).toEqual([]);
    // f16 → f32 is exact.
    expect(mismatches(await download(e, back, n), halves, EXACT)).toEqual([]);
  });

  it('f16 → f32 decodes uploaded halves exactly', async (ctx) => {
    if (!e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    const n = 67;
    const bits = toF16Array(randomArray(n, 9, 1000));
    const out = zeros(e, n);
    const rec = e.record();
    recordCast(rec, n, { x: upload(e, bits), out }, 'f32');
    await rec.submit();
    expect(mismatches(await download(e, out, n), fromF16Array(bits), EXACT)).toEqual([]);
  });
});

describe('sum of squares', () => {
  // f32 partial sums of n terms in [0, 1]: relative error ≲ n·2⁻²⁴ in the worst case, far less in practice.
  const TOL = { abs: 1e-6, rel: 1e-5 };

  it.each([
    { n: 1, fold: {} },
    { n: 7, fold: {} },
    { n: 4097, fold: {} },
    { n: 20000, fold: { maxWorkgroupsPerDim: 3 } }, // 5 partials as 3×2 workgroups, one idle
  ])('matches the reference at n=$n $fold', async ({ n, fold }) => {
    const x = randomArray(n, n);
    const partials = zeros(e, sumOfSquaresPartialCount(n));
    const result = upload(e, Float32Array.from([7, 7, 7]));
    const rec = e.record();
    recordSumOfSquares(rec, n, { x: upload(e, x), partials, result }, { offset: 1, ...fold });
    await rec.submit();
    expect(mismatches(await download(e, result, 3), [7, sumOfSquaresRef(x), 7], TOL)).toEqual([]);
  });

  it('accumulates several tensors into one slot', async () => {
    const x = randomArray(33, 1);
    const y = randomArray(5000, 2, 2);
    const partials = zeros(e, sumOfSquaresPartialCount(5000));
    const result = zeros(e, 1);
    const rec = e.record();
    recordSumOfSquares(rec, x.length, { x: upload(e, x), partials, result });
    recordSumOfSquares(rec, y.length, { x: upload(e, y), partials, result }, { accumulate: true });
    await rec.submit();
    expect(mismatches(await download(e, result, 1), [sumOfSquaresRef(x) + sumOfSquaresRef(y)], TOL)).toEqual([]);
  });
});
