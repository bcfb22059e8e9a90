// Will a model train on this GPU? The catalogue's memory estimate per method, checked against the adapter's limits
// and a memory budget, before anything is downloaded.
//
// WebGPU does not say how much memory a GPU has, so the budget is a guess the user can override: four times the
// largest buffer the adapter allows (maxBufferSize is typically a quarter to a half of the memory on discrete GPUs,
// and browsers cap it at 2–4 GiB on small ones), clamped to [1 GiB, 16 GiB].
import type { ModelType } from '../../model/config.ts';
import { checkFit, estimateTrainingMemory, parameterCount, type FitVerdict, type MemoryEstimate, type ModelDims } from '../../model/memory.ts';
import { linearArchFromDims } from '../../model/weights.ts';
import { DEFAULT_CONFIG } from '../../train/config.ts';
import { METHODS } from '../../train/methods/registry.ts';
import { resolveTargets } from '../../train/methods/targets.ts';
import { fullFineTuningMemory, fullFineTuningProblem } from './train-plan.ts';

export const BUDGET_PER_MAX_BUFFER = 4;
export const MIN_DEFAULT_BUDGET = 1024 ** 3;
export const MAX_DEFAULT_BUDGET = 16 * 1024 ** 3;

/** The set-up the cards estimate: PEFT's default targets, rank 8, one row of 512 tokens. */
export const CARD_SETUP = { rank: 8, batch: 1, seqLen: 512 } as const;

export function defaultMemoryBudget(limits: { maxBufferSize: number }): number {
  return Math.min(MAX_DEFAULT_BUDGET, Math.max(MIN_DEFAULT_BUDGET, BUDGET_PER_MAX_BUFFER * limits.maxBufferSize));
}

/** LoRA over each storage of the base weights the studio loads, and full fine-tuning (every weight, f32). */
export type Method = 'lora-f32' | 'lora-f16' | 'qlora' | 'full';

export const METHOD_LABELS: Record<Method, string> = {
  'lora-f32': 'LoRA, f32 base',
  'lora-f16': 'LoRA, f16 base',
  qlora: 'QLoRA (NF4 base)',
  full: 'Full fine-tuning (f32)',
};

export interface MethodFit {
  method: Method;
  estimate: MemoryEstimate;
  verdict: FitVerdict;
}

/** LoRA at the card's set-up on PEFT's default targets for the architecture, over each base storage; then full
 *  fine-tuning at the same batch and length (train-plan.ts's estimate and refusals). */
export function methodFits(
  entry: { dims: ModelDims; modelType: ModelType },
  gpu: { hasF16: boolean; limits: { maxBufferSize: number; maxStorageBufferBindingSize?: number } },
  budgetBytes: number,
): MethodFit[] {
  const { dims } = entry;
  const lora = METHODS.lora;
  const card = { ...DEFAULT_CONFIG, method: 'lora' as const, rank: CARD_SETUP.rank, targets: [] };
  const { modules } = resolveTargets({ ...linearArchFromDims(dims), modelType: entry.modelType }, card.targets, lora.defaultTargets);
  const common = { dims, trainable: lora.footprint(modules, card), batch: CARD_SETUP.batch, seqLen: CARD_SETUP.seqLen };
  const embeddingDtype = gpu.hasF16 ? 'f16' : 'f32';
  const fit = (method: Method, estimate: MemoryEstimate, needsF16: boolean): MethodFit => ({
    method,
    estimate,
    verdict: needsF16 && !gpu.hasF16
      ? { fits: false, reason: 'f16 weights need shader-f16, which this GPU lacks' }
      : checkFit(estimate, gpu.limits, budgetBytes),
  });
  return [
    fit('lora-f32', estimateTrainingMemory({ ...common, base: 'f32', embeddingDtype: 'f32' }), false),
    fit('lora-f16', estimateTrainingMemory({ ...common, base: 'f16', embeddingDtype: 'f16' }), true),
    fit('qlora', estimateTrainingMemory({ ...common, base: 'nf4', embeddingDtype }), false),
    fullFit(dims, gpu.limits, budgetBytes),
  ];
}

function fullFit(dims: ModelDims, limits: { maxBufferSize: number; maxStorageBufferBindingSize?: number }, budgetBytes: number): MethodFit {
  const params = parameterCount(dims);
  const estimate = fullFineTuningMemory(dims, params, CARD_SETUP.batch, CARD_SETUP.seqLen);
  const binding = limits.maxStorageBufferBindingSize ?? limits.maxBufferSize;
  const problem = fullFineTuningProblem(estimate, params, { limits: { maxBufferSize: limits.maxBufferSize, maxStorageBufferBindingSize: binding }, budgetBytes });
  // The card's column says "won't fit: …" itself.
  return { method: 'full', estimate, verdict: { fits: !problem, reason: problem.replace(/^Full fine-tuning (does not fit this GPU: )?/, '') } };
}
