// Host side of matmul_nf4.wgsl: A times an NF4 weight, forward (x·Wᵀ) and input-gradient (dy·W). See the .wgsl
// header for the contract.
import source from '../../shaders/matmul_nf4.wgsl?raw';
import { KernelError, packParams, type DispatchCost, type KernelSpec, type Recorder } from '../kernel.ts';
import { foldWorkgroups, type FoldOptions } from './elementwise.ts';
import { recordMatmul, type MatmulVariant } from './matmul.ts';
import type { Nf4Weight } from './nf4.ts';

/** naive, tiled, blocked: one fused entry point each (the weight decoded as it is loaded). dequant: the weight decoded
 *  whole into a scratch (the `dequantize` entry point), then the product on matmul.wgsl's chosen dense variant. */
export const MATMUL_NF4_VARIANTS = ['naive', 'tiled', 'blocked', 'dequant'] as const;
export type MatmulNf4Variant = (typeof MATMUL_NF4_VARIANTS)[number];
/** The variants that are one product kernel of matmul_nf4.wgsl. */
export type FusedNf4Variant = Exclude<MatmulNf4Variant, 'dequant'>;

/** Output-tile edge per workgroup of each fused variant. */
const TILE: Record<FusedNf4Variant, number> = { naive: 8, tiled: 16, blocked: 64 };

/** The fused variant that stands in for `dequant` where the runtime does not take that route (too few rows, or a
 *  weight whose f32 copy would not fit one binding). */
export const DEQUANT_FALLBACK: FusedNf4Variant = 'blocked';

/**
 * Rows from which the runtime takes the dequant route when the tuner chose it. Decoding the whole weight costs ~8.5
 * bytes of memory traffic per element (codes, scales, the f32 written and read back): on an H200 about a 35-row
 * product's arithmetic, so it pays only for products of many rows (a training step's T = batch·seq), never for
 * generation's one token at a time, whose fused product reads just the codes. An estimate, not yet measured.
 */
export const NF4_DEQUANT_MIN_ROWS = 256;

/** What the dequant route needs beside the product's buffers. */
export interface Nf4DequantRoute {
  /** At least out·in f32 (nf4DequantBytes): overwritten with the decoded weight. */
  scratch: GPUBuffer;
  /** The dense matmul.wgsl variant the product runs on (it falls back to blocked where blocked4 does not apply). */
  matmul: MatmulVariant;
}

/** Bytes of a weight's decoded f32 copy: the dequant route's scratch. */
export function nf4DequantBytes(W: Pick<Nf4Weight, 'out' | 'in'>): number {
  return W.out * W.in * 4;
}

/** Which variant a product of M rows runs where a shared scratch exists (a training step's workspace; without one the
 *  runtime runs DEQUANT_FALLBACK, see linear.ts): `chosen`, except that the dequant route stands down to
 *  DEQUANT_FALLBACK below NF4_DEQUANT_MIN_ROWS or when the decoded weight would exceed `maxBindingBytes`. The two
 *  give the same bits, so this changes speed and memory only. */
export function nf4VariantForRows(chosen: MatmulNf4Variant, M: number, W: Pick<Nf4Weight, 'out' | 'in'>, maxBindingBytes: number): MatmulNf4Variant {
  if (chosen !== 'dequant') return chosen;
  return M >= NF4_DEQUANT_MIN_ROWS && nf4DequantBytes(W) <= maxBindingBytes ? 'dequant' : DEQUANT_FALLBACK;
}

export interface MatmulNf4Options {
  variant: FusedNf4Variant;
  /** true: forward y = x·Wᵀ; false: backward dx = dy·W. */
  transB: boolean;
  hasBias?: boolean;
  accumulate?: boolean;
  doubleQuant?: boolean;
}

export function matmulNf4Spec(o: MatmulNf4Options): KernelSpec {
  const flags = [o.transB && 'tB', o.hasBias && 'bias', o.accumulate && 'acc', o.doubleQuant && 'dq'].filter(Boolean);
  return {
    label: `matmul_nf4.${o.variant}${flags.length ? '.' + flags.join('.') : ''}`,
    file: 'src/shaders/matmul_nf4.wgsl',
    wgsl: source,
    entryPoint: o.variant,
    constants: {
      TRANS_B: o.transB ? 1 : 0,
      HAS_BIAS: o.hasBias ? 1 : 0,
      ACCUMULATE: o.accumulate ? 1 : 0,
      DOUBLE_QUANT: o.doubleQuant ? 1 : 0,
    },
    bindings: ['read', 'read', 'read', 'read', 'read', 'read_write'],
    paramsBytes: 32,
  };
}

/** Every spec the runtime can instantiate (no f16 variants: A is an f32 activation or gradient). */
export function allMatmulNf4Specs(): KernelSpec[] {
  const specs: KernelSpec[] = [];
  for (const variant of MATMUL_NF4_VARIANTS)
    for (const transB of [false, true])
      for (const hasBias of [false, true])
        for (const accumulate of [false, true])
          for (const doubleQuant of [false, true])
            if (variant !== 'dequant') specs.push(matmulNf4Spec({ variant, transB, hasBias, accumulate, doubleQuant }));
  for (const doubleQuant of [false, true]) specs.push(nf4DequantizeSpec(doubleQuant));
  return specs;
}

