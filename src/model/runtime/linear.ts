// One frozen linear layer of the model on the GPU, optionally wrapped by a method: LoRA, y = x·Wᵀ + b + s·B(A(drop(x)));
// or IA³, y = (x·Wᵀ + b) ⊙ l, or y = (x ⊙ l)·Wᵀ + b on a feed-forward layer; or DoRA, y = (m/‖W + s·BA‖) ⊙ (W + s·BA)·x + b
// (with dropout as PEFT computes it, see recordDoraForward); or a bottleneck adapter on the output, y = h + U·act(D·h + b_d)
// + b_u with h = x·Wᵀ + b (bottleneck.ts). The base weight is dense (f32/f16;
// nn.Linear's [out, in] or GPT-2's Conv1D [in, out]) or NF4 (always [out, in], Conv1D transposed at quantization, as
// transformers does before bitsandbytes). Only the method's tensors get gradients.
import type { Engine } from '../../gpu/engine.ts';
import type { BufferRef, Recorder } from '../../gpu/kernel.ts';
import {
  loraPartialsFloats,
  recordLoraBackward,
  recordLoraForward,
  recordLoraPathBackward,
  recordLoraPathForward,
  recordDropoutMaskedAdd,
  type LoraVariant,
} from '../../gpu/kernels/lora.ts';
import { recordColumnDot, recordScaleColumns } from '../../gpu/kernels/ia3.ts';
import { doraScalesBlock, recordDoraMagnitudeGrad, recordDoraOutput, recordDoraWeightNorm } from '../../gpu/kernels/dora.ts';
import { recordMatmul, type MatmulVariant } from '../../gpu/kernels/matmul.ts';
import { DEQUANT_FALLBACK, nf4DequantBytes, nf4VariantForRows, recordMatmulNf4, type MatmulNf4Variant } from '../../gpu/kernels/matmul_nf4.ts';
import { nf4VariantFor } from '../../gpu/kernels/matmul-tuning.ts';
import type { Nf4Weight } from '../../gpu/kernels/nf4.ts';
import type { ElementType } from '../../gpu/wgsl.ts';
import type { Workspace } from '../../gpu/workspace.ts';
import { recordBottleneckBackward, recordBottleneckForward, type BottleneckAdapter, type BottleneckSaved, type LinearOps } from './bottleneck.ts';

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

/** IA³'s learned vector on one layer (PEFT's ia3_l), f32; its gradient alike. */
export interface Ia3Vector {
  /** A feed-forward layer scales its input (l has inFeatures values); any other its output, bias included
   *  (outFeatures values). */
  feedforward: boolean;
  l: BufferRef;
  dl: BufferRef;
}

/** DoRA on one layer (PEFT's use_dora): LoRA's pair plus the magnitude m (out) f32 and its gradient, and `scales`
 *  (3·doraScalesStride(out) f32, see dora.wgsl): [n | c | c − 1], n = ‖W + s·B·A‖ per output row recomputed by every
 *  forward and never differentiated (PEFT detaches it), c = m / n. */
export interface DoraWeights extends LoraPair {
  /** A range of a flat buffer (the trainable params) or a buffer of its own. */
  m: GPUBufferBinding;
  dm: BufferRef;
  scales: GPUBuffer;
  /** m is still to be set to ‖W + s·B·A‖ (PEFT's initialisation): the next recorded forward does it first, in order
   *  with everything after it, and clears this. */
  initMagnitude?: boolean;
  /** A, B and m never change (an imported adapter for eval and generation): the norm is computed by the first
   *  recorded forward and kept (PEFT's DoRA caching in eval mode), instead of once per forward (per generated token). */
  frozen?: boolean;
  /** `frozen` only: the scales are written. */
  scalesReady?: boolean;
}

export interface Linear {
  /** The module path PEFT uses, e.g. model.layers.0.self_attn.q_proj. */
  path: string;
  inFeatures: number;
  outFeatures: number;
  weight: BaseWeight;
  bias?: GPUBuffer;
  /** At most one method wraps a layer. */
  lora?: LoraPair;
  /** Full fine-tuning: the layer's own weight (and bias) train; their gradients go here (f32, the weight's stored
   *  layout: [out, in], or [in, out] for Conv1D). */
  grad?: LinearGrad;
  ia3?: Ia3Vector;
  dora?: DoraWeights;
  /** Houlsby / Pfeiffer adapters (methods/bottleneck): a bottleneck MLP on the layer's output (bottleneck.ts). */
  bottleneck?: BottleneckAdapter;
}

