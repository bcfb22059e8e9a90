// dora.wgsl and dora_nf4.wgsl against their float64 reference (ref/dora.ref.ts) on odd sizes (not multiples of the
// 64-wide workgroup, nor of NF4's 64-element block): the weight norm over nn.Linear and Conv1D f32 weights, f16 ones
// where the adapter has shader-f16, and NF4 weights with and without double quantization (reference: the same norm
// over the weight NF4 decodes to); A, B and m bound at offsets inside larger buffers, as the flat trainable buffers
// bind them; the output combination in each of its forms and the magnitude gradient, with and without accumulation.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { doraMagnitudeGradRef, doraOutputRef, doraWeightNormRef } from '../ref/dora.ref.ts';
import { fromF16Array, toF16Array } from '../ref/elementwise.ref.ts';
import { dequantizeNf4, quantizeNf4 } from '../ref/nf4.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload } from '../testing-gpu.ts';
import { doraScalesStride, recordDoraMagnitudeGrad, recordDoraOutput, recordDoraWeightNorm } from './dora.ts';
import { uploadNf4 } from './nf4.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const OFFSET = 64;
function atOffset(values: Float32Array): GPUBufferBinding {
  const host = new Float32Array(OFFSET + values.length + 5).fill(99);
  host.set(values, OFFSET);
  return { buffer: upload(e, host), offset: OFFSET * 4, size: values.length * 4 };
}

const SHAPES = [
  { out: 1, in: 3, r: 1, scale: 2 },
  { out: 23, in: 70, r: 3, scale: 0.75 },
  { out: 97, in: 130, r: 8, scale: 2 },
];

type Storage = 'f32' | 'conv1d' | 'f16' | 'nf4' | 'nf4-dq';

describe('dora weight_norm', () => {
  it.for(SHAPES.flatMap((s) => (['f32', 'conv1d', 'f16', 'nf4', 'nf4-dq'] as Storage[]).map((storage) => [s, storage] as const)))(
    '%o %s',
    async ([s, storage], ctx) => {
      if (storage === 'f16' && !e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
      const Wrows = randomArray(s.out * s.in, s.in, 0.3); // [out, in]
      const A = randomArray(s.r * s.in, 2, 0.2);
      const B = randomArray(s.out * s.r, 3, 0.2);
      const m = randomArray(s.out, 4).map((v) => 1 + Math.abs(v));
      let W: Parameters<typeof recordDoraWeightNorm>[2]['W'];
      let Wref: ArrayLike<number> = Wrows;
      if (storage === 'nf4' || storage === 'nf4-dq') {
        const q = quantizeNf4(Wrows, { doubleQuant: storage === 'nf4-dq' });
        Wref = dequantizeNf4(q);
        W = { kind: 'nf4', weight: uploadNf4(e, q, s.out, s.in) };
      } else if (storage === 'f16') {
        const half = toF16Array(Wrows);
        Wref = fromF16Array(half);
        W = { kind: 'dense', buffer: upload(e, half), elem: 'f16', conv1d: false };
      } else if (storage === 'conv1d') {
        const t = new Float32Array(s.in * s.out);
        for (let j = 0; j < s.out; j++) for (let i = 0; i < s.in; i++) t[i * s.out + j] = Wrows[j * s.in + i];
        W = { kind: 'dense', buffer: upload(e, t), elem: 'f32', conv1d: true };
      } else W = { kind: 'dense', buffer: upload(e, Wrows), elem: 'f32', conv1d: false };
      const stride = doraScalesStride(s.out);
      const scales = upload(e, new Float32Array(3 * stride).fill(-5));
      const rec = e.record('dora norm');
      // Folded above 16 rows here, to reach the 2-D dispatch (above 65535 rows on a real adapter).
      recordDoraWeightNorm(rec, s, { W, A: atOffset(A), B: atOffset(B), m: atOffset(m), scales }, { maxWorkgroupsPerDim: 16 });
      await rec.submit();
      const got = await download(e, scales, 3 * stride);
      const n = doraWeightNormRef(s, Wref, A, B);
      const c = Float64Array.from(n, (v, j) => m[j] / v);
      // f32 sums of `in` squares against float64.
      const tol = { abs: 1e-6, rel: 2e-6 };
      expect(mismatches(got.subarray(0, s.out), n, tol), 'n').toEqual([]);
      expect(mismatches(got.subarray(stride, stride + s.out), c, tol), 'c').toEqual([]);
      expect(mismatches(got.subarray(2 * stride, 2 * stride + s.out), c.map((v) => v - 1), tol), 'c − 1').toEqual([]);
      // The padding between the blocks is left alone.
      if (stride > s.out) expect(got[s.out]).toBe(-5);
    },
  );
});

describe('dora output and magnitude_grad', () => {
  it.each([
    { rows: 1, n: 1 },
    { rows: 7, n: 23 },
    { rows: 37, n: 97 },
  ])('rows=$rows n=$n', async (s) => {
    const count = s.rows * s.n;
    const zl = randomArray(count, 1);
    const z = randomArray(count, 2);
    const bias = randomArray(s.n, 3);
    const c = randomArray(s.n, 4);
    const y0 = randomArray(count, 5);
    for (const [withZ, withBias, accumulate] of [[false, true, false], [false, false, true], [true, false, true], [true, true, false]] as const) {
      const y = upload(e, y0);
      const rec = e.record('dora output');
      recordDoraOutput(
        rec,
        s,
        { zl: upload(e, zl), z: withZ ? upload(e, z) : undefined, bias: withBias ? atOffset(bias) : undefined, c: atOffset(c), y },
        accumulate,
        { maxWorkgroupsPerDim: 16 },
      );
      await rec.submit();
      const want = doraOutputRef(s, zl, c, { z: withZ ? z : undefined, bias: withBias ? bias : undefined, y0: accumulate ? y0 : undefined });
      expect(mismatches(await download(e, y, count), want, { abs: 1e-6, rel: 1e-6 }), `z ${withZ} bias ${withBias} acc ${accumulate}`).toEqual([]);
    }
    const dy = randomArray(count, 6);
    const norm = randomArray(s.n, 7).map((v) => 0.5 + Math.abs(v));
    const dm0 = randomArray(s.n, 8);
    for (const accumulate of [false, true]) {
      const dm = atOffset(dm0);
      const rec = e.record('dora dm');
      recordDoraMagnitudeGrad(rec, s, { dy: upload(e, dy), zl: upload(e, zl), norm: atOffset(norm), dm }, accumulate);
      await rec.submit();
      const got = await download(e, dm.buffer as GPUBuffer, OFFSET + s.n + 5);
      const want = doraMagnitudeGradRef(s, dy, zl, norm, accumulate ? dm0 : undefined);
      expect(mismatches(got.subarray(OFFSET, OFFSET + s.n), want, { abs: 2e-6 * Math.sqrt(s.rows), rel: 1e-5 }), `dm acc ${accumulate}`).toEqual([]);
      expect(got[OFFSET + s.n]).toBe(99);
    }
  });
});
