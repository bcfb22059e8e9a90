// What a training config means for the loaded model, computed on the page as the user edits: which linear layers the
// method wraps (the one resolver of src/train/methods/targets.ts, over the modules the summary's architecture numbers
// imply), how many parameters that trains (PEFT's count) and the memory estimate of model/memory.ts.
import type { ModelType } from '../../model/config.ts';
import { estimateTrainingMemory, type MemoryEstimate, type ModelDims } from '../../model/memory.ts';
import { linearArchFromDims, type LinearModule } from '../../model/weights.ts';
import type { TrainConfig } from '../../train/config.ts';
import { countTrainable } from '../../train/methods/method.ts';
import { METHODS } from '../../train/methods/registry.ts';
import { virtualTokenCount } from '../../train/methods/prompt-tuning/config.ts';
import { resolveTargets, TargetError, type TargetArch } from '../../train/methods/targets.ts';
import type { ModelSummary } from '../../train/protocol.ts';

export interface TrainPlan {
  /** Paths inside one block, e.g. "self_attn.q_proj". */
  modules: string[];
  trainableParams: number;
  memory: MemoryEstimate | null;
  /** Why no plan could be made (targets that match nothing), else empty. */
  problem: string;
}

/** The module's path inside its block ("self_attn.q_proj"): the plan lists each once, whatever the layers. */
function blockPath(peftPath: string): string {
  return peftPath.replace(/^.*?\.(?:h|layers)\.\d+\./, '');
}

/** The arch the resolver needs, from the summary's architecture numbers. */
function archOf(model: ModelSummary & { dims: ModelDims }): TargetArch {
  return { ...linearArchFromDims(model.dims), modelType: model.modelType as ModelType };
}

export function trainPlan(model: ModelSummary, c: TrainConfig): TrainPlan {
  if (!model.dims) return { modules: [], trainableParams: 0, memory: null, problem: 'this model summary has no layer shapes' };
  const method = METHODS[c.method];
  if (!method) return { modules: [], trainableParams: 0, memory: null, problem: `unknown method ${JSON.stringify(c.method)}` };
  let selected: LinearModule[];
  try {
    selected = resolveTargets(archOf({ ...model, dims: model.dims }), c.targets, method.defaultTargets).modules;
  } catch (e) {
    if (!(e instanceof TargetError)) throw e;
    return { modules: [], trainableParams: 0, memory: null, problem: e.message };
  }
  // A half-typed rank counts nothing rather than NaN; the field shows its own error.
  const ok = Number.isInteger(c.rank) && c.rank > 0 && c.batchSize >= 1 && c.maxLength >= 1;
  const shape = { hiddenSize: model.dims.hiddenSize };
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
