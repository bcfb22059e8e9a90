// One frozen linear layer of the model on the GPU, optionally wrapped by LoRA: y = x·Wᵀ + b + s·B(A(drop(x))).
// The base weight is dense (f32/f16; nn.Linear's [out, in] or GPT-2's Conv1D [in, out]) or NF4 (always [out, in],
// Conv1D transposed at quantization, as transformers does before bitsandbytes). Only LoRA's A and B get gradients.
import type { Engine } from '../../gpu/engine.ts';
import type { BufferRef, Recorder } from '../../gpu/kernel.ts';
import { recordLoraBackward, recordLoraForward, recordLoraPathBackward, recordLoraPathForward, type LoraVariant } from '../../gpu/kernels/lora.ts';
import { recordMatmul, type MatmulVariant } from '../../gpu/kernels/matmul.ts';
import { recordMatmulNf4, type MatmulNf4Variant } from '../../gpu/kernels/matmul_nf4.ts';
import type { Nf4Weight } from '../../gpu/kernels/nf4.ts';
import type { ElementType } from '../../gpu/wgsl.ts';

export type BaseWeight =
  | { kind: 'dense'; buffer: GPUBuffer; elem: ElementType; conv1d: boolean }
  | { kind: 'nf4'; weight: Nf4Weight };

/** LoRA's trainable pair on one layer. A: [r, in], B: [out, r], f32; grads alike. */
export interface LoraPair {
  rank: number;
  scale: number;
  dropout: number;
  A: BufferRef;
  B: BufferRef;
  dA: BufferRef;
  dB: BufferRef;
  /** The dropout mask's seed for this layer; the trainer changes it every step, the backward reuses it. */
  seed: number;
}

export interface Linear {
  /** The module path PEFT uses, e.g. model.layers.0.self_attn.q_proj. */
  path: string;
  inFeatures: number;
  outFeatures: number;
  weight: BaseWeight;
  bias?: GPUBuffer;
  lora?: LoraPair;
}

/** Which kernel variants this engine uses (chosen once per adapter, see matmul-tuning.ts). */
export interface KernelChoice {
  matmul: MatmulVariant;
  lora: LoraVariant;
  nf4: MatmulNf4Variant;
}

export function kernelChoiceFor(matmul: MatmulVariant): KernelChoice {
  const tiled = matmul !== 'naive';
  // NF4 has one register-blocked variant (no vec4 twin: its weight is decoded, not loaded as vec4), so both blocked
  // matmul variants map to it.
  const nf4: MatmulNf4Variant = matmul === 'blocked' || matmul === 'blocked4' ? 'blocked' : tiled ? 'tiled' : 'naive';
  return { matmul, lora: tiled ? 'tiled' : 'naive', nf4 };
}

/** Scratch a layer's forward keeps for its backward: h = drop(x)·Aᵀ (T, r). */
export interface LinearSaved {
  h?: GPUBuffer;
}

/** y = layer(x) for T rows (overwrites y, or adds into it when `accumulate`). */
export function recordLinearForward(
  rec: Recorder,
  e: Engine,
  k: KernelChoice,
  layer: Linear,
  T: number,
  x: GPUBuffer,
  y: GPUBuffer,
  accumulate = false,
): LinearSaved {
  const { weight, lora } = layer;
  if (lora && weight.kind === 'dense') {
    const h = e.buffers.acquire(T * lora.rank * 4, undefined, `${layer.path}.h`);
    recordLoraForward(
      rec,
      { T, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, r: lora.rank, conv1d: weight.conv1d },
      { x, W: weight.buffer, bias: layer.bias, A: lora.A, B: lora.B, h, y },
      { variant: k.lora, elemW: weight.elem, scale: lora.scale, dropout: lora.dropout, seed: lora.seed, accumulate },
    );
    return { h };
  }
  recordBase(rec, k, layer, T, x, y, accumulate);
  if (!lora) return {};
  // NF4 base (QLoRA): the low-rank path, dropout mask included, after the fused-dequantization base pass.
  const h = e.buffers.acquire(T * lora.rank * 4, undefined, `${layer.path}.h`);
  recordLoraPathForward(
    rec,
    { T, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, r: lora.rank },
    { x, A: lora.A, B: lora.B, h, y },
    { scale: lora.scale, dropout: lora.dropout, seed: lora.seed },
  );
  return { h };
}