/** Refuses a layer some method already wraps (at most one does, see Linear): every method's attach checks each
 *  target with this before it allocates or changes anything, so a refusal leaves the model as it was. `fail` makes
 *  the error (a method's own type, e.g. full fine-tuning's). */
export function assertUnwrapped(linear: Linear, path: string, fail: (message: string) => Error = (m) => new Error(m)): void {
  if (linear.lora || linear.ia3 || linear.dora || linear.bottleneck || linear.grad) throw fail(`${path} is already wrapped by another adapter`);
}

/** Full fine-tuning's gradients of one dense layer: ranges of the flat trainable grads. */
export interface LinearGrad {
  dW: BufferRef;
  db?: BufferRef;
}

/** How a dense layer with LoRA runs: one of lora.wgsl's fused passes, or `unfused` — the chosen base matmul
 *  followed by the low-rank path (the composition QLoRA uses beside NF4). */
export type LoraRoute = LoraVariant | 'unfused';

/** Which kernel variants this engine uses (chosen once per adapter, see matmul-tuning.ts). */
export interface KernelChoice {
  matmul: MatmulVariant;
  lora: LoraRoute;
  nf4: MatmulNf4Variant;
}

export function kernelChoiceFor(matmul: MatmulVariant): KernelChoice {
  const blocked = matmul === 'blocked' || matmul === 'blocked4';
  const nf4 = nf4VariantFor(matmul);
  // The fused LoRA kernel exists with 8×8 and 16×16 tiles only: where a register-blocked matmul was chosen (on a GPU
  // it is several times faster than 16×16 tiles), the base product runs on it and the rank-r terms beside it.
  const lora: LoraRoute = blocked ? 'unfused' : matmul === 'tiled' ? 'tiled' : 'naive';
  return { matmul, lora, nf4 };
}

/** Scratch a layer's forward keeps for its backward: LoRA's h = drop(x)·Aᵀ (T, r); IA³'s unscaled output x·Wᵀ + b
 *  (T, out) on a layer whose output it scales. */
export interface LinearSaved {
  h?: GPUBuffer;
  ia3Base?: GPUBuffer;
  /** DoRA's zl = W·drop(x) + s·B·A·drop(x) (T, out), no bias: the magnitude's gradient is Σ_t dy ⊙ zl / n. */
  doraZl?: GPUBuffer;
  /** A bottleneck adapter's h, z and a (released by the caller as h is). */
  bottleneck?: BottleneckSaved;
}

/**
 * A buffer of `bytes(rows)` for one layer's `role`: from the workspace when given (the same buffer every step, sized
 * for the run's reserved rows, never released; roles that live only inside one layer's backward are shared by every
 * layer, the GPU running them in turn), else from the pool for T rows — released after the submission when
 * `transient`, by the caller otherwise (the forward's saved h).
 */
function layerBuffer(
  rec: Recorder,
  e: Engine,
  ws: Workspace | undefined,
  role: { own: string; shared?: string },
  T: number,
  bytes: (rows: number) => number,
  transient: boolean,
): GPUBuffer {
  if (ws) return ws.get(role.shared ?? role.own, bytes(ws.rows(T)));
  const buffer = e.buffers.acquire(bytes(T), undefined, role.own);
  if (transient) rec.afterSubmit(() => e.buffers.release(buffer));
  return buffer;
}

/** LoRA's h or g (T, r). */
function rankRows(rec: Recorder, e: Engine, ws: Workspace | undefined, layer: Linear, T: number, name: 'h' | 'g'): GPUBuffer {
  const role = name === 'h' ? { own: `${layer.path}.h` } : { own: `${layer.path}.g`, shared: 'lora.g' };
  return layerBuffer(rec, e, ws, role, T, (rows) => rows * (layer.lora ?? layer.dora)!.rank * 4, name === 'g');
}

