// ia3.wgsl against its float64 reference on odd sizes (not multiples of the 64-wide workgroup), with and without
// accumulation, l and its gradient bound at an offset inside larger buffers (as the flat trainable buffers bind them),
// and the folded dispatch.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { columnDotRef, scaleColumnsRef, type Ia3Shape } from '../ref/ia3.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { recordColumnDot, recordScaleColumns } from './ia3.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const SHAPES: Ia3Shape[] = [
  { rows: 1, n: 1 },
  { rows: 3, n: 65 },
  { rows: 37, n: 29 },
  { rows: 130, n: 97 },
];
// l lives 64 floats (256 bytes, the storage offset alignment) into its buffer.
const OFFSET = 64;

function atOffset(values: Float32Array): { buffer: GPUBuffer; binding: GPUBufferBinding } {
  const host = new Float32Array(OFFSET + values.length + 3).fill(99);
  host.set(values, OFFSET);
  const buffer = upload(e, host);
  return { buffer, binding: { buffer, offset: OFFSET * 4, size: values.length * 4 } };
}

describe('ia3 kernels', () => {
  it.each(SHAPES)('scale_columns rows=$rows n=$n', async (s) => {
    for (const accumulate of [false, true]) {
      const a = randomArray(s.rows * s.n, s.n);
      const l = randomArray(s.n, s.rows + 1);
      const out0 = randomArray(s.rows * s.n, 7);
      const out = upload(e, out0);
      const rec = e.record();
      recordScaleColumns(rec, s, { a: upload(e, a), l: atOffset(l).binding, out }, accumulate, { maxWorkgroupsPerDim: 16 });
      await rec.submit();
      const want = scaleColumnsRef(s, a, l, accumulate ? out0 : undefined);
      expect(mismatches(await download(e, out, s.rows * s.n), want, { abs: 1e-7, rel: 2e-7 })).toEqual([]);
    }
  });

  it.each(SHAPES)('column_dot rows=$rows n=$n', async (s) => {
    for (const accumulate of [false, true]) {
      const a = randomArray(s.rows * s.n, s.n + 2);
      const b = randomArray(s.rows * s.n, s.n + 3);
      const dl0 = randomArray(s.n, 11);
      const dl = atOffset(dl0);
      const rec = e.record();
      recordColumnDot(rec, s, { a: upload(e, a), b: upload(e, b), out: dl.binding }, accumulate);
      await rec.submit();
      const got = await download(e, dl.buffer, OFFSET + s.n + 3);
      const want = columnDotRef(s, a, b, accumulate ? dl0 : undefined);
      // f32 sums of `rows` products against float64.
      expect(mismatches(got.subarray(OFFSET, OFFSET + s.n), want, { abs: 1e-6 * Math.sqrt(s.rows), rel: 1e-5 })).toEqual([]);
      // Nothing outside the bound range is written.
      expect([...got.subarray(0, OFFSET), ...got.subarray(OFFSET + s.n)].every((v) => v === 99)).toBe(true);
    }
  });

  it('refuses an empty shape', () => {
    expect(() => recordScaleColumns(e.record(), { rows: 0, n: 3 }, { a: zeros(e, 1), l: zeros(e, 1), out: zeros(e, 1) })).toThrow(/rows 0 × n 3/);
  });
});
