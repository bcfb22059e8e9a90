// What a training config means for the loaded model, computed on the page as the user edits: which linear layers the
// method wraps (the one resolver of src/train/methods/targets.ts, over the modules the summary's architecture numbers
// imply), how many parameters that trains (PEFT's count) and the memory estimate of model/memory.ts. Full fine-tuning
// trains every weight: its count is every linear layer's tensors plus the method's base tensors (the summary's
// fullParameters), its memory the model in f32 (a full run loads f16 weights again in f32) plus five f32 copies'
// worth beside it less the weights themselves (master weights, gradients, two AdamW moments and the trained copy the
// forward reads: methods/full/runtime.ts's fullFineTuningBytes), and it is refused, with the reason, on an NF4 load,
// past the GPU's largest binding (the engine's own refusal) or past the memory budget.
import type { ModelType } from '../../model/config.ts';
import { checkFit, estimateTrainingMemory, parameterCount, type MemoryEstimate, type ModelDims } from '../../model/memory.ts';
import { linearArchFromDims, type LinearModule } from '../../model/weights.ts';
import type { TrainConfig } from '../../train/config.ts';
import { fullBindingRefusal } from '../../train/full-run.ts';
import { countTrainable, type TrainingMethod } from '../../train/methods/method.ts';
import { METHODS } from '../../train/methods/registry.ts';
import { virtualTokenCount } from '../../train/methods/prompt-tuning/config.ts';
import { resolveTargets, TargetError, type TargetArch } from '../../train/methods/targets.ts';
import type { ModelSummary } from '../../train/protocol.ts';

export interface TrainPlan {
  /** Paths inside one block, e.g. "self_attn.q_proj". */
  modules: string[];
  trainableParams: number;
  memory: MemoryEstimate | null;
  /** Why no plan could be made (targets that match nothing), or why it cannot train here (full fine-tuning past
   *  the GPU's limits), else empty. */
  problem: string;
  /** Full fine-tuning: the whole model trains (no module choice). */
  wholeModel?: boolean;
}

/** What the plan checks a whole-model method against: the GPU's limits and the memory budget (model-fit.ts). */
export interface PlanGpu {
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
  budgetBytes: number;
}

/** Bytes per parameter full fine-tuning keeps beside the f32 weights: master weights, gradient, two AdamW moments,
 *  the forward's trained copy (5 × 4: methods/full/runtime.ts fullFineTuningBytes). */
export const FULL_BYTES_PER_PARAM = 20;

/** The module's path inside its block ("self_attn.q_proj"): the plan lists each once, whatever the layers. */
function blockPath(peftPath: string): string {
  return peftPath.replace(/^.*?\.(?:h|layers)\.\d+\./, '');
}

/** The arch the resolver needs, from the summary's architecture numbers. */
function archOf(model: ModelSummary & { dims: ModelDims }): TargetArch {
  return { ...linearArchFromDims(model.dims), modelType: model.modelType as ModelType };
}

export function trainPlan(model: ModelSummary, c: TrainConfig, gpu?: PlanGpu): TrainPlan {
  if (!model.dims) return { modules: [], trainableParams: 0, memory: null, problem: 'this model summary has no layer shapes' };
  const method = METHODS[c.method];
  if (!method) return { modules: [], trainableParams: 0, memory: null, problem: `unknown method ${JSON.stringify(c.method)}` };
  if (method.exports === 'model') return wholeModelPlan(method, { ...model, dims: model.dims }, c, gpu);
  let selected: LinearModule[];
  try {
    selected = resolveTargets(archOf({ ...model, dims: model.dims }), c.targets, method.defaultTargets).modules;
  } catch (e) {
    if (!(e instanceof TargetError)) throw e;
    return { modules: [], trainableParams: 0, memory: null, problem: e.message };
  }
  // A half-typed rank counts nothing rather than NaN; the field shows its own error.
  const ok = Number.isInteger(c.rank) && c.rank > 0 && c.batchSize >= 1 && c.maxLength >= 1;
  const { hiddenSize, numLayers, numKvHeads, headDim } = model.dims;
  const shape = { hiddenSize, numLayers, numKvHeads, headDim };
  const trainableParams = ok ? countTrainable(method, selected, c, shape) : 0;
  const memory = ok
    ? estimateTrainingMemory({
        dims: model.dims,
        base: c.quant === 'nf4' ? 'nf4' : model.dtype,
        embeddingDtype: model.dtype,
        trainable: method.footprint(selected, c, shape),
        batch: c.batchSize,
        // A prompt method's virtual tokens are activations like any token's, ahead of every row.
        seqLen: Math.min(c.maxLength + virtualTokenCount(c), model.maxPositions),
      })
    : null;
  return { modules: [...new Set(selected.map((m) => blockPath(m.peftPath)))], trainableParams, memory, problem: '' };
}

/** Full fine-tuning's plan: every weight, in f32, checked against the GPU when it is known. */
function wholeModelPlan(method: TrainingMethod, model: ModelSummary & { dims: ModelDims }, c: TrainConfig, gpu?: PlanGpu): TrainPlan {
  const { modules } = resolveTargets(archOf(model), [], method.defaultTargets);
  const params = model.fullParameters ?? parameterCount(model.dims);
  const ok = c.batchSize >= 1 && c.maxLength >= 1;
  const plan: TrainPlan = { modules: [...new Set(modules.map((m) => blockPath(m.peftPath)))], trainableParams: params, memory: null, problem: '', wholeModel: true };
  if (!ok) return plan;
  plan.memory = fullFineTuningMemory(model.dims, params, c.batchSize, Math.min(c.maxLength, model.maxPositions));
  if (gpu) plan.problem = fullFineTuningProblem(plan.memory, params, gpu);
  return plan;
}

/** Full fine-tuning's memory: the model in f32, each parameter's master weight, gradient and two AdamW moments (the
 *  estimate's 16 bytes) and the trained copy the forward reads (4 more), and the activations. The flat trainable
 *  buffers (4 bytes per parameter each) must fit one buffer. */
export function fullFineTuningMemory(dims: ModelDims, params: number, batch: number, seqLen: number): MemoryEstimate {
  const estimate = estimateTrainingMemory({ dims, base: 'f32', embeddingDtype: 'f32', trainable: { params, activationsPerToken: 0 }, batch, seqLen });
  const copy = (FULL_BYTES_PER_PARAM - 16) * params;
  return { ...estimate, loraBytes: estimate.loraBytes + copy, totalBytes: estimate.totalBytes + copy, largestTensorBytes: Math.max(estimate.largestTensorBytes, params * 4) };
}

/** Why full fine-tuning will not train on this GPU, in words; empty when it fits. */
export function fullFineTuningProblem(memory: MemoryEstimate, params: number, gpu: PlanGpu): string {
  const binding = fullBindingRefusal(params, gpu.limits.maxStorageBufferBindingSize);
  if (binding) return capitalize(binding);
  const fit = checkFit(memory, gpu.limits, gpu.budgetBytes);
  return fit.fits ? '' : `Full fine-tuning does not fit this GPU: ${fit.reason.replace(/; try QLoRA.*$/, '')}; use LoRA or QLoRA, a smaller model, or a larger memory budget (Models screen)`;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