/** The split-k scratch of the rank-r products on a GPU (any variant but naive: CPU drivers keep the barrier-free
 *  one-thread-per-output kernels); undefined there. */
function rankPartials(rec: Recorder, e: Engine, k: KernelChoice, ws: Workspace | undefined, layer: Linear, T: number): GPUBuffer | undefined {
  const lora = layer.lora ?? layer.dora;
  if (k.matmul === 'naive' || !lora) return undefined;
  const bytes = (rows: number) => loraPartialsFloats({ T: rows, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, r: lora.rank }) * 4;
  return layerBuffer(rec, e, ws, { own: `${layer.path}.partials`, shared: 'lora.partials' }, T, bytes, true);
}

/** y = layer(x) for T rows (overwrites y, or adds into it when `accumulate`). With a workspace, the saved h is the
 *  workspace's (the caller must not release it). */
export function recordLinearForward(
  rec: Recorder,
  e: Engine,
  k: KernelChoice,
  layer: Linear,
  T: number,
  x: GPUBuffer,
  y: GPUBuffer,
  accumulate = false,
  ws?: Workspace,
): LinearSaved {
  if (layer.ia3) return recordIa3Forward(rec, e, k, layer, layer.ia3, T, x, y, accumulate, ws);
  if (layer.dora) return recordDoraForward(rec, e, k, layer, layer.dora, T, x, y, accumulate, ws);
  if (layer.bottleneck) return { bottleneck: recordBottleneckForward(rec, k, layer, layer.bottleneck, T, x, y, accumulate, linearOps(rec, e, k, layer, T, ws)) };
  const { weight, lora } = layer;
  const partials = lora ? rankPartials(rec, e, k, ws, layer, T) : undefined;
  if (lora && weight.kind === 'dense' && k.lora !== 'unfused') {
    const h = rankRows(rec, e, ws, layer, T, 'h');
    recordLoraForward(
      rec,
      { T, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, r: lora.rank, conv1d: weight.conv1d },
      { x, W: weight.buffer, bias: layer.bias, A: lora.A, B: lora.B, h, y },
      { variant: k.lora, elemW: weight.elem, scale: lora.scale, dropout: lora.dropout, seed: lora.seed, accumulate, partials },
    );
    return { h };
  }
  recordBase(rec, e, k, ws, layer, T, x, y, accumulate);
  if (!lora) return {};
  // The low-rank path, dropout mask included, after the base pass (NF4 with fused dequantization, or the chosen
  // dense matmul): y += s·drop(x)·Aᵀ·Bᵀ.
  const h = rankRows(rec, e, ws, layer, T, 'h');
  recordLoraPathForward(
    rec,
    { T, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, r: lora.rank },
    { x, A: lora.A, B: lora.B, h, y },
    { scale: lora.scale, dropout: lora.dropout, seed: lora.seed, variant: k.matmul, partials },
  );
  return { h };
}

/** IA³'s forward: the input scaled into a scratch before the base product (feed-forward), or the base product kept
 *  for the backward and scaled into y. */
function recordIa3Forward(
  rec: Recorder,
  e: Engine,
  k: KernelChoice,
  layer: Linear,
  ia3: Ia3Vector,
  T: number,
  x: GPUBuffer,
  y: GPUBuffer,
  accumulate: boolean,
  ws: Workspace | undefined,
): LinearSaved {
  if (ia3.feedforward) {
    const xs = layerBuffer(rec, e, ws, { own: `${layer.path}.ia3.x`, shared: 'ia3.x' }, T, (rows) => rows * layer.inFeatures * 4, true);
    recordScaleColumns(rec, { rows: T, n: layer.inFeatures }, { a: x, l: ia3.l, out: xs });
    recordBase(rec, e, k, ws, layer, T, xs, y, accumulate);
    return {};
  }
  const ia3Base = layerBuffer(rec, e, ws, { own: `${layer.path}.ia3.base` }, T, (rows) => rows * layer.outFeatures * 4, false);
  recordBase(rec, e, k, ws, layer, T, x, ia3Base, false);
  recordScaleColumns(rec, { rows: T, n: layer.outFeatures }, { a: ia3Base, l: ia3.l, out: y }, accumulate);
  return { ia3Base };
}

