// Plain TypeScript reference for virtual_tokens.wgsl (float64): prompt tuning's virtual tokens added into the
// embeddings, and the gradient of their table. A virtual token is an id base + j (j < n): row j of P.

/** x (rows, C) with P[ids[t] − base] added at every virtual position. */
export function virtualTokensForwardRef(ids: ArrayLike<number>, x0: ArrayLike<number>, P: ArrayLike<number>, base: number, n: number, C: number): Float64Array {
  const x = Float64Array.from(x0);
  for (let t = 0; t < ids.length; t++) {
    const j = ids[t] - base;
    if (j < 0 || j >= n) continue;
    for (let c = 0; c < C; c++) x[t * C + c] += P[j * C + c];
  }
  return x;
}

/** dP (n, C) = dP0 + Σ_t [ids[t] = base + j] dx[t]. */
export function virtualTokensBackwardRef(ids: ArrayLike<number>, dx: ArrayLike<number>, base: number, n: number, C: number, dP0?: ArrayLike<number>): Float64Array {
  const dP = dP0 ? Float64Array.from(dP0) : new Float64Array(n * C);
  for (let t = 0; t < ids.length; t++) {
    const j = ids[t] - base;
    if (j < 0 || j >= n) continue;
    for (let c = 0; c < C; c++) dP[j * C + c] += dx[t * C + c];
  }
  return dP;
}
