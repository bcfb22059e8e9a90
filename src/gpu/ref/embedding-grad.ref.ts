// Plain TypeScript reference for embedding_grad.wgsl (float64): the gradient of an embedding lookup.

/** dE (vocab, C) = dE0 + Σ_t onehot(ids[t]) ⊗ dx[t]: each row gets the sum of the dx rows of the positions holding its
 *  id. */
export function embeddingGradRef(ids: ArrayLike<number>, dx: ArrayLike<number>, vocab: number, C: number, dE0?: ArrayLike<number>): Float64Array {
  const out = dE0 ? Float64Array.from(dE0) : new Float64Array(vocab * C);
  for (let t = 0; t < ids.length; t++) for (let c = 0; c < C; c++) out[ids[t] * C + c] += dx[t * C + c];
  return out;
}