/** The norm's kernel for this layer: scales = [n | c | c − 1] from the current A, B and m (see DoraWeights). */
export function recordDoraScales(rec: Recorder, layer: Linear, dora: DoraWeights, m: BufferRef = dora.m): void {
  recordDoraWeightNorm(
    rec,
    { out: layer.outFeatures, in: layer.inFeatures, r: dora.rank, scale: dora.scale },
    { W: layer.weight, A: dora.A, B: dora.B, m, scales: dora.scales },
  );
}

/** DoRA's forward as PEFT computes it (src/gpu/ref/dora.ref.ts). Without dropout: zl = W·x + s·B·A·x, y = c ⊙ zl + b.
 *  With dropout (PEFT recomputes base_result = W·drop(x), without bias): y = W·x + b, then z = W·drop(x),
 *  zl = z + s·B·A·drop(x) and y += c ⊙ zl − z. zl is kept for the backward. */
function recordDoraForward(
  rec: Recorder,
  e: Engine,
  k: KernelChoice,
  layer: Linear,
  dora: DoraWeights,
  T: number,
  x: GPUBuffer,
  y: GPUBuffer,
  accumulate: boolean,
  ws: Workspace | undefined,
): LinearSaved {
  const out = layer.outFeatures;
  const shape = { T, inFeatures: layer.inFeatures, outFeatures: out, r: dora.rank };
  const unbiased = { ...layer, bias: undefined };
  if (dora.initMagnitude) {
    recordDoraScales(rec, layer, dora);
    rec.copy(dora.scales, 0, dora.m.buffer, dora.m.offset ?? 0, out * 4);
    dora.initMagnitude = false;
  }
  if (!dora.scalesReady) recordDoraScales(rec, layer, dora);
  if (dora.frozen) dora.scalesReady = true;
  const c = doraScalesBlock(dora.scales, out, 1);
  const doraZl = layerBuffer(rec, e, ws, { own: `${layer.path}.dora.zl` }, T, (rows) => rows * out * 4, false);
  const h = rankRows(rec, e, ws, layer, T, 'h');
  const partials = rankPartials(rec, e, k, ws, layer, T);
  const path = { scale: dora.scale, dropout: dora.dropout, seed: dora.seed, variant: k.matmul, partials };
  if (dora.dropout > 0) {
    recordBase(rec, e, k, ws, layer, T, x, y, accumulate);
    const xd = layerBuffer(rec, e, ws, { own: `${layer.path}.dora.x`, shared: 'dora.x' }, T, (rows) => rows * layer.inFeatures * 4, true);
    rec.clear(xd, 0, T * layer.inFeatures * 4);
    recordDropoutMaskedAdd(rec, shape, { src: x, dst: xd }, { scale: 1, dropout: dora.dropout, seed: dora.seed });
    const z = layerBuffer(rec, e, ws, { own: `${layer.path}.dora.z`, shared: 'dora.z' }, T, (rows) => rows * out * 4, true);
    recordBase(rec, e, k, ws, unbiased, T, xd, z, false);
    rec.copy(z, 0, doraZl, 0, T * out * 4);
    recordLoraPathForward(rec, shape, { x, A: dora.A, B: dora.B, h, y: doraZl }, path);
    recordDoraOutput(rec, { rows: T, n: out }, { zl: doraZl, z, c, y }, true);
    return { h, doraZl };
  }
  recordBase(rec, e, k, ws, unbiased, T, x, doraZl, false);
  recordLoraPathForward(rec, shape, { x, A: dora.A, B: dora.B, h, y: doraZl }, path);
  recordDoraOutput(rec, { rows: T, n: out }, { zl: doraZl, bias: layer.bias, c, y }, accumulate);
  return { h, doraZl };
}

/** DoRA's backward, the norm held constant: dm = Σ_t dy ⊙ zl / n; the low-rank path's dA, dB (and its dx term) with
 *  dy ⊙ c; dx = W·(c ⊙ dy) + … without dropout, W·dy + mask ⊙ (W·((c − 1) ⊙ dy)) + … with it. */
