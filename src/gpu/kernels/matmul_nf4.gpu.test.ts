import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { matmulRef } from '../ref/matmul.ref.ts';
import { dequantizeNf4, quantizeNf4 } from '../ref/nf4.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import type { MatmulVariant } from './matmul.ts';
import { MATMUL_NF4_VARIANTS, matmulNf4Dims, nf4DequantBytes, recordMatmulNf4, recordNf4Dequantize, type MatmulNf4Variant } from './matmul_nf4.ts';
import { uploadNf4, type Nf4Weight } from './nf4.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// [out, in] weights at odd sizes: in not a multiple of 64 (blocks straddle rows), odd element counts (the last
// byte holds one element), a single element, and one with > 256 blocks so double quantization has two
// second-level blocks; M and N past one 64×64 output tile.
const WEIGHTS = [
  { out: 7, in: 65, M: 5 }, // 455 elements: odd
  { out: 33, in: 70, M: 3 },
  { out: 1, in: 1, M: 2 },
  { out: 19, in: 3, M: 17 }, // 57 elements: odd, one short block
  { out: 70, in: 251, M: 2 }, // 17570 elements: 275 blocks
  { out: 67, in: 17, M: 66 }, // 1139 elements: odd; M, and out forward, span two 64-wide tiles of blocked
];

interface Case {
  W: Nf4Weight;
  dequantized: Float32Array;
}

function quantized(out: number, inDim: number, doubleQuant: boolean, seed: number): Case {
  const w = randomArray(out * inDim, seed, 0.05);
  const q = quantizeNf4(w, { doubleQuant });
  return { W: uploadNf4(e, q, out, inDim, `w${out}x${inDim}`), dequantized: dequantizeNf4(q) };
}

async function run(
  variant: MatmulNf4Variant,
  c: Case,
  o: { M: number; transB: boolean; bias?: boolean; accumulate?: boolean; alpha?: number; seed: number; dense?: MatmulVariant },
) {
  const { K, N } = matmulNf4Dims(c.W, o.transB);
  const A = randomArray(o.M * K, o.seed);
  const bias = o.bias ? randomArray(N, o.seed + 1) : undefined;
  const C0 = o.accumulate ? randomArray(o.M * N, o.seed + 2) : undefined;
  const C = C0 ? upload(e, C0) : zeros(e, o.M * N);
  const rec = e.record('matmul_nf4-test');
  // The dequant route's scratch starts as garbage (NaN), so a decode that missed an element would show.
  const dequant = variant === 'dequant' ? { scratch: upload(e, new Float32Array(nf4DequantBytes(c.W) / 4).fill(NaN)), matmul: o.dense ?? 'naive' } : undefined;
  recordMatmulNf4(
    rec,
    { M: o.M, transB: o.transB, alpha: o.alpha },
    { A: upload(e, A), W: c.W, C, bias: bias && upload(e, bias) },
    { variant, accumulate: o.accumulate, dequant },
  );
  await rec.submit();
  const got = await download(e, C, o.M * N);
  // Forward: B = W stored (N, K) = transB; backward: B = W stored (K, N).
  const want = matmulRef({ M: o.M, N, K, transB: o.transB, A, B: c.dequantized, bias, C: C0, alpha: o.alpha });
  return { got, want };
}

// The dequantized weight is exact in f32, so this is matmul's f32-accumulation bound (√K·2⁻²⁴ per term of
// |a·w| ≤ 0.05); with double quantization the GPU may fuse map·absmax2 + offset into one fma, an absmax ulp.
const TOL = { abs: 1e-5, rel: 1e-5 };

