// Plain TypeScript reference for columns.wgsl.

export interface ColumnsShape {
  rows: number;
  /** Columns of the wide matrix. */
  wide: number;
  /** Columns moved. */
  narrow: number;
  /** First wide column moved. */
  offset: number;
}

export function gatherColumnsRef(s: ColumnsShape, wide: ArrayLike<number>): Float64Array {
  const out = new Float64Array(s.rows * s.narrow);
  for (let r = 0; r < s.rows; r++) for (let c = 0; c < s.narrow; c++) out[r * s.narrow + c] = wide[r * s.wide + s.offset + c];
  return out;
}

export function scatterColumnsRef(s: ColumnsShape, narrow: ArrayLike<number>, wide: ArrayLike<number>, accumulate: boolean): Float64Array {
  const out = Float64Array.from(wide);
  for (let r = 0; r < s.rows; r++) {
    for (let c = 0; c < s.narrow; c++) {
      const j = r * s.wide + s.offset + c;
      out[j] = narrow[r * s.narrow + c] + (accumulate ? wide[j] : 0);
    }
  }
  return out;
}
