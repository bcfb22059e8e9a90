// Host side of norm.wgsl: LayerNorm and RMSNorm forward, backward for dx, and the optional weight (and bias) gradient
// as a separate column-sum kernel. See the .wgsl header for the contract.
import source from '../../shaders/norm.wgsl?raw';
import { KernelError, packParams, type BufferRef, type DispatchCost, type KernelSpec, type Recorder } from '../kernel.ts';
import type { NormKind, NormShape } from '../ref/norm.ref.ts';
import { renderWgsl } from '../wgsl.ts';
import { foldWorkgroups, type FoldOptions } from './elementwise.ts';

export const NORM_KINDS = ['layernorm', 'rmsnorm'] as const satisfies readonly NormKind[];
export const NORM_ENTRIES = ['forward', 'backward_dx', 'backward_dweight'] as const;
export type NormEntry = (typeof NORM_ENTRIES)[number];

/** Columns per workgroup of backward_dweight. */
const DWEIGHT_COLS = 32;

export interface NormOptions {
  entry: NormEntry;
  kind: NormKind;
  /** forward: add the bias; backward_dweight: write dbias. LayerNorm only. */
  hasBias?: boolean;
  /** backward_dx: dx += …; backward_dweight: dweight (and dbias) += …. */
  accumulate?: boolean;
}

export function normSpec(o: NormOptions): KernelSpec {
  if (o.hasBias && o.kind === 'rmsnorm') throw new KernelError(`norm.rmsnorm.${o.entry}: RMSNorm has no bias`);
  if (o.hasBias && o.entry === 'backward_dx') throw new KernelError('norm.backward_dx: the bias does not enter dx');
  if (o.accumulate && o.entry === 'forward') throw new KernelError('norm.forward: accumulate is for the backward entries');
  const flags = [o.hasBias && 'bias', o.accumulate && 'acc'].filter(Boolean);
  return {
    label: `norm.${o.kind}.${o.entry}${flags.length ? '.' + flags.join('.') : ''}`,
    file: 'src/shaders/norm.wgsl',
    wgsl: renderWgsl('norm', source),
    entryPoint: o.entry,
    constants: {
      RMS: o.kind === 'rmsnorm' ? 1 : 0,
      HAS_BIAS: o.hasBias ? 1 : 0,
      ACCUMULATE: o.accumulate ? 1 : 0,
    },
    bindings:
      o.entry === 'forward'
        ? ['read', 'read', 'read', 'read_write', 'read_write'] // x, weight, bias, y, stats
        : o.entry === 'backward_dx'
          ? ['read', 'read', 'read', 'read', 'read_write'] // x, weight, dy, stats, dx
          : ['read', 'read', 'read', 'read_write', 'read_write'], // x, dy, stats, dweight, dbias
    paramsBytes: 16,
  };
}

export function allNormSpecs(_hasF16: boolean): KernelSpec[] {
  const specs: KernelSpec[] = [];
  for (const kind of NORM_KINDS) {
    const biases = kind === 'layernorm' ? [false, true] : [false];
    for (const hasBias of biases) specs.push(normSpec({ entry: 'forward', kind, hasBias }));
    for (const accumulate of [false, true]) {
      specs.push(normSpec({ entry: 'backward_dx', kind, accumulate }));
      for (const hasBias of biases) specs.push(normSpec({ entry: 'backward_dweight', kind, hasBias, accumulate }));
    }
  }
  return specs;
}

/** f32 elements of the per-row stats buffer: (rows, 2) = (mean, rstd). */
export function normStatsLength(rows: number): number {
  return 2 * rows;
}

function params({ rows, C, eps }: NormShape): ArrayBuffer {
  return packParams([
    ['u32', rows],
    ['u32', C],
    ['f32', eps],
    ['u32', 0],
  ]);
}

/** Approximate FLOPs per element (LayerNorm: mean, variance, normalize, scale, shift) and the bytes of x, dy, y/dx
 *  (read once, written once), the weights and the row stats. */
