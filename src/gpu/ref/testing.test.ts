import { describe, expect, it } from 'vitest';
import { matmulRef } from './matmul.ref.ts';
import { mismatches, randomArray, rng } from './testing.ts';

describe('test helpers', () => {
  it('rng is reproducible and uniform-ish', () => {
    const a = rng(7);
    const b = rng(7);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
  });

  it('mismatches reports what differs and nothing else', () => {
    expect(mismatches([1, 2, 3], [1, 2, 3], { abs: 0, rel: 0 })).toEqual([]);
    const found = mismatches([1, 2.5, 3, NaN], [1, 2, 3, 4], { abs: 1e-3, rel: 0 });
    expect(found).toHaveLength(2);
    expect(found[0]).toContain('[1] got 2.5');
    expect(found[1]).toContain('[3] got NaN');
  });
});

describe('matmulRef', () => {
  it('computes a known 2×3 · 3×2 product', () => {
    const A = [1, 2, 3, 4, 5, 6];
    const B = [7, 8, 9, 10, 11, 12];
    expect([...matmulRef({ A, B, M: 2, N: 2, K: 3 })]).toEqual([58, 64, 139, 154]);
  });

  it('transposed storage gives the same product', () => {
    const M = 3, N = 4, K = 5;
    const A = randomArray(M * K, 1);
    const B = randomArray(K * N, 2);
    const At = new Float32Array(K * M);
    const Bt = new Float32Array(N * K);
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) At[k * M + m] = A[m * K + k];
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) Bt[n * K + k] = B[k * N + n];
    const plain = matmulRef({ A, B, M, N, K });
    const both = matmulRef({ A: At, B: Bt, M, N, K, transA: true, transB: true });
    expect(mismatches(both, plain, { abs: 1e-12, rel: 0 })).toEqual([]);
  });

  it('applies alpha, bias, accumulation and batch broadcast', () => {
    const A = [1, 2, 3, 4]; // two 1×2 matrices
    const B = [1, 1]; // one 2×1, broadcast
    const out = matmulRef({ A, B, M: 1, N: 1, K: 2, batch: 2, strideB: 0, alpha: 2, bias: [0.5], C: [10, 20] });
    expect([...out]).toEqual([2 * 3 + 0.5 + 10, 2 * 7 + 0.5 + 20]);
  });
});