describe.each(MATMUL_NF4_VARIANTS)('matmul_nf4 %s', (variant) => {
  for (const doubleQuant of [false, true]) {
    it.each(WEIGHTS)(`matches matmulRef on the dequantized weight, out=$out in=$in M=$M, double quant ${doubleQuant}`, async (s) => {
      const c = quantized(s.out, s.in, doubleQuant, s.out * 31 + s.in);
      for (const transB of [true, false]) {
        const { got, want } = await run(variant, c, { M: s.M, transB, seed: s.M + s.in });
        expect(mismatches(got, want, TOL), `transB=${transB}`).toEqual([]);
      }
    });
  }

  it('scales by alpha, adds bias and accumulates, both directions', async () => {
    const c = quantized(9, 67, true, 77);
    for (const transB of [true, false]) {
      const { got, want } = await run(variant, c, { M: 11, transB, bias: true, accumulate: true, alpha: 0.37, seed: 5 });
      expect(mismatches(got, want, TOL), `transB=${transB}`).toEqual([]);
    }
  });
});

describe('matmul_nf4 variants', () => {
  // Shapes spanning several tiles of every variant: M = 66 is two 64-row tiles of blocked, K = 93 and 67 are not
  // multiples of the k-steps (16) or of the NF4 block (64), and 70 × 67 has an odd element count; 68 × 132 is all
  // multiples of 4, so the dequant route's product really runs on blocked4 (elsewhere it falls back to blocked).
  const SHAPES = [
    { out: 45, in: 93, M: 20 },
    { out: 70, in: 67, M: 66 },
    { out: 68, in: 132, M: 12 },
  ];
  for (const doubleQuant of [false, true]) {
    it.each(SHAPES)(`give the same bits: k is accumulated in the same order everywhere, out=$out in=$in M=$M, double quant ${doubleQuant}`, async (s) => {
      const c = quantized(s.out, s.in, doubleQuant, s.out + s.in);
      for (const transB of [true, false]) {
        const a = await run('naive', c, { M: s.M, transB, seed: 8 });
        for (const variant of MATMUL_NF4_VARIANTS.filter((v) => v !== 'naive')) {
          const b = await run(variant, c, { M: s.M, transB, seed: 8 });
          expect(mismatches(b.got, a.got, { abs: 0, rel: 0 }), `${variant} transB=${transB}`).toEqual([]);
        }
        const d = await run('dequant', c, { M: s.M, transB, seed: 8, dense: 'blocked4' });
        expect(mismatches(d.got, a.got, { abs: 0, rel: 0 }), `dequant → blocked4 transB=${transB}`).toEqual([]);
      }
    });
  }
});

describe('matmul_nf4 dequantize', () => {
  // Every element decoded (the scratch starts as NaN) and nothing past it, a 1-D dispatch and one folded into 2-D:
  // 17570 elements are 69 workgroups of 256 (the last one partly past the end), folded 9 per row into 8 rows, so
  // three whole workgroups lie past the end too.
  for (const doubleQuant of [false, true]) {
    it(`writes the dequantized weight, plain and folded dispatches, double quant ${doubleQuant}`, async () => {
      const c = quantized(70, 251, doubleQuant, 3);
      for (const maxWorkgroupsPerDim of [undefined, 9]) {
        const out = upload(e, new Float32Array(70 * 251 + 5).fill(NaN));
        const rec = e.record('nf4-dequantize-test');
        recordNf4Dequantize(rec, c.W, out, { maxWorkgroupsPerDim });
        await rec.submit();
        const got = await download(e, out, 70 * 251 + 5);
        // The ref is exact; with double quantization the GPU may fuse map·absmax2 + offset into one fma (see TOL).
        const tol = doubleQuant ? { abs: 0, rel: 1e-6 } : { abs: 0, rel: 0 };
        expect(mismatches(got.subarray(0, 70 * 251), c.dequantized, tol), `fold ${maxWorkgroupsPerDim}`).toEqual([]);
        expect([...got.subarray(70 * 251)].every(Number.isNaN), 'nothing written past the weight').toBe(true);
      }
    });
  }

  it('refuses a scratch smaller than the weight', () => {
    const c = quantized(7, 65, false, 1);
    const rec = e.record('nf4-dequantize-small');
    expect(() => recordNf4Dequantize(rec, c.W, zeros(e, 7 * 64))).toThrow(/holds 1792 bytes, the weight needs 1820/);
  });
});
