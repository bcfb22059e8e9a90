// Conversions between f32, IEEE 754 half (f16) and bfloat16, on raw bit patterns.
//
// f16 values are carried as Uint16Array of their bits (the engine uploads them as-is to f16 storage buffers);
// bf16 is only ever read from checkpoints and widened. f32 → f16 rounds to nearest, ties to even, with subnormals,
// overflow to ±inf and NaN (kept quiet, sign preserved) handled like hardware conversion (numpy's astype(float16)).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Bits of the f32 nearest to `x` (x is first rounded to f32, as Float32Array does). */
export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** The f32 whose bits are `bits`. */
export function f32FromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0];
}

/** f32 bits → f16 bits, round to nearest even. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return mant === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mant >>> 13); // inf; NaN stays NaN, quiet
  const e = exp - 127 + 15; // the f16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00; // too large even before rounding: inf
  if (e <= 0) {
    // An f16 subnormal (or zero): shift the significand, implicit bit included, right by 14 − e.
    if (e < -10) return sign; // below half the smallest subnormal (2^-25): rounds to ±0
    mant |= 0x800000;
    const shift = 14 - e;
    const kept = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    // A carry out of the subnormal range produces 0x0400, the smallest normal: the encoding is continuous.
    return sign | (rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept);
  }
  const bits = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry can ripple into the exponent (and up to 0x7c00 = inf), which is exactly the right rounding.
  return sign | (rest > 0x1000 || (rest === 0x1000 && (bits & 1) === 1) ? bits + 1 : bits);
}

/** f16 bits → the f32 bits of the same value (exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf / NaN (payload kept)
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0; // ±0
  // Subnormal: normalise. value = mant · 2^-24; find the leading bit.
  let m = mant;
  let e = -14;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | ((e + 127) << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** x → f16 bits (x rounded to f32 first, then to f16: the same as numpy's float32 → float16). */
export function toF16Bits(x: number): number {
  return f32BitsToF16Bits(f32Bits(x));
}

/** The value of f16 bits. */
export function fromF16Bits(h: number): number {
  return f32FromBits(f16BitsToF32Bits(h));
}

/** The value of bf16 bits (bf16 is the top half of an f32). */
export function fromBf16Bits(b: number): number {
  return f32FromBits((b & 0xffff) << 16);
}

/** f32 values → f16 bits. */
export function f32ArrayToF16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** f16 bits → f32 values. */
export function f16ArrayToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = f16BitsToF32Bits(src[i]);
  return out;
}

/** bf16 bits → f32 values (exact). */
export function bf16ArrayToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/** f32 values → bf16 bits, rounded to nearest even as torch's .to(torch.bfloat16) does (a NaN stays a NaN). */
export function f32ArrayToBf16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i];
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) out[i] = (b >>> 16) | 0x40;
    else out[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** bf16 bits → f16 bits: widening to f32 is exact, so this rounds once (to nearest even). */
export function bf16ArrayToF16(src: Uint16Array, out = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits((src[i] << 16) >>> 0);
  return out;
}