function recordDoraBackward(
  rec: Recorder,
  e: Engine,
  k: KernelChoice,
  layer: Linear,
  dora: DoraWeights,
  T: number,
  x: GPUBuffer,
  saved: LinearSaved,
  dy: GPUBuffer,
  dx: GPUBuffer | undefined,
  o: LinearBackwardOptions,
  ws: Workspace | undefined,
): void {
  if (!saved.doraZl || !saved.h) throw new Error(`${layer.path}: DoRA's backward needs the forward's saved zl and h`);
  const out = layer.outFeatures;
  const shape = { T, inFeatures: layer.inFeatures, outFeatures: out, r: dora.rank };
  const cols = { rows: T, n: out };
  recordDoraMagnitudeGrad(rec, cols, { dy, zl: saved.doraZl, norm: doraScalesBlock(dora.scales, out, 0), dm: dora.dm }, o.accumulateGrads);
  const dyc = layerBuffer(rec, e, ws, { own: `${layer.path}.dora.dy`, shared: 'dora.dy' }, T, (rows) => rows * out * 4, true);
  const dropScratch =
    dx && dora.dropout > 0
      ? layerBuffer(rec, e, ws, { own: `${layer.path}.dora.dx`, shared: 'dora.dxScratch' }, T, (rows) => rows * layer.inFeatures * 4, true)
      : undefined;
  if (dx && dropScratch) {
    recordBaseDx(rec, e, k, ws, layer, T, dy, dx, o.accumulateDx);
    recordScaleColumns(rec, cols, { a: dy, l: doraScalesBlock(dora.scales, out, 2), out: dyc });
    recordBaseDx(rec, e, k, ws, layer, T, dyc, dropScratch, false);
    recordDropoutMaskedAdd(rec, shape, { src: dropScratch, dst: dx }, { scale: 1, dropout: dora.dropout, seed: dora.seed });
  }
  recordScaleColumns(rec, cols, { a: dy, l: doraScalesBlock(dora.scales, out, 1), out: dyc });
  if (dx && !dropScratch) recordBaseDx(rec, e, k, ws, layer, T, dyc, dx, o.accumulateDx);
  recordLoraPathBackward(
    rec,
    shape,
    { x, A: dora.A, B: dora.B, h: saved.h, dy: dyc, g: rankRows(rec, e, ws, layer, T, 'g'), dx, dA: dora.dA, dB: dora.dB, scratch: dropScratch },
    { scale: dora.scale, dropout: dora.dropout, seed: dora.seed, accumulateGrads: o.accumulateGrads, variant: k.matmul, partials: rankPartials(rec, e, k, ws, layer, T) },
  );
}

/** dx = dy·W with the frozen base alone (+= when accumulate). */
function recordBaseDx(rec: Recorder, e: Engine, k: KernelChoice, ws: Workspace | undefined, layer: Linear, T: number, dy: GPUBuffer, dx: GPUBuffer, accumulate: boolean): void {
  const { weight } = layer;
  if (weight.kind === 'nf4') {
    recordNf4Product(rec, e, k, ws, weight.weight, T, false, { A: dy, C: dx }, accumulate);
  } else {
    recordMatmul(
      rec,
      { M: T, N: layer.inFeatures, K: layer.outFeatures, transB: weight.conv1d },
      { A: dy, B: weight.buffer, C: dx },
      { variant: k.matmul, elemB: weight.elem, accumulate },
    );
  }
}

/** Full fine-tuning: dW (+)= dyᵀ·x ([out, in]; Conv1D's [in, out]: xᵀ·dy) and db (+)= Σ_t dy = onesᵀ·dy, in f32
 *  whatever the model's storage (the trainer keeps f32 weights for full fine-tuning). */