/** The `dequantize` entry point (the product's constants do not apply to it). */
export function nf4DequantizeSpec(doubleQuant: boolean): KernelSpec {
  return {
    label: `matmul_nf4.dequantize${doubleQuant ? '.dq' : ''}`,
    file: 'src/shaders/matmul_nf4.wgsl',
    wgsl: source,
    entryPoint: 'dequantize',
    constants: { DOUBLE_QUANT: doubleQuant ? 1 : 0 },
    bindings: ['read', 'read', 'read', 'read', 'read', 'read_write'],
    paramsBytes: 32,
  };
}

/** Records out = W decoded, the flattened [out, in] weight as f32 (out must hold nf4DequantBytes(W)). */
export function recordNf4Dequantize(rec: Recorder, W: Nf4Weight, out: GPUBuffer, o: FoldOptions = {}): void {
  const n = W.out * W.in;
  if (out.size < nf4DequantBytes(W)) throw new KernelError(`matmul_nf4.dequantize: ${out.label} holds ${out.size} bytes, the weight needs ${nf4DequantBytes(W)}`);
  const params = packParams([
    ['u32', 0],
    ['u32', W.out],
    ['u32', W.in],
    ['f32', 1],
    ['f32', W.offset],
    ['u32', 0],
    ['u32', 0],
    ['u32', 0],
  ]);
  const blocks = Math.ceil(n / 64);
  rec.dispatch(
    nf4DequantizeSpec(W.doubleQuant),
    [rec.unused, W.codes, W.absmax, W.stats ?? rec.unused, rec.unused, out],
    params,
    foldWorkgroups(Math.ceil(n / 256), o.maxWorkgroupsPerDim),
    { flops: 0, bytes: Math.ceil(n / 2) + blocks * (W.doubleQuant ? 1 : 4) + n * 4 },
  );
}

export interface MatmulNf4Shape {
  /** Rows of A (tokens). */
  M: number;
  /** true: forward, A is (M, in) and C (M, out); false: backward, A is (M, out) and C (M, in). */
  transB: boolean;
  alpha?: number;
}

export interface MatmulNf4Buffers {
  A: GPUBuffer;
  W: Nf4Weight;
  C: GPUBuffer;
  /** (N) f32; omit for no bias. */
  bias?: GPUBuffer;
}

/** K and N of the product for a weight and direction. */
export function matmulNf4Dims(W: Nf4Weight, transB: boolean): { K: number; N: number } {
  return transB ? { K: W.in, N: W.out } : { K: W.out, N: W.in };
}

/** Records C = alpha·A·op(W) (+ bias) (+ C when accumulate) into `rec`. The dequant variant needs `dequant` (and
 *  runs at any M: nf4VariantForRows is the runtime's choice of when to take it). */
export function recordMatmulNf4(
  rec: Recorder,
  shape: MatmulNf4Shape,
  buffers: MatmulNf4Buffers,
  options: { variant: MatmulNf4Variant; accumulate?: boolean; dequant?: Nf4DequantRoute },
): void {
  const { M, transB } = shape;
  const { W } = buffers;
  const { K, N } = matmulNf4Dims(W, transB);
  if (options.variant === 'dequant') {
    if (!options.dequant) throw new KernelError('matmul_nf4: the dequant variant needs a scratch buffer and a dense variant');
    recordNf4Dequantize(rec, W, options.dequant.scratch);
    // W is [out, in] row-major: stored (N, K) for the forward (transB), (K, N) for dx.
    recordMatmul(
      rec,
      { M, N, K, transB, alpha: shape.alpha },
      { A: buffers.A, B: options.dequant.scratch, C: buffers.C, bias: buffers.bias },
      { variant: options.dequant.matmul, accumulate: options.accumulate },
    );
    return;
  }
  const spec = matmulNf4Spec({ variant: options.variant, accumulate: options.accumulate, transB, hasBias: !!buffers.bias, doubleQuant: W.doubleQuant });
  const params = packParams([
    ['u32', M],
    ['u32', N],
    ['u32', K],
    ['f32', shape.alpha ?? 1],
    ['f32', W.offset],
    ['u32', 0],
    ['u32', 0],
    ['u32', 0],
  ]);
  const tile = TILE[options.variant];
  rec.dispatch(
    spec,
    [buffers.A, W.codes, W.absmax, W.stats ?? rec.unused, buffers.bias ?? rec.unused, buffers.C],
    params,
    [Math.ceil(N / tile), Math.ceil(M / tile), 1],
    matmulNf4Cost(M, N, K, W.doubleQuant, { accumulate: options.accumulate, hasBias: !!buffers.bias }),
  );
}

/** 2·M·N·K FLOPs (the decode not counted); A, the 4-bit codes and the block scales (1 byte each with double
 *  quantization), C written (and read when accumulating). */
export function matmulNf4Cost(M: number, N: number, K: number, doubleQuant: boolean, o: { accumulate?: boolean; hasBias?: boolean } = {}): DispatchCost {
  const blocks = Math.ceil((N * K) / 64);
  return {
    flops: 2 * M * N * K,
    bytes: M * K * 4 + Math.ceil((N * K) / 2) + blocks * (doubleQuant ? 1 : 4) + M * N * 4 * (o.accumulate ? 2 : 1) + (o.hasBias ? N * 4 : 0),
  };
}
