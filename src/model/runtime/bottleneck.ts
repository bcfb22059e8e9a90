// A bottleneck adapter (Houlsby et al. 2019; Pfeiffer et al. 2020) on one frozen linear layer's OUTPUT, inside the
// residual branch the layer feeds (src/train/methods/bottleneck/config.ts):
//
//   h = x·Wᵀ + b                      the frozen layer (dense or NF4), kept for the backward   (T, out)
//   z = h·Dᵀ + b_d                    down-projection, kept                                     (T, m)
//   a = act(z)                        relu | gelu_new | silu, kept                              (T, m)
//   y = h + a·Uᵀ + b_u                up-projection; y (+)= when the caller accumulates         (T, out)
//
// D (m, out), b_d (m), U (out, m), b_u (out), f32: ranges of the method's flat trainable buffers. The backward, from
// dy (T, out), with the matmul and activation kernels only (bias sums as onesᵀ·dy, as full fine-tuning's bias):
//
//   dU (+)= dyᵀ·a     db_u (+)= onesᵀ·dy     da = dy·U     dz = da ⊙ act'(z)
//   dD (+)= dzᵀ·h     db_d (+)= onesᵀ·dz     dh = dy + dz·D     dx (+)= dh·W (the base layer's own dx)
//
// Linear.bottleneck is the hook (src/model/runtime/linear.ts dispatches here); the float64 reference is
// src/gpu/ref/bottleneck.ref.ts and the layer test bottleneck-linear.gpu.test.ts.
import type { Engine } from '../../gpu/engine.ts';
import type { BufferRef, Recorder } from '../../gpu/kernel.ts';
import { recordActivation, recordActivationBackward, type UnaryActivation } from '../../gpu/kernels/activation.ts';
import { recordAddInPlace } from '../../gpu/kernels/elementwise.ts';
import { recordMatmul } from '../../gpu/kernels/matmul.ts';
import type { Workspace } from '../../gpu/workspace.ts';
import type { KernelChoice, Linear, LinearBackwardOptions } from './linear.ts';

export interface BottleneckAdapter {
  /** m, the bottleneck size. */
  size: number;
  activation: UnaryActivation;
  D: BufferRef; // (m, out)
  bd: BufferRef; // (m)
  U: BufferRef; // (out, m)
  bu: BufferRef; // (out)
  dD: BufferRef;
  dbd: BufferRef;
  dU: BufferRef;
  dbu: BufferRef;
}

/** What the forward keeps for the backward (the caller releases them as it does LoRA's h, unless from a workspace). */
export interface BottleneckSaved {
  h: GPUBuffer; // (T, out)
  z: GPUBuffer; // (T, m)
  a: GPUBuffer; // (T, m)
}

/** What linear.ts lends the hook: its base product, its base dx, and its per-layer buffers. */
export interface LinearOps {
  base(x: GPUBuffer, y: GPUBuffer, accumulate: boolean): void;
  baseDx(dy: GPUBuffer, dx: GPUBuffer, accumulate: boolean): void;
  /** A (rows × floatsPerRow) f32 buffer for `role` (see linear.ts layerBuffer): released after the submission when
   *  `transient`, kept for the caller otherwise. */
  buffer(role: { own: string; shared?: string }, floatsPerRow: number, transient: boolean): GPUBuffer;
}

export function recordBottleneckForward(
  rec: Recorder,
  k: KernelChoice,
  layer: Linear,
  bn: BottleneckAdapter,
  T: number,
  x: GPUBuffer,
  y: GPUBuffer,
  accumulate: boolean,
  ops: LinearOps,
): BottleneckSaved {
  const out = layer.outFeatures;
  const m = bn.size;
  const h = ops.buffer({ own: `${layer.path}.bottleneck.h` }, out, false);
  const z = ops.buffer({ own: `${layer.path}.bottleneck.z` }, m, false);
  const a = ops.buffer({ own: `${layer.path}.bottleneck.a` }, m, false);
  ops.base(x, h, false);
  recordMatmul(rec, { M: T, N: m, K: out, transB: true }, { A: h, B: bn.D, C: z, bias: bn.bd }, { variant: k.matmul });
  recordActivation(rec, bn.activation, T * m, { x: z, y: a });
  if (accumulate) recordAddInPlace(rec, T * out, { acc: y, b: h });
  else rec.copy(h, 0, y, 0, T * out * 4);
  recordMatmul(rec, { M: T, N: out, K: m, transB: true }, { A: a, B: bn.U, C: y, bias: bn.bu }, { variant: k.matmul, accumulate: true });
  return { h, z, a };
}

export function recordBottleneckBackward(
  rec: Recorder,
  k: KernelChoice,
  layer: Linear,
  bn: BottleneckAdapter,
  T: number,
  saved: BottleneckSaved | undefined,
  dy: GPUBuffer,
  dx: GPUBuffer | undefined,
  o: LinearBackwardOptions,
  ops: LinearOps,
): void {
  if (!saved) throw new Error(`${layer.path}: the bottleneck adapter's backward needs the forward's saved h, z and a`);
  const out = layer.outFeatures;
  const m = bn.size;
  const acc = o.accumulateGrads;
  const variant = k.matmul;
  // recordBackward passes its one ones vector; a direct caller of the layer (the layer tests) gets its own here.
  let ones = o.ones;
  if (!ones) {
    ones = ops.buffer({ own: `${layer.path}.bottleneck.ones`, shared: 'bottleneck.ones' }, 1, true);
    rec.write(ones, new Float32Array(ones.size / 4).fill(1));
  }
  // The up-projection.
  recordMatmul(rec, { M: out, N: m, K: T, transA: true }, { A: dy, B: saved.a, C: bn.dU }, { variant, accumulate: acc });
  recordMatmul(rec, { M: 1, N: out, K: T }, { A: ones, B: dy, C: bn.dbu }, { variant, accumulate: acc });
  // Through the activation.
  const da = ops.buffer({ own: `${layer.path}.bottleneck.da`, shared: 'bottleneck.da' }, m, true);
  const dz = ops.buffer({ own: `${layer.path}.bottleneck.dz`, shared: 'bottleneck.dz' }, m, true);
  recordMatmul(rec, { M: T, N: m, K: out }, { A: dy, B: bn.U, C: da }, { variant });
  recordActivationBackward(rec, bn.activation, T * m, { x: saved.z, dy: da, dx: dz });
  // The down-projection.
  recordMatmul(rec, { M: m, N: out, K: T, transA: true }, { A: dz, B: saved.h, C: bn.dD }, { variant, accumulate: acc });
  recordMatmul(rec, { M: 1, N: m, K: T }, { A: ones, B: dz, C: bn.dbd }, { variant, accumulate: acc });
  if (!dx) return;
  // dh = dy (the skip) + dz·D, then the frozen layer's dx.
  const dh = ops.buffer({ own: `${layer.path}.bottleneck.dh`, shared: 'bottleneck.dh' }, out, true);
  rec.copy(dy, 0, dh, 0, T * out * 4);
  recordMatmul(rec, { M: T, N: out, K: m }, { A: dz, B: bn.D, C: dh }, { variant, accumulate: true });
  ops.baseDx(dh, dx, o.accumulateDx);
}