function recordWeightGrad(rec: Recorder, k: KernelChoice, layer: Linear, g: LinearGrad, T: number, x: GPUBuffer, dy: GPUBuffer, o: LinearBackwardOptions): void {
  const { weight, inFeatures: n, outFeatures: m } = layer;
  if (weight.kind !== 'dense') throw new Error(`${layer.path}: full fine-tuning needs a dense weight, not NF4`);
  const conv1d = weight.conv1d;
  recordMatmul(
    rec,
    { M: conv1d ? n : m, N: conv1d ? m : n, K: T, transA: true },
    { A: conv1d ? x : dy, B: conv1d ? dy : x, C: g.dW },
    { variant: k.matmul, accumulate: o.accumulateGrads },
  );
  if (!g.db) return;
  if (!o.ones) throw new Error(`${layer.path}: the bias gradient needs the backward's ones vector`);
  recordMatmul(rec, { M: 1, N: m, K: T }, { A: o.ones, B: dy, C: g.db }, { variant: k.matmul, accumulate: o.accumulateGrads });
}

/** IA³'s backward. Feed-forward: g = dy·W, dl = Σ_t g ⊙ x, dx = g ⊙ l. Otherwise: dl = Σ_t dy ⊙ (x·Wᵀ + b), dx =
 *  (dy ⊙ l)·W. */
function recordIa3Backward(
  rec: Recorder,
  e: Engine,
  k: KernelChoice,
  layer: Linear,
  ia3: Ia3Vector,
  T: number,
  x: GPUBuffer,
  saved: LinearSaved,
  dy: GPUBuffer,
  dx: GPUBuffer | undefined,
  o: LinearBackwardOptions,
  ws: Workspace | undefined,
): void {
  const n = ia3.feedforward ? layer.inFeatures : layer.outFeatures;
  const scratch = (name: string) => layerBuffer(rec, e, ws, { own: `${layer.path}.${name}`, shared: name }, T, (rows) => rows * n * 4, true);
  if (ia3.feedforward) {
    const g = scratch('ia3.g');
    recordBaseDx(rec, e, k, ws, layer, T, dy, g, false);
    recordColumnDot(rec, { rows: T, n }, { a: g, b: x, out: ia3.dl }, o.accumulateGrads);
    if (dx) recordScaleColumns(rec, { rows: T, n }, { a: g, l: ia3.l, out: dx }, o.accumulateDx);
    return;
  }
  if (!saved.ia3Base) throw new Error(`${layer.path}: IA³'s backward needs the forward's saved output`);
  recordColumnDot(rec, { rows: T, n }, { a: dy, b: saved.ia3Base, out: ia3.dl }, o.accumulateGrads);
  if (!dx) return;
  const dys = scratch('ia3.dy');
  recordScaleColumns(rec, { rows: T, n }, { a: dy, l: ia3.l, out: dys });
  recordBaseDx(rec, e, k, ws, layer, T, dys, dx, o.accumulateDx);
}

/** This layer's base product, base dx and buffers, for a method's hook that lives in its own module. */
function linearOps(rec: Recorder, e: Engine, k: KernelChoice, layer: Linear, T: number, ws: Workspace | undefined): LinearOps {
  return {
    base: (x, y, accumulate) => recordBase(rec, e, k, ws, layer, T, x, y, accumulate),
    baseDx: (dy, dx, accumulate) => recordBaseDx(rec, e, k, ws, layer, T, dy, dx, accumulate),
    buffer: (role, floatsPerRow, transient) => layerBuffer(rec, e, ws, role, T, (rows) => rows * floatsPerRow * 4, transient),
  };
}

/** y = x·Wᵀ + b with the frozen base alone. */
function recordBase(rec: Recorder, e: Engine, k: KernelChoice, ws: Workspace | undefined, layer: Linear, T: number, x: GPUBuffer, y: GPUBuffer, accumulate: boolean): void {
  const { weight } = layer;
  if (weight.kind === 'nf4') {
    recordNf4Product(rec, e, k, ws, weight.weight, T, true, { A: x, C: y, bias: layer.bias }, accumulate);
  } else {
    recordMatmul(
      rec,
      { M: T, N: layer.outFeatures, K: layer.inFeatures, transB: !weight.conv1d },
      { A: x, B: weight.buffer, C: y, bias: layer.bias },
      { variant: k.matmul, elemB: weight.elem, accumulate },
    );
  }
}

