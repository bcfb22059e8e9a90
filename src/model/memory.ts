// An analytic estimate of the GPU memory a LoRA or QLoRA training step needs, checked against the adapter's limits
// before anything is downloaded and compared with the measured peak by the benchmarks.
//
//   memory ≈ frozen base weights (f32, f16 or NF4 for the linear layers; embeddings/head f32 or f16)
//          + LoRA weights, gradients and two AdamW moments (f32)
//          + activations kept for the backward pass (∝ batch × seq × layers)
//          + the largest transients: one chunk of logits inside the fused cross-entropy; with NF4, one decoded weight.
import { xentChunkRows } from '../gpu/kernels/xent-chunk.ts';

export interface ModelDims {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  tieWordEmbeddings: boolean;
  /** GPT-2 learns absolute positions: an extra (maxPositions, hidden) table. */
  learnedPositions?: number;
  /** GPT-2 uses a 2-matrix MLP (c_fc, c_proj); the Llama family a 3-matrix gated one (gate, up, down). */
  gatedMlp: boolean;
  /** Which linear layers have a bias: GPT-2 all of them, Qwen2 q/k/v only, Llama none. */
  linearBias: 'all' | 'qkv' | 'none';
  /** LayerNorm (GPT-2) has a bias beside its weight; RMSNorm does not. */
  normBias: boolean;
}

export type BaseDtype = 'f32' | 'f16' | 'nf4';

export interface TrainMemoryInput {
  dims: ModelDims;
  /** Storage of the frozen linear layers. NF4 keeps embeddings and head in f16 (or f32 without shader-f16). */
  base: BaseDtype;
  /** Storage of embeddings and head (f16 needs shader-f16). */
  embeddingDtype: 'f32' | 'f16';
  /** What the training method adds over all layers (its TrainingMethod.footprint): trainable parameters (each with a
   *  gradient and two AdamW moments, f32) and the f32 activations it keeps per token for the backward. */
  trainable: { params: number; activationsPerToken: number; stateBytes?: number };
  batch: number;
  seqLen: number;
}

export interface MemoryEstimate {
  baseWeightBytes: number;
  loraBytes: number;
  activationBytes: number;
  transientBytes: number;
  totalBytes: number;
  /** The largest single buffer, which must fit maxBufferSize (split across bindings above maxStorageBufferBindingSize). */
  largestTensorBytes: number;
}

const NF4_BLOCK = 64;

/** Per-layer linear shapes (in, out) of every projection in one transformer block. */
export function linearShapes(d: ModelDims): { name: string; in: number; out: number }[] {
  const q = d.numHeads * d.headDim;
  const kv = d.numKvHeads * d.headDim;
  const mlp = d.gatedMlp
    ? [
        { name: 'gate_proj', in: d.hiddenSize, out: d.intermediateSize },
        { name: 'up_proj', in: d.hiddenSize, out: d.intermediateSize },
        { name: 'down_proj', in: d.intermediateSize, out: d.hiddenSize },
      ]
    : [
        { name: 'c_fc', in: d.hiddenSize, out: d.intermediateSize },
        { name: 'c_proj', in: d.intermediateSize, out: d.hiddenSize },
      ];
  return [
    { name: 'q_proj', in: d.hiddenSize, out: q },
    { name: 'k_proj', in: d.hiddenSize, out: kv },
    { name: 'v_proj', in: d.hiddenSize, out: kv },
    { name: 'o_proj', in: q, out: d.hiddenSize },
    ...mlp,
  ];
}

export function parameterCount(d: ModelDims): number {
  const linears = linearShapes(d);
  const biased = d.linearBias === 'all' ? linears : d.linearBias === 'qkv' ? linears.slice(0, 3) : [];
  const normSize = d.hiddenSize * (d.normBias ? 2 : 1);
  const perLayer =
    linears.reduce((s, l) => s + l.in * l.out, 0) + biased.reduce((s, l) => s + l.out, 0) + 2 * normSize;
  const embed = d.vocabSize * d.hiddenSize + (d.learnedPositions ?? 0) * d.hiddenSize;
  const head = d.tieWordEmbeddings ? 0 : d.vocabSize * d.hiddenSize;
  return d.numLayers * perLayer + embed + head + normSize;
}

function linearBytes(elements: number, base: BaseDtype): number {
  if (base === 'f32') return elements * 4;
  if (base === 'f16') return elements * 2;
  return Math.ceil(elements / 2) + Math.ceil(elements / NF4_BLOCK) * 4; // codes + f32 absmax per block
}

