// Plain TypeScript reference for embedding.wgsl (float64): token (+ learned position) embedding gather, with the
// kernel's out-of-range rule (an id ≥ vocab or a position ≥ maxPos contributes zeros).

export interface EmbeddingShape {
  rows: number;
  C: number;
  vocab: number;
  /** Rows of wpe; 0 when there are no learned positions. */
  maxPos?: number;
}

export function embeddingRef(
  { rows, C, vocab, maxPos = 0 }: EmbeddingShape,
  ids: ArrayLike<number>,
  wte: ArrayLike<number>,
  positions?: ArrayLike<number>,
  wpe?: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(rows * C);
  for (let t = 0; t < rows; t++) {
    for (let c = 0; c < C; c++) {
      let v = ids[t] < vocab ? wte[ids[t] * C + c] : 0;
      if (positions && wpe && positions[t] < maxPos) v += wpe[positions[t] * C + c];
      out[t * C + c] = v;
    }
  }
  return out;
}