function normCost(entry: NormEntry, { rows, C }: NormShape, o: { kind: NormKind; hasBias?: boolean; accumulate?: boolean }): DispatchCost {
  const n = rows * C;
  const stats = rows * 8;
  const weights = C * 4 * (o.hasBias ? 2 : 1);
  if (entry === 'forward') return { flops: n * (o.kind === 'rmsnorm' ? 5 : 7), bytes: n * 8 + weights + stats };
  if (entry === 'backward_dx') return { flops: n * 10, bytes: n * (o.accumulate ? 16 : 12) + C * 4 + stats };
  return { flops: n * (o.hasBias ? 4 : 3), bytes: n * 8 + stats + weights * (o.accumulate ? 2 : 1) };
}

export interface NormForwardBuffers {
  x: GPUBuffer; // (rows, C)
  weight: GPUBuffer; // (C)
  /** (C); LayerNorm only, omit for none. */
  bias?: GPUBuffer;
  y: GPUBuffer; // (rows, C)
  /** (rows, 2) = (mean, rstd), kept for backward. */
  stats: GPUBuffer;
}

/** y = norm(x)·w (+ b) per row; writes the row stats that backward reads. */
export function recordNormForward(
  rec: Recorder,
  shape: NormShape,
  b: NormForwardBuffers,
  options: { kind: NormKind } & FoldOptions,
): void {
  const spec = normSpec({ entry: 'forward', kind: options.kind, hasBias: !!b.bias });
  rec.dispatch(
    spec,
    [b.x, b.weight, b.bias ?? rec.unused, b.y, b.stats],
    params(shape),
    foldWorkgroups(shape.rows, options.maxWorkgroupsPerDim),
    normCost('forward', shape, { kind: options.kind, hasBias: !!b.bias }),
  );
}

export interface NormBackwardBuffers {
  x: GPUBuffer; // (rows, C), the forward's input
  weight: GPUBuffer; // (C)
  dy: GPUBuffer; // (rows, C)
  stats: GPUBuffer; // (rows, 2), from the forward
  dx: GPUBuffer; // (rows, C)
  /** (C); omit when the norm weights are frozen (LoRA) to skip the weight-gradient kernel. */
  dweight?: BufferRef;
  /** (C); LayerNorm's bias gradient, computed with dweight. */
  dbias?: BufferRef;
}

export interface NormBackwardOptions extends FoldOptions {
  kind: NormKind;
  /** dx += … (the residual stream's gradient from the other branch is already there). */
  accumulate?: boolean;
  /** dweight (and dbias) += … (gradient accumulation over micro-batches). */
  accumulateWeightGrad?: boolean;
}

/** dx, and dweight/dbias when their buffers are given. */
export function recordNormBackward(rec: Recorder, shape: NormShape, b: NormBackwardBuffers, options: NormBackwardOptions): void {
  const { kind } = options;
  const pb = params(shape);
  rec.dispatch(
    normSpec({ entry: 'backward_dx', kind, accumulate: options.accumulate }),
    [b.x, b.weight, b.dy, b.stats, b.dx],
    pb,
    foldWorkgroups(shape.rows, options.maxWorkgroupsPerDim),
    normCost('backward_dx', shape, { kind, accumulate: options.accumulate }),
  );
  if (b.dbias && !b.dweight) throw new KernelError('norm backward: dbias is computed together with dweight; pass both');
  if (!b.dweight) return;
  const spec = normSpec({ entry: 'backward_dweight', kind, hasBias: !!b.dbias, accumulate: options.accumulateWeightGrad });
  rec.dispatch(
    spec,
    [b.x, b.dy, b.stats, b.dweight, b.dbias ?? rec.unused],
    pb,
    [Math.ceil(shape.C / DWEIGHT_COLS), 1, 1],
    normCost('backward_dweight', shape, { kind, hasBias: !!b.dbias, accumulate: options.accumulateWeightGrad }),
  );
}
