// What a training config means for the loaded model, computed on the page as the user edits: which linear layers get
// LoRA (the same rules as lora-state.ts resolveTargets, over the summary's one-block module list), how many parameters
// that trains (PEFT's count) and the memory estimate of model/memory.ts.
import { estimateTrainingMemory, type MemoryEstimate } from '../../model/memory.ts';
import type { TrainConfig } from '../../train/config.ts';
import type { ModelSummary } from '../../train/protocol.ts';

export interface TrainPlan {
  /** Paths inside one block, e.g. "self_attn.q_proj". */
  modules: string[];
  trainableParams: number;
  memory: MemoryEstimate | null;
  /** Why no plan could be made (targets that match nothing), else empty. */
  problem: string;
}

type LayerModule = NonNullable<ModelSummary['layerModules']>[number];

/** PEFT's suffix match; a full module path ("model.layers.0.self_attn.q_proj", an imported adapter's targets) matches
 *  the block's module it ends with (counted in every layer: an estimate when only some layers are adapted). */
function matches(m: LayerModule, names: readonly string[]): boolean {
  return names.some((t) => m.path === t || m.path.endsWith(`.${t}`) || t.endsWith(`.${m.path}`));
}

/** The block's modules the targets select (aliases and the PEFT default included). */
export function planTargets(model: ModelSummary, targets: readonly string[]): LayerModule[] {
  const all = model.layerModules ?? [];
  if (targets.length === 1 && targets[0] === 'all-linear') return all;
  if (targets.length === 1 && targets[0] === 'attention') {
    const names = model.modelType === 'gpt2' ? ['attn.c_attn', 'attn.c_proj'] : ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
    return all.filter((m) => matches(m, names));
  }
  return all.filter((m) => matches(m, targets.length ? targets : model.defaultTargets));
}

export function trainPlan(model: ModelSummary, c: TrainConfig): TrainPlan {
  if (!model.layerModules || !model.dims) return { modules: [], trainableParams: 0, memory: null, problem: 'this model summary has no layer shapes' };
  const selected = planTargets(model, c.targets);
  if (selected.length === 0) {
    const names = [...new Set(model.layerModules.map((m) => m.path.split('.').at(-1)))].join(', ');
    return { modules: [], trainableParams: 0, memory: null, problem: `targets ${c.targets.join(', ')} match no linear layer (this model has ${names})` };
  }
  const r = Number.isInteger(c.rank) && c.rank > 0 ? c.rank : 0;
  const trainableParams = model.layers * selected.reduce((s, m) => s + r * (m.in + m.out), 0);
  const ok = r > 0 && c.batchSize >= 1 && c.maxLength >= 1;
  const memory = ok
    ? estimateTrainingMemory({
        dims: model.dims,
        base: c.method === 'qlora' ? 'nf4' : model.dtype,
        embeddingDtype: model.dtype,
        rank: r,
        targets: selected.map((m) => [m.in, m.out] as const),
        batch: c.batchSize,
        seqLen: Math.min(c.maxLength, model.maxPositions),
      })
    : null;
  return { modules: selected.map((m) => m.path), trainableParams, memory, problem: '' };
}
