// Host side of elementwise.wgsl: add, scale, copy, f32↔f16 casts and the two-pass sum of squares. Also the 1-D
// dispatch folding every elementwise family uses. See the .wgsl header for the contract.
import source from '../../shaders/elementwise.wgsl?raw';
import { KernelError, packParams, type BindingAccess, type KernelSpec, type Recorder, type Workgroups } from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';
import { elementwiseCost } from './cost.ts';

/** WebGPU's default (and SwiftShader's) maxComputeWorkgroupsPerDimension: a 1-D dispatch is folded above it. */
export const MAX_WORKGROUPS_PER_DIM = 65535;

/** Options every elementwise-style record function takes. */
export interface FoldOptions {
  /** Fold 1-D dispatches above this many workgroups into 2-D. Only tests lower it, to reach the folded path. */
  maxWorkgroupsPerDim?: number;
}

/** `groups` workgroups as (x, y, 1) with x ≤ maxPerDim; the shader's flat index is wid.y·nwg.x + wid.x, and the
 *  surplus of the last row (x·y − groups workgroups) is cut by the shader's bounds guard. */
export function foldWorkgroups(groups: number, maxPerDim = MAX_WORKGROUPS_PER_DIM): Workgroups {
  if (groups <= maxPerDim) return [groups, 1, 1];
  const y = Math.ceil(groups / maxPerDim);
  if (y > maxPerDim) throw new KernelError(`${groups} workgroups do not fit in ${maxPerDim}² even when folded`);
  return [maxPerDim, y, 1];
}

const WG = 256;
/** Elements per partial sum of sumsq_partial (256 threads × 16). */
export const SUMSQ_CHUNK = 4096;

export const ELEMENTWISE_OPS = [
  'add',
  'add_inplace',
  'scale',
  'scale_inplace',
  'copy',
  'to_half',
  'to_f32',
  'sumsq_partial',
  'sumsq_final',
] as const;
export type ElementwiseOp = (typeof ELEMENTWISE_OPS)[number];

const BINDINGS: Record<ElementwiseOp, readonly BindingAccess[]> = {
  add: ['read', 'read', 'read_write'],
  add_inplace: ['read', 'read_write'],
  scale: ['read', 'read_write'],
  scale_inplace: ['read_write'],
  copy: ['read', 'read_write'],
  to_half: ['read', 'read_write'],
  to_f32: ['read', 'read_write'],
  sumsq_partial: ['read', 'read_write'],
  sumsq_final: ['read', 'read_write'],
};

const CASTS: readonly ElementwiseOp[] = ['to_half', 'to_f32'];

/** FLOPs and bytes moved per element of each op (the casts read one width and write the other). */
const COST: Record<ElementwiseOp, { flops: number; bytes: number }> = {
  add: { flops: 1, bytes: 12 },
  add_inplace: { flops: 1, bytes: 12 },
  scale: { flops: 1, bytes: 8 },
  scale_inplace: { flops: 1, bytes: 8 },
  copy: { flops: 0, bytes: 8 },
  to_half: { flops: 0, bytes: 6 },
  to_f32: { flops: 0, bytes: 6 },
  sumsq_partial: { flops: 2, bytes: 4 },
  sumsq_final: { flops: 1, bytes: 4 },
};

function costOf(op: ElementwiseOp, n: number) {
  return elementwiseCost(n, COST[op].flops, COST[op].bytes);
}

export interface ElementwiseOptions {
  op: ElementwiseOp;
  /** sumsq_final only: add to result[offset] instead of overwriting it. */
  accumulate?: boolean;
}

/** The casts need shader-f16 (their half type is f16); every other op is f32 only. */
export function elementwiseSpec(o: ElementwiseOptions): KernelSpec {
  const isCast = CASTS.includes(o.op);
  if (o.accumulate && o.op !== 'sumsq_final') throw new KernelError(`elementwise.${o.op}: accumulate is for sumsq_final only`);
  return {
    label: `elementwise.${o.op}${isCast ? '.f16' : ''}${o.accumulate ? '.acc' : ''}`,
    file: 'src/shaders/elementwise.wgsl',
    wgsl: renderWgsl('elementwise', source, { ELEM: isCast ? 'f16' : 'f32' }),
    entryPoint: o.op,
    constants: { ACCUMULATE: o.accumulate ? 1 : 0 },
    bindings: BINDINGS[o.op],
    paramsBytes: 16,
  };
}

