// NF4 4-bit weight quantization, byte-compatible with bitsandbytes' quantize_4bit(quant_type="nf4", blocksize=64)
// and its double quantization (compress_statistics=True). Used as the reference for matmul_nf4 and by the model
// loader to quantize frozen weights on the CPU before upload.
//
// Follows bitsandbytes' CUDA kernel (kQuantizeBlockwise, csrc) in f32 arithmetic, emulated exactly with Math.fround:
//   blocks of 64 over the flattened [out, in] weight (a short last block uses its own elements)
//   absmax = max |x| per block (f32); inv = 1 / absmax (f32); code = dQuantizeNF4(x · inv), a decision tree of `>`
//   against the f32 midpoints of the codebook, so a value exactly on a midpoint takes the LOWER code
//   two codes per byte, the first element in the HIGH nibble
//   odd element count: cub's BlockLoad pads the block with 0.0, so the last low nibble is dQuantizeNF4(0 · inv),
//   i.e. 0b0111 (the code of 0.0) — NOT a zero nibble; dequantization never reads it
//   absmax 0: inv = +inf and 0 · inf = NaN, every comparison is false, so the codes are 0b0000 (NF4 −1.0), and
//   −1.0 · 0 dequantizes to −0.0. We keep this (bitsandbytes' own bytes; its CPU fallback, an argmin over NaN
//   distances, also gives index 0) rather than writing the code of 0.0, so a weight quantized here is
//   byte-identical to one quantized by bitsandbytes.
// Double quantization (bitsandbytes.functional.quantize_4bit → quantize_blockwise(absmax − mean, blocksize=256)):
//   offset = mean(absmax) (f32); each 256-block of (absmax − offset) has its own absmax2 (f32) and its values are
//   coded as u8 indices into the signed dynamic map (create_dynamic_map(signed=True)) by dQuantize<0>: a 7-step
//   binary search, then the nearer neighbour by f32 midpoint.
// Dequantization: w = NF4[code] · absmax, with double quantization absmax = dynamicMap[code8] · absmax2 + offset
// (f32 product, then f32 sum, as dequantize_blockwise(...) + offset).

const f = Math.fround;

