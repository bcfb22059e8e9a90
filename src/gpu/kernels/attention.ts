// Host side of attention.wgsl: causal self-attention (GQA, packed sequences) forward and backward, their specs and
// dispatches. See the .wgsl header for the contract.
import source from '../../shaders/attention.wgsl?raw';
import type { BindingAccess, DispatchCost, KernelSpec, Recorder, Workgroups } from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';
import { AttentionShapeError, prefixRows, type AttentionShape } from '../ref/attention.ref.ts';
import { foldWorkgroups } from './elementwise.ts';
import {
  attentionParams,
  flashAttentionCost,
  flashAttentionStatsBytes,
  recordFlashAttentionBackward,
  recordFlashAttentionForward,
} from './flash-attention.ts';

export const ATTENTION_PASSES = ['forward', 'backward_prep', 'backward_dq', 'backward_dkv'] as const;
export type AttentionPass = (typeof ATTENTION_PASSES)[number];

/** The shader keeps rows in private arrays of this length. */
export const ATTENTION_MAX_HEAD_DIM = 128;

const BINDINGS: Record<AttentionPass, BindingAccess[]> = {
  forward: ['read', 'read', 'read', 'read', 'read_write', 'read_write'], // Q K V seg → O L
  backward_prep: ['read', 'read', 'read', 'read_write'], // O dO L → stats
  backward_dq: ['read', 'read', 'read', 'read', 'read', 'read', 'read_write'], // Q K V seg dO stats → dQ
  backward_dkv: ['read', 'read', 'read', 'read', 'read', 'read', 'read_write', 'read_write'], // … → dK dV
};

export function attentionSpec(pass: AttentionPass): KernelSpec {
  return {
    label: `attention.${pass}`,
    file: 'src/shaders/attention.wgsl',
    wgsl: renderWgsl('attention', source),
    entryPoint: pass,
    constants: {},
    bindings: BINDINGS[pass],
    paramsBytes: 32,
  };
}

/** Every spec the runtime can instantiate, for the compile-everything test. */
export function allAttentionSpecs(): KernelSpec[] {
  return ATTENTION_PASSES.map(attentionSpec);
}

const WORKGROUP = 64;
/** One invocation per row, the flat index folded into x and y. */
export function rowGroups(rows: number): Workgroups {
  return foldWorkgroups(Math.ceil(rows / WORKGROUP));
}

function params(shape: AttentionShape): ArrayBuffer {
  return attentionParams(shape, ATTENTION_MAX_HEAD_DIM);
}

/** FLOPs and bytes of each pass: the flash kernel's count, without its per-query-head dK/dV partials. */
export function attentionCost(pass: AttentionPass, s: AttentionShape): DispatchCost {
  return flashAttentionCost(pass, s, false);
}

export interface AttentionForwardBuffers {
  /** (T, Hq, D) */
  Q: GPUBuffer;
  /** (T, Hkv, D) */
  K: GPUBuffer;
  /** (T, Hkv, D) */
  V: GPUBuffer;
  /** (T) u32 segment ids */
  seg: GPUBuffer;
  /** (T, Hq, D) output */
  O: GPUBuffer;
  /** (T, Hq) output: log-sum-exp per row (prefix rows included), kept for the backward pass */
  L: GPUBuffer;
  /** f32 (P, 2, Hkv, D): row p holds prefix key p then prefix value p, seen by every query of every segment ahead
   *  of its own keys (prefix tuning; no RoPE, no mask). Required iff shape.P > 0; the flash kernel only. */
  prefixKV?: GPUBuffer;
}

/** The row-wise kernel has no prefix rows. */
function refusePrefix(shape: AttentionShape): void {
  if (prefixRows(shape) > 0) {
    throw new AttentionShapeError(`attention (row-wise kernel): prefix rows (P = ${prefixRows(shape)}) are only supported by the flash kernel; use recordAttentionForward/Backward`);
  }
}

/** Records O = softmax(scale·QKᵀ + mask)·V and L into `rec`: the flash kernel (flash-attention.ts). */
export function recordAttentionForward(rec: Recorder, shape: AttentionShape, b: AttentionForwardBuffers): void {
  recordFlashAttentionForward(rec, shape, b);
}

/** The one-thread-per-row kernel of attention.wgsl (kept beside the flash kernel for comparison). */
export function recordAttentionForwardRowwise(rec: Recorder, shape: AttentionShape, b: AttentionForwardBuffers): void {
  refusePrefix(shape);
  rec.dispatch(attentionSpec('forward'), [b.Q, b.K, b.V, b.seg, b.O, b.L], params(shape), rowGroups(shape.T * shape.Hq), attentionCost('forward', shape));
}

export interface AttentionBackwardBuffers extends AttentionForwardBuffers {
  /** (T, Hq, D) upstream gradient */
  dO: GPUBuffer;
  /** f32 scratch of attentionStatsBytes(shape) bytes, overwritten */
  stats: GPUBuffer;
  /** (T, Hq, D) output, overwritten */
  dQ: GPUBuffer;
  /** (T, Hkv, D) outputs, overwritten */
  dK: GPUBuffer;
  dV: GPUBuffer;
  /** f32 (P, 2, Hkv, D) output, overwritten: d loss / d prefixKV summed over every query of every segment (and the
   *  query heads of each group). Required iff shape.P > 0. */
  dPrefixKV?: GPUBuffer;
}

/** Bytes of the backward's `stats` scratch: (T, Hq, 2) for both kernels, plus the flash kernel's per-query-head
 *  dK, dV partials when Hq > Hkv and its per-chunk dPrefixKV partials when P > 0 (flashAttentionStatsBytes). */
export function attentionStatsBytes(shape: AttentionShape): number {
  return Math.max(shape.T * shape.Hq * 2 * 4, flashAttentionStatsBytes(shape));
}

/** Records dQ, dK, dV (overwritten) from the forward's O and L: the flash kernel (flash-attention.ts). */
export function recordAttentionBackward(rec: Recorder, shape: AttentionShape, b: AttentionBackwardBuffers): void {
  recordFlashAttentionBackward(rec, shape, b);
}

/** The one-thread-per-row backward of attention.wgsl: three dispatches, prep → dq → dkv. */
export function recordAttentionBackwardRowwise(rec: Recorder, shape: AttentionShape, b: AttentionBackwardBuffers): void {
  refusePrefix(shape);
  const p = params(shape);
  const rows = rowGroups(shape.T * shape.Hq);
  rec.dispatch(attentionSpec('backward_prep'), [b.O, b.dO, b.L, b.stats], p, rows, attentionCost('backward_prep', shape));
  rec.dispatch(attentionSpec('backward_dq'), [b.Q, b.K, b.V, b.seg, b.dO, b.stats, b.dQ], p, rows, attentionCost('backward_dq', shape));
  rec.dispatch(
    attentionSpec('backward_dkv'),
    [b.Q, b.K, b.V, b.seg, b.dO, b.stats, b.dK, b.dV],
    p,
    rowGroups(shape.T * shape.Hkv),
    attentionCost('backward_dkv', shape),
  );
}
