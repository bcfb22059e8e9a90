import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { matmulRef, type MatmulShape } from '../ref/matmul.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { fromF16Array, toF16Array } from '../ref/elementwise.ref.ts';
import { MATMUL_VARIANTS, matmulVariantApplies, recordMatmul, type MatmulVariant } from './matmul.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// Odd sizes on purpose: 1, 7, 33, 130 and non-square shapes exercise every partial-tile path. The last two have
// multiples of 4 where blocked4 needs them (all four transposes for 68×36×20, all but transA for M = 5), still
// leaving partial tiles in m, n and k; blocked4 falls back to blocked on the others.
const SHAPES: MatmulShape[] = [
  { M: 1, N: 1, K: 1 },
  { M: 7, N: 7, K: 7 },
  { M: 33, N: 7, K: 130 },
  { M: 130, N: 33, K: 1 },
  { M: 1, N: 130, K: 33 },
  { M: 65, N: 66, K: 67 },
  { M: 5, N: 12, K: 8 },
  { M: 68, N: 36, K: 20 },
];

/** The variant recordMatmul should dispatch for `variant` at `shape`. */
function dispatched(variant: MatmulVariant, shape: MatmulShape): MatmulVariant {
  return matmulVariantApplies(variant, shape) ? variant : 'blocked';
}

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
  const used = recordMatmul(rec, shape, { A: upload(e, A), B: upload(e, B), C, bias: bias && upload(e, bias) }, { variant, accumulate: opts.accumulate });
  await rec.submit();
  const got = await download(e, C, batch * shape.M * shape.N);
  const want = matmulRef({ ...shape, A, B, bias, C: C0 });
  return { got, want, used };
}

// f32 accumulation of K products of values in [-1, 1): error grows like √K·2⁻²⁴ per term.
const TOL = { abs: 1e-5, rel: 1e-5 };

describe.each(MATMUL_VARIANTS)('matmul %s', (variant) => {
  it.each(SHAPES)('matches the reference at M=$M N=$N K=$K', async (shape) => {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const full = { ...shape, transA, transB };
        const { got, want, used } = await runMatmul(variant, full, { seed: shape.M * 7 + shape.K });
        expect(used).toBe(dispatched(variant, full));
        expect(mismatches(got, want, TOL), `transA=${transA} transB=${transB} (ran ${used})`).toEqual([]);
      }
    }
  });

  it('batches, broadcasts B, scales by alpha, adds bias and accumulates', async () => {
    // The second shape lets blocked4 run it (K and the batch strides multiples of 4), the first makes it fall back.
    for (const shape of [
      { M: 9, N: 17, K: 31, batch: 3, strideB: 0, alpha: 0.37, transB: true },
      { M: 9, N: 22, K: 36, batch: 3, strideB: 0, alpha: 0.37, transB: true },
    ] satisfies MatmulShape[]) {
      const { got, want, used } = await runMatmul(variant, shape, { bias: true, accumulate: true, seed: 11 });
      expect(used).toBe(dispatched(variant, shape));
      expect(mismatches(got, want, TOL), `K=${shape.K}`).toEqual([]);
    }
  });
});

describe.each(MATMUL_VARIANTS)('matmul %s at element offsets', (variant) => {
  // A matrix that starts inside its buffer (a chunk of rows): offsets 8 and 12 let blocked4 run, 5 and 3 make it
  // fall back; C's offset leaves the elements before it untouched.
  it.each([
    { offsetA: 8, offsetB: 12, offsetC: 20 },
    { offsetA: 5, offsetB: 3, offsetC: 7 },
  ])('reads A and B and writes C from their offsets ($offsetA, $offsetB, $offsetC)', async (offsets) => {
    for (const transB of [false, true]) {
      const shape: MatmulShape = { M: 9, N: 20, K: 12, transB, ...offsets };
      const A = randomArray(offsets.offsetA + 9 * 12, 31);
      const B = randomArray(offsets.offsetB + 12 * 20, 32);
      const C0 = randomArray(offsets.offsetC + 9 * 20, 33);
      const C = upload(e, C0);
      const rec = e.record('matmul-offsets');
      const used = recordMatmul(rec, shape, { A: upload(e, A), B: upload(e, B), C }, { variant, accumulate: true });
      await rec.submit();
      const got = await download(e, C, offsets.offsetC + 9 * 20);
      const want = matmulRef({ ...shape, A, B, C: C0.subarray(offsets.offsetC) });
      expect(used).toBe(dispatched(variant, shape));
      expect(Array.from(got.subarray(0, offsets.offsetC)), 'before C').toEqual(Array.from(C0.subarray(0, offsets.offsetC)));
      expect(mismatches(got.subarray(offsets.offsetC), want, TOL), `transB=${transB}`).toEqual([]);
    }
  });
});