/** NF4 codebook (bitsandbytes' dDequantizeNF4), as f32. */
export const NF4_CODE = new Float32Array([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/** Elements per absmax block (bitsandbytes' 4-bit default, the only size QLoRA uses). */
export const NF4_BLOCK = 64;
/** Absmax values per second-level block under double quantization (fixed at 256 in bitsandbytes). */
export const NF4_DQ_BLOCK = 256;

// The f32 midpoints of dQuantizeNF4's tree (constants with an `f` suffix in csrc).
const T = {
  root: f(0.03979014977812767),
  p1: f(0.3893125355243683),
  p11: f(0.6427869200706482),
  p111: f(0.8614784181118011),
  p110: f(0.5016634166240692),
  p10: f(0.2035212516784668),
  p101: f(0.2920137718319893),
  p100: f(0.1202552504837513),
  n0: f(-0.33967943489551544),
  n01: f(-0.13791173323988914),
  n011: f(-0.045525018125772476),
  n010: f(-0.23460740596055984),
  n00: f(-0.6106329262256622),
  n001: f(-0.4599952697753906),
  n000: f(-0.8480964004993439),
};

/** bitsandbytes' dQuantizeNF4: the 4-bit code of a normalized f32 value. NaN → 0. */
export function nf4Code(x: number): number {
  if (x > T.root) {
    if (x > T.p1) {
      if (x > T.p11) return x > T.p111 ? 0b1111 : 0b1110;
      return x > T.p110 ? 0b1101 : 0b1100;
    }
    if (x > T.p10) return x > T.p101 ? 0b1011 : 0b1010;
    return x > T.p100 ? 0b1001 : 0b1000;
  }
  if (x > T.n0) {
    if (x > T.n01) return x > T.n011 ? 0b0111 : 0b0110;
    return x > T.n010 ? 0b0101 : 0b0100;
  }
  if (x > T.n00) return x > T.n001 ? 0b0011 : 0b0010;
  return x > T.n000 ? 0b0001 : 0b0000;
}

/** torch.linspace(start, end, steps) for float32 on the CPU: f32 step, the first half counted up from start and
 *  the second half down from end, each value rounded once (torch's vectorised kernel fuses the multiply-add; the
 *  product of an f32 and a small integer is exact in float64, so the float64 sum rounded to f32 is that fma). */
function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  const out = new Float32Array(steps);
  for (let i = 0; i < steps; i++) out[i] = i < halfway ? f(s + step * i) : f(e - step * (steps - i - 1));
  return out;
}

let dynamicMapCache: Float32Array | null = null;

/** bitsandbytes.functional.create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256 sorted f32
 *  values in [−0.993, 1]: for exponent i = 0..6, the midpoints of linspace(0.1, 1, 2^i + 1) times ±10^(i−6),
 *  plus 0 and 1. Computed in torch's f32 arithmetic so every entry has bitsandbytes' bits. */
export function dynamicMap(): Float32Array {
  if (dynamicMapCache) return dynamicMapCache;
  const data: number[] = [];
  const POW10 = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1];
  for (let i = 0; i < 7; i++) {
    const b = linspaceF32(0.1, 1, 2 ** i + 1);
    const scale = f(POW10[i]);
    const means: number[] = [];
    for (let j = 0; j + 1 < b.length; j++) means.push(f(f(b[j] + b[j + 1]) / 2));
    for (const m of means) data.push(f(scale * m));
    for (const m of means) data.push(f(-scale * m));
  }
  data.push(0, 1);
  data.sort((a, b) => a - b);
  dynamicMapCache = new Float32Array(data);
  return dynamicMapCache;
}

/** bitsandbytes' dQuantize<0>: the u8 index of `x` in a sorted 256-entry code. Binary search over 7 probes, then
 *  the nearer of the final pivot and its bracketing neighbour by f32 midpoint; a tie goes to the final pivot. */
export function dynamicCode(code: Float32Array, x: number): number {
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = -1.0;
  let upper = 1.0;
  let val = code[pivot];
  for (let i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = code[pivot];
  }
  if (upperPivot === 255) upper = code[upperPivot];
  if (lowerPivot === 0) lower = code[lowerPivot];
  if (x > val) return x > f(f(upper + val) * 0.5) ? upperPivot : pivot;
  return x < f(f(lower + val) * 0.5) ? lowerPivot : pivot;
}

export type Nf4Scales =
  /** absmax (⌈n/64⌉) f32 */
  | { doubleQuant: false; absmax: Float32Array }
  /** absmax8 (⌈n/64⌉) u8 codes into dynamicMap(); absmax2 (⌈⌈n/64⌉/256⌉) f32; offset f32 */
  | { doubleQuant: true; absmax8: Uint8Array; absmax2: Float32Array; offset: number };

/** A quantized weight: the flattened row-major [out, in] matrix (n = out·in elements). */
export interface Nf4Tensor {
  n: number;
  /** ⌈n/2⌉ bytes; element 2i in the high nibble of byte i, element 2i+1 in the low nibble. */
  codes: Uint8Array;
  scales: Nf4Scales;
}

export interface Nf4Options {
  /** bitsandbytes' compress_statistics (QLoRA's bnb_4bit_use_double_quant). */
  doubleQuant?: boolean;
}

/** Per-block absmax and blockwise codes with bitsandbytes' kQuantizeBlockwise arithmetic. `encode` gets x · inv.
 *  `padToEven`: 4-bit codes come in pairs, so an odd count also encodes the padding value 0.0 at index n. */