/** An NF4 base product of T rows (forward when transB, else dx): the chosen variant, or for `dequant` (where
 *  nf4VariantForRows takes it) the weight decoded into the workspace's one scratch that every NF4 layer shares,
 *  sized by the largest layer after a training run's first step. Without a workspace (evaluation or generation
 *  outside a training run) the fused kernel runs instead: a pool scratch per layer would be released only when the
 *  submission ends, so one recording would hold every layer's decoded weight — the model in f32. */
function recordNf4Product(
  rec: Recorder,
  e: Engine,
  k: KernelChoice,
  ws: Workspace | undefined,
  W: Nf4Weight,
  T: number,
  transB: boolean,
  b: { A: GPUBuffer; C: GPUBuffer; bias?: GPUBuffer },
  accumulate: boolean,
): void {
  const variant = ws ? nf4VariantForRows(k.nf4, T, W, e.gpu.limits.maxStorageBufferBindingSize) : k.nf4 === 'dequant' ? DEQUANT_FALLBACK : k.nf4;
  const dequant = variant === 'dequant' ? { scratch: ws!.get('nf4.weight', nf4DequantBytes(W)), matmul: k.matmul } : undefined;
  recordMatmulNf4(rec, { M: T, transB }, { ...b, W }, { variant, accumulate, dequant });
}

export interface LinearBackwardOptions {
  /** Add into dx (the residual stream, or a sum over q/k/v) instead of overwriting it. */
  accumulateDx: boolean;
  /** Add into dA/dB (micro-batches of one optimizer step). */
  accumulateGrads: boolean;
  /** (≥ T) f32 ones: full fine-tuning's bias gradient is onesᵀ·dy. Needed when a layer has `grad.db`. */
  ones?: GPUBuffer;
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
  ws?: Workspace,
): void {
  if (layer.ia3) return recordIa3Backward(rec, e, k, layer, layer.ia3, T, x, saved, dy, dx, o, ws);
  if (layer.dora) return recordDoraBackward(rec, e, k, layer, layer.dora, T, x, saved, dy, dx, o, ws);
  if (layer.bottleneck) return recordBottleneckBackward(rec, k, layer, layer.bottleneck, T, saved.bottleneck, dy, dx, o, linearOps(rec, e, k, layer, T, ws));
  const { weight, lora } = layer;
  const partials = lora ? rankPartials(rec, e, k, ws, layer, T) : undefined;
  if (lora && weight.kind === 'dense' && k.lora !== 'unfused') {
    recordLoraBackward(
      rec,
      { T, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, r: lora.rank, conv1d: weight.conv1d },
      { x, W: weight.buffer, A: lora.A, B: lora.B, h: saved.h!, dy, g: rankRows(rec, e, ws, layer, T, 'g'), dx, dA: lora.dA, dB: lora.dB },
      {
        variant: k.lora,
        elemW: weight.elem,
        scale: lora.scale,
        dropout: lora.dropout,
        seed: lora.seed,
        accumulateDx: o.accumulateDx,
        accumulateGrads: o.accumulateGrads,
        partials,
      },
    );
    return;
  }
  if (dx) recordBaseDx(rec, e, k, ws, layer, T, dy, dx, o.accumulateDx);
  if (layer.grad) recordWeightGrad(rec, k, layer, layer.grad, T, x, dy, o);
  if (!lora) return;
  // The LoRA path beside the base dx (NF4, or the chosen dense matmul): dB; g = dy·B; dx += s·(g·A)∘mask;
  // dA = s·gᵀ·drop(x).
  recordLoraPathBackward(
    rec,
    { T, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, r: lora.rank },
    {
      x, A: lora.A, B: lora.B, h: saved.h!, dy, g: rankRows(rec, e, ws, layer, T, 'g'), dx, dA: lora.dA, dB: lora.dB,
      scratch:
        dx && lora.dropout > 0
          ? layerBuffer(rec, e, ws, { own: `${layer.path}.scratch`, shared: 'lora.dropoutScratch' }, T, (rows) => rows * layer.inFeatures * 4, true)
          : undefined,
    },
    { scale: lora.scale, dropout: lora.dropout, seed: lora.seed, accumulateGrads: o.accumulateGrads, variant: k.matmul, partials },
  );
}