describe('where blocked4 applies', () => {
  it('needs each operand’s contiguous dimension and batch stride to be multiples of 4', () => {
    const cases: [MatmulShape, boolean][] = [
      [{ M: 5, N: 12, K: 8 }, true], // A along k, B along n
      [{ M: 5, N: 12, K: 8, transA: true }, false], // A (K, M) runs along m = 5
      [{ M: 5, N: 7, K: 8, transB: true }, true], // B (N, K) runs along k: N = 7 does not matter
      [{ M: 8, N: 7, K: 8 }, false], // B (K, N) runs along n = 7
      [{ M: 8, N: 8, K: 6, transA: true }, true], // only m and n are contiguous here
      [{ M: 8, N: 8, K: 6, transB: true }, false],
      [{ M: 8, N: 8, K: 8, batch: 2, strideA: 66 }, false], // the second batch's A starts mid-vec4
      [{ M: 8, N: 8, K: 8, batch: 2, strideB: 0 }, true], // a broadcast B is fine
    ];
    for (const [shape, applies] of cases) expect(matmulVariantApplies('blocked4', shape), JSON.stringify(shape)).toBe(applies);
    for (const [shape] of cases) for (const v of MATMUL_VARIANTS) if (v !== 'blocked4') expect(matmulVariantApplies(v, shape)).toBe(true);
  });

  it('falls back to blocked elsewhere, with blocked’s bits', async () => {
    const shape: MatmulShape = { M: 9, N: 14, K: 12 }; // B (K, N) along n = 14
    const fallback = await runMatmul('blocked4', shape, { seed: 3 });
    const blocked = await runMatmul('blocked', shape, { seed: 3 });
    expect(fallback.used).toBe('blocked');
    expect(mismatches(fallback.got, blocked.got, { abs: 0, rel: 0 })).toEqual([]);
    expect((await runMatmul('blocked4', { ...shape, N: 16 }, { seed: 3 })).used).toBe('blocked4');
  });
});

describe('matmul variants', () => {
  it('give the same bits: k is accumulated in the same order everywhere', async () => {
    // Both shapes let every variant run itself (blocked4 included: A (K, M) and B (K, N) along m = 68 and n = 44;
    // A (M, K) and B (N, K) along k = 92), with partial tiles everywhere.
    for (const shape of [
      { M: 68, N: 44, K: 93, transA: true },
      { M: 70, N: 45, K: 92, transB: true },
    ] satisfies MatmulShape[]) {
      const results = [];
      for (const variant of MATMUL_VARIANTS) {
        const { got, used } = await runMatmul(variant, shape, { seed: 5 });
        expect(used).toBe(variant);
        results.push(got);
      }
      for (let i = 1; i < results.length; i++) {
        expect(mismatches(results[i], results[0], { abs: 0, rel: 0 }), `${MATMUL_VARIANTS[i]} K=${shape.K}`).toEqual([]);
      }
    }
  });
});

describe('matmul with f16 storage (adapters with shader-f16)', () => {
  it.for(MATMUL_VARIANTS)('%s: f16 weights and f16 activations accumulate in f32', async (variant, ctx) => {
    // SwiftShader: reported as skipped (the f32-only path is what the other tests cover), not counted as passed.
    if (!e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    // K = 70 makes blocked4 fall back; the two more it gets give it vec4<f16> loads along k, n and m. (Only it:
    // every new transpose combination is another pipeline, and llvmpipe takes seconds to compile each.)
    const shapes: MatmulShape[] = [{ M: 13, N: 21, K: 70, transB: true }];
    if (variant === 'blocked4') shapes.push({ M: 13, N: 20, K: 68 }, { M: 12, N: 21, K: 68, transA: true, transB: true });
    for (const shape of shapes) {
      for (const [elemA, elemB] of [['f32', 'f16'], ['f16', 'f16']] as const) {
        const A = randomArray(shape.M * shape.K, 21);
        const B = randomArray(shape.N * shape.K, 22);
        const A16 = toF16Array(A);
        const B16 = toF16Array(B);
        const C = zeros(e, shape.M * shape.N);
        const rec = e.record('matmul-f16');
        const used = recordMatmul(rec, shape, { A: elemA === 'f16' ? upload(e, A16) : upload(e, A), B: upload(e, B16), C }, { variant, elemA, elemB });
        await rec.submit();
        expect(used).toBe(dispatched(variant, shape));
        // The reference multiplies the same rounded values, so only f32 accumulation error remains.
        const want = matmulRef({ ...shape, A: elemA === 'f16' ? fromF16Array(A16) : A, B: fromF16Array(B16) });
        expect(mismatches(await download(e, C, shape.M * shape.N), want, TOL), `${elemA}×${elemB} ${JSON.stringify(shape)}`).toEqual([]);
      }
    }
  });
});
