// Plain TypeScript reference for elementwise.wgsl (float64), and the f16 helpers the f16 tests of every kernel family
// use to build f16 uploads and read f16 results (bit-exact conversions live in ../half.ts).
import { fromF16Bits, toF16Bits } from '../half.ts';

export function addRef(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, (v, i) => v + b[i]);
}

export function scaleRef(x: ArrayLike<number>, alpha: number): Float64Array {
  return Float64Array.from(x, (v) => alpha * v);
}

export function sumOfSquaresRef(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

/** f16's largest finite value; to_half saturates to it. */
export const HALF_MAX = 65504;

/** The binary16 bits nearest to `v` (as f32 first, as the GPU's cast sees it; ties to even; ±inf beyond range). */
export const f16Bits = toF16Bits;

/** The value of binary16 bits. */
export const f16Value = fromF16Bits;

/** `v` rounded to f16, as to_half does it: saturating at ±HALF_MAX. */
export function toHalfRef(v: number): number {
  return f16Value(f16Bits(Math.min(HALF_MAX, Math.max(-HALF_MAX, v))));
}

/** Values as f16 bits, ready to upload (uploadBuffer pads to 4 bytes). */
export function toF16Array(values: ArrayLike<number>): Uint16Array {
  return Uint16Array.from(values as ArrayLike<number>, (v) => f16Bits(v));
}

/** f16 bits back to numbers. */
export function fromF16Array(bits: ArrayLike<number>): Float64Array {
  return Float64Array.from(bits as ArrayLike<number>, (b) => f16Value(b));
}