/** y = x·Wᵀ + b with the frozen base alone. */
function recordBase(rec: Recorder, k: KernelChoice, layer: Linear, T: number, x: GPUBuffer, y: GPUBuffer, accumulate: boolean): void {
  const { weight } = layer;
  if (weight.kind === 'nf4') {
    recordMatmulNf4(rec, { M: T, transB: true }, { A: x, W: weight.weight, C: y, bias: layer.bias }, { variant: k.nf4, accumulate });
  } else {
    recordMatmul(
      rec,
      { M: T, N: layer.outFeatures, K: layer.inFeatures, transB: !weight.conv1d },
      { A: x, B: weight.buffer, C: y, bias: layer.bias },
      { variant: k.matmul, elemB: weight.elem, accumulate },
    );
  }
}

export interface LinearBackwardOptions {
  /** Add into dx (the residual stream, or a sum over q/k/v) instead of overwriting it. */
  accumulateDx: boolean;
  /** Add into dA/dB (micro-batches of one optimizer step). */
  accumulateGrads: boolean;
}

/** dx = dy·W (+ the LoRA path) and, with LoRA, dA and dB. `dx` omitted: no input gradient wanted. */
export function recordLinearBackward(
  rec: Recorder,
  e: Engine,
  k: KernelChoice,
  layer: Linear,
  T: number,
  x: GPUBuffer,
  saved: LinearSaved,
  dy: GPUBuffer,
  dx: GPUBuffer | undefined,
  o: LinearBackwardOptions,
): void {
  const { weight, lora } = layer;
  if (lora && weight.kind === 'dense') {
    const g = e.buffers.acquire(T * lora.rank * 4, undefined, `${layer.path}.g`);
    recordLoraBackward(
      rec,
      { T, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, r: lora.rank, conv1d: weight.conv1d },
      { x, W: weight.buffer, A: lora.A, B: lora.B, h: saved.h!, dy, g, dx, dA: lora.dA, dB: lora.dB },
      {
        variant: k.lora,
        elemW: weight.elem,
        scale: lora.scale,
        dropout: lora.dropout,
        seed: lora.seed,
        accumulateDx: o.accumulateDx,
        accumulateGrads: o.accumulateGrads,
      },
    );
    rec.afterSubmit(() => e.buffers.release(g));
    return;
  }
  if (dx) {
    if (weight.kind === 'nf4') {
      recordMatmulNf4(rec, { M: T, transB: false }, { A: dy, W: weight.weight, C: dx }, { variant: k.nf4, accumulate: o.accumulateDx });
    } else {
      recordMatmul(
        rec,
        { M: T, N: layer.inFeatures, K: layer.outFeatures, transB: weight.conv1d },
        { A: dy, B: weight.buffer, C: dx },
        { variant: k.matmul, elemB: weight.elem, accumulate: o.accumulateDx },
      );
    }
  }
  if (!lora) return;
  // NF4 base (QLoRA), the LoRA path beside the base dx: dB; g = dy·B; dx += s·(g·A)∘mask; dA = s·gᵀ·drop(x).
  const g = e.buffers.acquire(T * lora.rank * 4, undefined, `${layer.path}.g`);
  const scratch = dx && lora.dropout > 0 ? e.buffers.acquire(T * layer.inFeatures * 4, undefined, `${layer.path}.scratch`) : undefined;
  recordLoraPathBackward(
    rec,
    { T, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, r: lora.rank },
    { x, A: lora.A, B: lora.B, h: saved.h!, dy, g, dx, dA: lora.dA, dB: lora.dB, scratch },
    { scale: lora.scale, dropout: lora.dropout, seed: lora.seed, accumulateGrads: o.accumulateGrads },
  );
  rec.afterSubmit(() => {
    e.buffers.release(g);
    if (scratch) e.buffers.release(scratch);
  });
}