export function estimateTrainingMemory(x: TrainMemoryInput): MemoryEstimate {
  const d = x.dims;
  const embBytesPer = x.embeddingDtype === 'f32' ? 4 : 2;
  const linears = linearShapes(d);
  const linearElements = linears.reduce((s, l) => s + l.in * l.out, 0) * d.numLayers;
  const embedding = (d.vocabSize + (d.learnedPositions ?? 0)) * d.hiddenSize * embBytesPer;
  const head = d.tieWordEmbeddings ? 0 : d.vocabSize * d.hiddenSize * embBytesPer;
  const norms = (2 * d.numLayers + 1) * d.hiddenSize * 4 * (d.normBias ? 2 : 1);
  // Biases stay f32 whatever the weights' storage (the engine reads them as f32).
  const biased = d.linearBias === 'all' ? linears : d.linearBias === 'qkv' ? linears.slice(0, 3) : [];
  const biases = biased.reduce((s, l) => s + l.out, 0) * d.numLayers * 4;
  const baseWeightBytes = linearBytes(linearElements, x.base) + embedding + head + norms + biases;

  // The method's parameters (LoRA: A (r, in) and B (out, r) per target), each with a gradient and two AdamW moments.
  // Plus the method's own state (AdaLoRA: its importance EMAs and rank mask, A_eff).
  const loraBytes = x.trainable.params * 4 * 4 + (x.trainable.stateBytes ?? 0);

  // Activations kept per layer for the explicit backward (f32): the block input and both norm outputs (3·C),
  // q, k, v and the attention output (C + 2·kv + C), per-row log-sum-exp (heads), the MLP's hidden inputs (gated:
  // gate and up = 2·I; GPT-2: c_fc's output = I — the activation itself is recomputed in the backward) and what the
  // method keeps (LoRA: each target's h, r per token).
  const T = x.batch * x.seqLen;
  const kvDim = d.numKvHeads * d.headDim;
  const qDim = d.numHeads * d.headDim;
  const perToken =
    3 * d.hiddenSize + 2 * qDim + 2 * kvDim + d.numHeads + (d.gatedMlp ? 2 : 1) * d.intermediateSize;
  const activationBytes = T * (perToken * d.numLayers + x.trainable.activationsPerToken) * 4 + T * d.hiddenSize * 4 * 2; // + final norm in/out

  // Transients: the gradient flowing through one layer (a few T×max(C, I) buffers, the shared MLP activation among
  // them) and one logits chunk.
  const widest = Math.max(d.hiddenSize, d.intermediateSize, qDim + 2 * kvDim);
  // NF4: where the tuner picks the dequant route (matmul_nf4.ts), one f32 copy of the largest layer's weight, decoded
  // for each base product and shared by every layer — counted whether or not this GPU ends up taking it.
  const dequantScratch = x.base === 'nf4' ? Math.max(...linears.map((l) => l.in * l.out)) * 4 : 0;
  const transientBytes = 4 * T * widest * 4 + xentChunkRows(T, d.vocabSize) * d.vocabSize * 4 + dequantScratch;

  const largestTensorBytes = Math.max(
    d.vocabSize * d.hiddenSize * embBytesPer,
    ...linears.map((l) => linearBytes(l.in * l.out, x.base)),
    T * widest * 4,
  );
  return {
    baseWeightBytes,
    loraBytes,
    activationBytes,
    transientBytes,
    totalBytes: baseWeightBytes + loraBytes + activationBytes + transientBytes,
    largestTensorBytes,
  };
}

export interface FitVerdict {
  fits: boolean;
  /** Why not, in words a user can act on; empty when it fits. */
  reason: string;
}

/** Whether a training set-up fits this adapter. `budgetBytes` is what the GPU can give (WebGPU does not report
 *  free memory: the caller passes a budget, e.g. a user setting or a conservative default). */
export function checkFit(estimate: MemoryEstimate, limits: { maxBufferSize: number }, budgetBytes: number): FitVerdict {
  const gib = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GiB`;
  if (estimate.largestTensorBytes > limits.maxBufferSize) {
    return {
      fits: false,
      reason: `its largest tensor needs ${gib(estimate.largestTensorBytes)} in one buffer, above this GPU's maxBufferSize of ${gib(limits.maxBufferSize)}`,
    };
  }
  if (estimate.totalBytes > budgetBytes) {
    return {
      fits: false,
      reason: `training needs about ${gib(estimate.totalBytes)}, above the ${gib(budgetBytes)} budget for this GPU; try QLoRA, a shorter max length or a smaller batch`,
    };
  }
  return { fits: true, reason: '' };
}
