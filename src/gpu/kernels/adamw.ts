// Host side of adamw.wgsl: the flat layout of trainable tensors, the kernel specs and one optimizer step as three
// dispatches (gradient Σg² per workgroup, final norm and clip coefficient, update). See the .wgsl header.
import source from '../../shaders/adamw.wgsl?raw';
import { packParams, type KernelSpec, type Recorder } from '../kernel.ts';
import { biasCorrections, type AdamwHyper, type AdamwSegment } from '../ref/adamw.ref.ts';

/** Segment offsets are multiples of this many f32 (256 bytes, WebGPU's default minStorageBufferOffsetAlignment),
 *  so each tensor can be bound as a sub-range of the flat buffers. */
export const ADAMW_ALIGN_ELEMENTS = 64;

const WG = 256;
/** Most workgroups of the Σg² pass (so `finalize` sums at most this many partials). */
export const ADAMW_MAX_PARTIALS = 256;

export interface AdamwTensorSpec {
  name: string;
  length: number;
  /** Learning-rate multiplier (default 1). */
  lrScale?: number;
  /** Weight decay applies (default true). */
  decay?: boolean;
}

export interface AdamwLayout {
  segments: (AdamwSegment & { name: string })[];
  /** Length of each flat buffer (params, grads, m, v), in f32. */
  totalLength: number;
  /** The segment table as adamw.wgsl reads it: per segment [offset, length, lrScale bits, decay]. */
  table: Uint32Array;
}

/** Lays the trainable tensors out back to back in flat buffers, each starting at a 256-byte boundary. */
export function planAdamwLayout(tensors: readonly AdamwTensorSpec[], alignElements = ADAMW_ALIGN_ELEMENTS): AdamwLayout {
  const segments: AdamwLayout['segments'] = [];
  let offset = 0;
  for (const t of tensors) {
    if (!Number.isInteger(t.length) || t.length <= 0) throw new Error(`planAdamwLayout: ${t.name} has length ${t.length}`);
    const lrScale = t.lrScale ?? 1;
    if (!(lrScale >= 0)) throw new Error(`planAdamwLayout: ${t.name} has lrScale ${lrScale}, expected ≥ 0`);
    segments.push({ name: t.name, offset, length: t.length, lrScale, decay: t.decay ?? true });
    offset += Math.ceil(t.length / alignElements) * alignElements;
  }
  const table = new Uint32Array(Math.max(4, segments.length * 4));
  const bits = new Float32Array(1);
  const bitsU32 = new Uint32Array(bits.buffer);
  segments.forEach((s, i) => {
    bits[0] = s.lrScale;
    table.set([s.offset, s.length, bitsU32[0], s.decay ? 1 : 0], i * 4);
  });
  return { segments, totalLength: offset, table };
}

export type AdamwEntry = 'sumsq' | 'finalize' | 'update';

export function adamwSpec(entry: AdamwEntry): KernelSpec {
  return {
    label: `adamw.${entry}`,
    file: 'src/shaders/adamw.wgsl',
    wgsl: source,
    entryPoint: entry,
    constants: {},
    bindings: ['read_write', 'read', 'read_write', 'read_write', 'read', 'read_write', 'read_write'],
    paramsBytes: 64,
  };
}

export function allAdamwSpecs(): KernelSpec[] {
  return (['sumsq', 'finalize', 'update'] as const).map(adamwSpec);
}

export interface AdamwBuffers {
  /** (totalLength) f32 each. */
  params: GPUBuffer;
  grads: GPUBuffer;
  m: GPUBuffer;
  v: GPUBuffer;
  /** The layout's table, uploaded. */
  segments: GPUBuffer;
  /** (ADAMW_MAX_PARTIALS) f32 scratch. */
  partials: GPUBuffer;
  /** (ADAMW_STATUS_FLOATS) f32, the step's status (see adamw.wgsl): [gradient norm before clipping, clip coefficient,
   *  skipped, sticky not-finite, loss sum, token count, 0, 0]. Zero it once before the first step. */
  norm: GPUBuffer;
}

/** Floats of AdamW's status buffer (`norm`). */
export const ADAMW_STATUS_FLOATS = 8;
/** Where the loss sum and count go in the status buffer (copied in by the trainer before the step). */
export const ADAMW_STATUS_LOSS_OFFSET_BYTES = 16;

/** How many workgroups the Σg² pass uses for `total` elements. */
export function adamwPartials(total: number): number {
  return Math.max(1, Math.min(ADAMW_MAX_PARTIALS, Math.ceil(total / WG)));
}

/** Records one AdamW step (step ≥ 1) over every segment of `layout`: three dispatches, no read-back. */
export function recordAdamwStep(
  rec: Recorder,
  layout: AdamwLayout,
  buffers: AdamwBuffers,
  hyper: AdamwHyper,
  step: number,
  /** Workgroups per dispatch dimension before `update` folds into 2-D (the device's limit; tests lower it). */
  maxGroupsPerDim = 65535,
): void {
  const total = layout.totalLength;
  const numPartials = adamwPartials(total);
  const groups = Math.ceil(total / WG);
  const gx = Math.max(1, Math.min(groups, maxGroupsPerDim));
  const gy = Math.ceil(groups / gx);
  const { bc1, bc2Sqrt } = biasCorrections(hyper, step);
  const params = packParams([
    ['u32', total],
    ['u32', layout.segments.length],
    ['u32', numPartials],
    ['u32', gx * WG],
    ['f32', hyper.lr],
    ['f32', hyper.beta1],
    ['f32', hyper.beta2],
    ['f32', hyper.eps],
    ['f32', hyper.weightDecay],
    ['f32', bc1],
    ['f32', bc2Sqrt],
    ['f32', hyper.maxGradNorm],
    ['f32', 1 - hyper.beta1],
    ['f32', 1 - hyper.beta2],
    ['u32', 0],
    ['u32', 0],
  ]);
  const b = buffers;
  const bindings = [b.params, b.grads, b.m, b.v, b.segments, b.partials, b.norm];
  // Σg² reads G once; the update reads G and reads and writes P, M and V (≈ 16 FLOPs an element).
  rec.dispatch(adamwSpec('sumsq'), bindings, params, [numPartials, 1, 1], { flops: 2 * total, bytes: 4 * total });
  rec.dispatch(adamwSpec('finalize'), bindings, params, [1, 1, 1], { flops: numPartials, bytes: 4 * numPartials });
  rec.dispatch(adamwSpec('update'), bindings, params, [gx, gy, 1], { flops: 16 * total, bytes: 28 * total });
}
