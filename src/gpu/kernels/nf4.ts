// Host side of NF4 weights: the GPU layout that matmul_nf4.wgsl reads (see its header) and its upload. The
// quantization itself runs on the CPU (ref/nf4.ref.ts) when the model loader reads a frozen weight.
import { uploadBuffer } from '../buffers.ts';
import type { Engine } from '../engine.ts';
import { dynamicMap, quantizeNf4, type Nf4Options, type Nf4Tensor } from '../ref/nf4.ref.ts';

/** An NF4 weight on the GPU: the logical [out, in] matrix, quantized row-major in blocks of 64. */
export interface Nf4Weight {
  readonly out: number;
  readonly in: number;
  readonly doubleQuant: boolean;
  /** ⌈out·in/2⌉ bytes (u32-padded): two 4-bit codes per byte, the first in the high nibble. */
  readonly codes: GPUBuffer;
  /** (⌈out·in/64⌉) f32, or with double quantization (⌈out·in/64⌉) u8 codes into the dynamic map. */
  readonly absmax: GPUBuffer;
  /** Double quantization only: f32 [dynamic map (256) | second-level absmax (⌈blocks/256⌉)]. */
  readonly stats: GPUBuffer | null;
  /** Double quantization only: the mean subtracted from absmax (0 otherwise). */
  readonly offset: number;
  /** Bytes on the GPU, for memory accounting. */
  readonly bytes: number;
}

/** The arrays to upload for one quantized weight, as matmul_nf4.wgsl reads them. */
export interface Nf4GpuArrays {
  codes: Uint8Array;
  absmax: Float32Array | Uint8Array;
  stats: Float32Array | null;
  offset: number;
}

export function nf4GpuArrays(q: Nf4Tensor): Nf4GpuArrays {
  const s = q.scales;
  if (!s.doubleQuant) return { codes: q.codes, absmax: s.absmax, stats: null, offset: 0 };
  const stats = new Float32Array(256 + s.absmax2.length);
  stats.set(dynamicMap(), 0);
  stats.set(s.absmax2, 256);
  return { codes: q.codes, absmax: s.absmax8, stats, offset: s.offset };
}

/** Uploads a quantized [out, in] weight. */
export function uploadNf4(e: Engine, q: Nf4Tensor, out: number, inDim: number, label = 'nf4'): Nf4Weight {
  if (q.n !== out * inDim) throw new Error(`uploadNf4(${label}): ${q.n} quantized elements, expected ${out}·${inDim}`);
  const a = nf4GpuArrays(q);
  const codes = uploadBuffer(e.buffers, e.device, a.codes, `${label}.codes`);
  const absmax = uploadBuffer(e.buffers, e.device, a.absmax, `${label}.absmax`);
  const stats = a.stats ? uploadBuffer(e.buffers, e.device, a.stats, `${label}.stats`) : null;
  return {
    out,
    in: inDim,
    doubleQuant: q.scales.doubleQuant,
    codes,
    absmax,
    stats,
    offset: a.offset,
    bytes: codes.size + absmax.size + (stats?.size ?? 0),
  };
}

/** Quantizes an f32 [out, in] weight on the CPU and uploads it. */
export function quantizeAndUploadNf4(
  e: Engine,
  w: ArrayLike<number>,
  out: number,
  inDim: number,
  options: Nf4Options = {},
  label = 'nf4',
): Nf4Weight {
  return uploadNf4(e, quantizeNf4(w, options), out, inDim, label);
}

export function releaseNf4(e: Engine, w: Nf4Weight): void {
  e.buffers.release(w.codes);
  e.buffers.release(w.absmax);
  if (w.stats) e.buffers.release(w.stats);
}
