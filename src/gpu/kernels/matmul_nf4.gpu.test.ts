import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { matmulRef } from '../ref/matmul.ref.ts';
import { dequantizeNf4, quantizeNf4 } from '../ref/nf4.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { MATMUL_NF4_VARIANTS, matmulNf4Dims, recordMatmulNf4, type MatmulNf4Variant } from './matmul_nf4.ts';
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
  o: { M: number; transB: boolean; bias?: boolean; accumulate?: boolean; alpha?: number; seed: number },
) {
  const { K, N } = matmulNf4Dims(c.W, o.transB);
  const A = randomArray(o.M * K, o.seed);
  const bias = o.bias ? randomArray(N, o.seed + 1) : undefined;
  const C0 = o.accumulate ? randomArray(o.M * N, o.seed + 2) : undefined;
  const C = C0 ? upload(e, C0) : zeros(e, o.M * N);
  const rec = e.record('matmul_nf4-test');
  recordMatmulNf4(
    rec,
    { M: o.M, transB: o.transB, alpha: o.alpha },
    { A: upload(e, A), W: c.W, C, bias: bias && upload(e, bias) },
    { variant, accumulate: o.accumulate },
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
  // multiples of the k-steps (16) or of the NF4 block (64), and 70 × 67 has an odd element count.
  const SHAPES = [
    { out: 45, in: 93, M: 20 },
    { out: 70, in: 67, M: 66 },
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
      }
    });
  }
});
