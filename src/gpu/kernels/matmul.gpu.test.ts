import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { matmulRef, type MatmulShape } from '../ref/matmul.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { fromF16Array, toF16Array } from '../ref/elementwise.ref.ts';
import { MATMUL_VARIANTS, recordMatmul, type MatmulVariant } from './matmul.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// Odd sizes on purpose: 1, 7, 33, 130 and non-square shapes exercise every partial-tile path.
const SHAPES: MatmulShape[] = [
  { M: 1, N: 1, K: 1 },
  { M: 7, N: 7, K: 7 },
  { M: 33, N: 7, K: 130 },
  { M: 130, N: 33, K: 1 },
  { M: 1, N: 130, K: 33 },
  { M: 65, N: 66, K: 67 },
];

async function runMatmul(variant: MatmulVariant, shape: MatmulShape, opts: { bias?: boolean; accumulate?: boolean; seed: number }) {
  const batch = shape.batch ?? 1;
  const aLen = shape.strideA === 0 ? shape.M * shape.K : batch * shape.M * shape.K;
  const bLen = shape.strideB === 0 ? shape.K * shape.N : batch * shape.K * shape.N;
  const A = randomArray(aLen, opts.seed);
  const B = randomArray(bLen, opts.seed + 1);
  const bias = opts.bias ? randomArray(shape.N, opts.seed + 2) : undefined;
  const C0 = opts.accumulate ? randomArray(batch * shape.M * shape.N, opts.seed + 3) : undefined;
  const C = C0 ? upload(e, C0) : zeros(e, batch * shape.M * shape.N);
  const rec = e.record('matmul-test');
  recordMatmul(rec, shape, { A: upload(e, A), B: upload(e, B), C, bias: bias && upload(e, bias) }, { variant, accumulate: opts.accumulate });
  await rec.submit();
  const got = await download(e, C, batch * shape.M * shape.N);
  const want = matmulRef({ ...shape, A, B, bias, C: C0 });
  return { got, want };
}

// f32 accumulation of K products of values in [-1, 1): error grows like √K·2⁻²⁴ per term.
const TOL = { abs: 1e-5, rel: 1e-5 };

describe.each(MATMUL_VARIANTS)('matmul %s', (variant) => {
  it.each(SHAPES)('matches the reference at M=$M N=$N K=$K', async (shape) => {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const { got, want } = await runMatmul(variant, { ...shape, transA, transB }, { seed: shape.M * 7 + shape.K });
        expect(mismatches(got, want, TOL), `transA=${transA} transB=${transB}`).toEqual([]);
      }
    }
  });

  it('batches, broadcasts B, scales by alpha, adds bias and accumulates', async () => {
    const shape: MatmulShape = { M: 9, N: 17, K: 31, batch: 3, strideB: 0, alpha: 0.37, transB: true };
    const { got, want } = await runMatmul(variant, shape, { bias: true, accumulate: true, seed: 11 });
    expect(mismatches(got, want, TOL)).toEqual([]);
  });
});

describe('matmul variants', () => {
  it('give the same bits: k is accumulated in the same order everywhere', async () => {
    const shape: MatmulShape = { M: 70, N: 45, K: 93, transA: true };
    const results = [];
    for (const variant of MATMUL_VARIANTS) results.push((await runMatmul(variant, shape, { seed: 5 })).got);
    for (let i = 1; i < results.length; i++) {
      expect(mismatches(results[i], results[0], { abs: 0, rel: 0 }), MATMUL_VARIANTS[i]).toEqual([]);
    }
  });
});

describe('matmul with f16 storage (adapters with shader-f16)', () => {
  it.each(MATMUL_VARIANTS)('%s: f16 weights and f16 activations accumulate in f32', async (variant) => {
    if (!e.gpu.hasF16) return; // SwiftShader: the f32-only path is what the other tests cover
    for (const [elemA, elemB] of [['f32', 'f16'], ['f16', 'f16']] as const) {
      const shape: MatmulShape = { M: 13, N: 21, K: 70, transB: true };
      const A = randomArray(shape.M * shape.K, 21);
      const B = randomArray(shape.N * shape.K, 22);
      const A16 = toF16Array(A);
      const B16 = toF16Array(B);
      const C = zeros(e, shape.M * shape.N);
      const rec = e.record('matmul-f16');
      recordMatmul(rec, shape, { A: elemA === 'f16' ? upload(e, A16) : upload(e, A), B: upload(e, B16), C }, { variant, elemA, elemB });
      await rec.submit();
      // The reference multiplies the same rounded values, so only f32 accumulation error remains.
      const want = matmulRef({ ...shape, A: elemA === 'f16' ? fromF16Array(A16) : A, B: fromF16Array(B16) });
      expect(mismatches(await download(e, C, shape.M * shape.N), want, TOL), `${elemA}×${elemB}`).toEqual([]);
    }
  });
});