function quantizeBlocks(
  x: ArrayLike<number>,
  block: number,
  encode: (scaled: number) => number,
  out: (i: number, code: number) => void,
  padToEven: boolean,
): Float32Array {
  const n = x.length;
  const blocks = Math.ceil(n / block);
  const absmax = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const start = b * block;
    const end = Math.min(n, start + block);
    let max = 0;
    for (let i = start; i < end; i++) max = Math.max(max, Math.abs(f(x[i])));
    absmax[b] = max;
    const inv = f(1 / max);
    for (let i = start; i < end; i++) out(i, encode(f(f(x[i]) * inv)));
    // cub's BlockLoad pads a short block with 0.0; only a 4-bit odd tail makes it visible (the last low nibble).
    if (padToEven && end === n && n % 2 === 1) out(n, encode(f(0 * inv)));
  }
  return absmax;
}

/** Quantizes f32 values (a flattened [out, in] weight, row-major) to NF4 exactly as bitsandbytes does. */
export function quantizeNf4(x: ArrayLike<number>, options: Nf4Options = {}): Nf4Tensor {
  const n = x.length;
  if (n === 0) throw new Error('quantizeNf4: empty tensor');
  const codes = new Uint8Array(Math.ceil(n / 2));
  const absmax = quantizeBlocks(x, NF4_BLOCK, nf4Code, (i, c) => {
    codes[i >> 1] |= i % 2 === 0 ? c << 4 : c;
  }, true);
  if (!options.doubleQuant) return { n, codes, scales: { doubleQuant: false, absmax } };

  let sum = 0;
  for (const a of absmax) sum += a;
  // torch's f32 mean; computed here in float64 and rounded once (torch's f32 cascade sum can differ by an ulp on
  // large tensors, bitsandbytes on CUDA and on CPU can differ the same way).
  const offset = f(sum / absmax.length);
  const centered = absmax.map((a) => f(a - offset));
  const map = dynamicMap();
  const absmax8 = new Uint8Array(absmax.length);
  const absmax2 = quantizeBlocks(centered, NF4_DQ_BLOCK, (v) => dynamicCode(map, v), (i, c) => (absmax8[i] = c), false);
  return { n, codes, scales: { doubleQuant: true, absmax8, absmax2, offset } };
}

/** The f32 absmax of every 64-block, undoing double quantization if present. */
export function nf4BlockAbsmax(q: Nf4Tensor): Float32Array {
  const s = q.scales;
  if (!s.doubleQuant) return s.absmax;
  const map = dynamicMap();
  const out = new Float32Array(s.absmax8.length);
  for (let b = 0; b < out.length; b++) out[b] = f(f(map[s.absmax8[b]] * s.absmax2[Math.floor(b / NF4_DQ_BLOCK)]) + s.offset);
  return out;
}

/** The 4-bit code of element i. */
export function nf4CodeAt(codes: Uint8Array, i: number): number {
  const byte = codes[i >> 1];
  return i % 2 === 0 ? byte >> 4 : byte & 0xf;
}

/** The dequantized weight, f32: NF4[code] · absmax (bitsandbytes' dequantize_4bit). */
export function dequantizeNf4(q: Nf4Tensor): Float32Array {
  const absmax = nf4BlockAbsmax(q);
  const out = new Float32Array(q.n);
  for (let i = 0; i < q.n; i++) out[i] = f(NF4_CODE[nf4CodeAt(q.codes, i)] * absmax[Math.floor(i / NF4_BLOCK)]);
  return out;
}

/** GPT-2's Conv1D stores its weight [in, out]; transformers transposes it to nn.Linear's [out, in] before
 *  quantizing, so we do too. Returns the [out, in] matrix, row-major. */
export function conv1dToLinear(w: ArrayLike<number>, inDim: number, outDim: number): Float32Array {
  if (w.length !== inDim * outDim) throw new Error(`conv1dToLinear: ${w.length} values, expected ${inDim}·${outDim}`);
  const out = new Float32Array(inDim * outDim);
  for (let i = 0; i < inDim; i++) for (let o = 0; o < outDim; o++) out[o * inDim + i] = w[i * outDim + o];
  return out;
}
