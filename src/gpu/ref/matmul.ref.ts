// Plain TypeScript reference for matmul.wgsl: the same contract, computed in float64 in the obvious way.

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  batch?: number;
  transA?: boolean;
  transB?: boolean;
  /** Elements between consecutive batch matrices; 0 broadcasts one matrix. Defaults to the packed size. */
  strideA?: number;
  strideB?: number;
  alpha?: number;
  /** Elements before each matrix's first element in its buffer (A, B, and the output C). Default 0. The reference
   *  reads A and B at their offsets; its C input and its output are the output matrix itself (offsetC places it
   *  in the GPU buffer only). */
  offsetA?: number;
  offsetB?: number;
  offsetC?: number;
}

export interface MatmulRefInputs extends MatmulShape {
  A: ArrayLike<number>;
  B: ArrayLike<number>;
  bias?: ArrayLike<number>;
  /** When given, the result is added to it (ACCUMULATE). */
  C?: ArrayLike<number>;
}

export function matmulRef(x: MatmulRefInputs): Float64Array {
  const { M, N, K, transA = false, transB = false, alpha = 1 } = x;
  const batch = x.batch ?? 1;
  const strideA = x.strideA ?? M * K;
  const strideB = x.strideB ?? K * N;
  const out = new Float64Array(batch * M * N);
  for (let b = 0; b < batch; b++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const a = x.A[(x.offsetA ?? 0) + b * strideA + (transA ? k * M + m : m * K + k)];
          const bv = x.B[(x.offsetB ?? 0) + b * strideB + (transB ? n * K + k : k * N + n)];
          acc += a * bv;
        }
        const i = b * M * N + m * N + n;
        out[i] = alpha * acc + (x.bias ? x.bias[n] : 0) + (x.C ? x.C[i] : 0);
      }
    }
  }
  return out;
}