export function allElementwiseSpecs(hasF16: boolean): KernelSpec[] {
  const specs: KernelSpec[] = [];
  for (const op of ELEMENTWISE_OPS) {
    if (CASTS.includes(op) && !hasF16) continue;
    specs.push(elementwiseSpec({ op }));
    if (op === 'sumsq_final') specs.push(elementwiseSpec({ op, accumulate: true }));
  }
  return specs;
}

function params(n: number, alpha = 1, offset = 0): ArrayBuffer {
  return packParams([
    ['u32', n],
    ['f32', alpha],
    ['u32', offset],
    ['u32', 0],
  ]);
}

function recordElementwise(
  rec: Recorder,
  op: ElementwiseOp,
  n: number,
  buffers: GPUBuffer[],
  alpha: number,
  fold: FoldOptions,
): void {
  rec.dispatch(elementwiseSpec({ op }), buffers, params(n, alpha), foldWorkgroups(Math.ceil(n / WG), fold.maxWorkgroupsPerDim), costOf(op, n));
}

/** out = a + b over n elements. */
export function recordAdd(rec: Recorder, n: number, b: { a: GPUBuffer; b: GPUBuffer; out: GPUBuffer }, fold: FoldOptions = {}): void {
  recordElementwise(rec, 'add', n, [b.a, b.b, b.out], 1, fold);
}

/** acc += b over n elements. */
export function recordAddInPlace(rec: Recorder, n: number, b: { acc: GPUBuffer; b: GPUBuffer }, fold: FoldOptions = {}): void {
  recordElementwise(rec, 'add_inplace', n, [b.b, b.acc], 1, fold);
}

/** out = alpha·x, or x *= alpha in place when `out` is omitted. */
export function recordScale(
  rec: Recorder,
  n: number,
  b: { x: GPUBuffer; out?: GPUBuffer },
  alpha: number,
  fold: FoldOptions = {},
): void {
  if (b.out) recordElementwise(rec, 'scale', n, [b.x, b.out], alpha, fold);
  else recordElementwise(rec, 'scale_inplace', n, [b.x], alpha, fold);
}

/** out = x over n f32 elements. */
export function recordCopy(rec: Recorder, n: number, b: { x: GPUBuffer; out: GPUBuffer }, fold: FoldOptions = {}): void {
  recordElementwise(rec, 'copy', n, [b.x, b.out], 1, fold);
}

/** f32 → f16 (`to: 'f16'`, saturating at ±65504) or f16 → f32 (`to: 'f32'`) over n elements. Needs shader-f16.
 *  An f16 buffer holds ⌈n/2⌉·4 bytes at least. */
export function recordCast(rec: Recorder, n: number, b: { x: GPUBuffer; out: GPUBuffer }, to: 'f16' | 'f32', fold: FoldOptions = {}): void {
  recordElementwise(rec, to === 'f16' ? 'to_half' : 'to_f32', n, [b.x, b.out], 1, fold);
}

/** How many f32 partial sums recordSumOfSquares needs in its `partials` scratch buffer for n elements. */
export function sumOfSquaresPartialCount(n: number): number {
  return Math.max(1, Math.ceil(n / SUMSQ_CHUNK));
}

export interface SumOfSquaresBuffers {
  x: GPUBuffer;
  /** Scratch, at least sumOfSquaresPartialCount(n) f32. */
  partials: GPUBuffer;
  /** Receives Σx² at `offset`. */
  result: GPUBuffer;
}

/** result[offset] = Σ x² (+ result[offset] when accumulate), in two passes: per-workgroup partials, then one
 *  workgroup sums them. n = 0 writes 0 (or leaves the accumulated value). */
export function recordSumOfSquares(
  rec: Recorder,
  n: number,
  b: SumOfSquaresBuffers,
  options: { offset?: number; accumulate?: boolean } & FoldOptions = {},
): void {
  const count = Math.ceil(n / SUMSQ_CHUNK);
  rec.dispatch(elementwiseSpec({ op: 'sumsq_partial' }), [b.x, b.partials], params(n), foldWorkgroups(count, options.maxWorkgroupsPerDim), costOf('sumsq_partial', n));
  rec.dispatch(
    elementwiseSpec({ op: 'sumsq_final', accumulate: options.accumulate }),
    [b.partials, b.result],
    params(count, 1, options.offset ?? 0),
    [1, 1, 1],
    costOf('sumsq_final', count),
  );
}
