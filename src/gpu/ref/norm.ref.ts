// Plain TypeScript reference for norm.wgsl (float64): LayerNorm and RMSNorm over the last dimension of (rows, C),
// forward and backward.

export type NormKind = 'layernorm' | 'rmsnorm';

export interface NormShape {
  rows: number;
  C: number;
  eps: number;
}

export interface NormForward {
  y: Float64Array; // (rows, C)
  mean: Float64Array; // (rows); 0 for RMSNorm
  rstd: Float64Array; // (rows)
}

/** LayerNorm: y = (x − mean)·rstd·w (+ b), biased variance. RMSNorm: y = x·rstd·w, rstd = 1/√(mean(x²) + eps). */
export function normForwardRef(
  kind: NormKind,
  { rows, C, eps }: NormShape,
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias?: ArrayLike<number>,
): NormForward {
  const y = new Float64Array(rows * C);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    let m = 0;
    if (kind === 'layernorm') {
      for (let c = 0; c < C; c++) m += x[base + c];
      m /= C;
    }
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[base + c] - m) ** 2;
    const s = 1 / Math.sqrt(v / C + eps);
    for (let c = 0; c < C; c++) y[base + c] = (x[base + c] - m) * s * weight[c] + (bias ? bias[c] : 0);
    mean[r] = m;
    rstd[r] = s;
  }
  return { y, mean, rstd };
}

export interface NormGrads {
  dx: Float64Array; // (rows, C)
  dweight: Float64Array; // (C)
  dbias: Float64Array; // (C); Σ_rows dy, meaningful for LayerNorm with a bias
}

/** Gradients of Σ y·dy. `dx0`, when given, is added to dx (ACCUMULATE). */
export function normBackwardRef(
  kind: NormKind,
  shape: NormShape,
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  dy: ArrayLike<number>,
  dx0?: ArrayLike<number>,
): NormGrads {
  const { rows, C } = shape;
  const { mean, rstd } = normForwardRef(kind, shape, x, weight);
  const dx = new Float64Array(rows * C);
  const dweight = new Float64Array(C);
  const dbias = new Float64Array(C);
  for (let r = 0; r < rows; r++) {
    const base = r * C;
    const xhat = (c: number) => (x[base + c] - mean[r]) * rstd[r];
    let meanG = 0;
    let meanGX = 0;
    for (let c = 0; c < C; c++) {
      const g = weight[c] * dy[base + c];
      meanG += g / C;
      meanGX += (g * xhat(c)) / C;
      dweight[c] += dy[base + c] * xhat(c);
      dbias[c] += dy[base + c];
    }
    if (kind === 'rmsnorm') meanG = 0;
    for (let c = 0; c < C; c++) {
      const i = base + c;
      dx[i] = rstd[r] * (weight[c] * dy[i] - meanG - xhat(c) * meanGX) + (dx0 ? dx0[i] : 0);
    }
  }
  return { dx, dweight, dbias };
}
