// Plain TypeScript reference for ia3.wgsl (float64).

export interface Ia3Shape {
  rows: number;
  /** Columns: the length of l. */
  n: number;
}

/** a ⊙ l with l broadcast over rows (+ out0 when given: the accumulating form). */
export function scaleColumnsRef(s: Ia3Shape, a: ArrayLike<number>, l: ArrayLike<number>, out0?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(s.rows * s.n);
  for (let r = 0; r < s.rows; r++) for (let j = 0; j < s.n; j++) out[r * s.n + j] = a[r * s.n + j] * l[j] + (out0 ? out0[r * s.n + j] : 0);
  return out;
}

/** Σ over rows of a ⊙ b, per column (+ out0 when given). */
export function columnDotRef(s: Ia3Shape, a: ArrayLike<number>, b: ArrayLike<number>, out0?: ArrayLike<number>): Float64Array {
  const out = new Float64Array(s.n);
  for (let j = 0; j < s.n; j++) {
    let sum = out0 ? out0[j] : 0;
    for (let r = 0; r < s.rows; r++) sum += a[r * s.n + j] * b[r * s.n + j];
    out[j] = sum;
  }
  return out;
}
