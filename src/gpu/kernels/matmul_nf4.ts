// Host side of matmul_nf4.wgsl: A times an NF4 weight, forward (x·Wᵀ) and input-gradient (dy·W). See the .wgsl
// header for the contract.
import source from '../../shaders/matmul_nf4.wgsl?raw';
import { packParams, type DispatchCost, type KernelSpec, type Recorder } from '../kernel.ts';
import type { Nf4Weight } from './nf4.ts';

export const MATMUL_NF4_VARIANTS = ['naive', 'tiled', 'blocked'] as const;
export type MatmulNf4Variant = (typeof MATMUL_NF4_VARIANTS)[number];

/** Output-tile edge per workgroup of each variant. */
const TILE: Record<MatmulNf4Variant, number> = { naive: 8, tiled: 16, blocked: 64 };

export interface MatmulNf4Options {
  variant: MatmulNf4Variant;
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
            specs.push(matmulNf4Spec({ variant, transB, hasBias, accumulate, doubleQuant }));
  return specs;
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

/** Records C = alpha·A·op(W) (+ bias) (+ C when accumulate) into `rec`. */
export function recordMatmulNf4(
  rec: Recorder,
  shape: MatmulNf4Shape,
  buffers: MatmulNf4Buffers,
  options: { variant: MatmulNf4Variant; accumulate?: boolean },
): void {
  const { M, transB } = shape;
  const { W } = buffers;
  const { K, N } = matmulNf4Dims(W, transB);
  const spec = matmulNf4Spec({ ...options, transB, hasBias: !!buffers.bias, doubleQuant: W.doubleQuant });
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
