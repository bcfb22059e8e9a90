// AdaLoRA's rank budget, host side (PEFT 0.21 RankAllocator): what each step does, and the threshold that masks the
// least important triplets. Pure functions: the runtime reads the GPU's per-triplet scores back only on the steps
// this says mask by score (every deltaT steps in the budget phase, and once at the start of the final phase).

export interface AdaloraSchedule {
  initR: number;
  targetR: number;
  tinit: number;
  tfinal: number;
  deltaT: number;
  totalStep: number;
}

/** What update_and_allocate(globalStep) does after the optimizer step `globalStep` (PEFT's numbering: the caller's;
 *  ours is the 1-based number of the step just made). */
export interface BudgetAction {
  /** Update the importance EMAs (global_step < total_step − tfinal). */
  updateImportance: boolean;
  /** Mask by scores to this budget (the total rank kept), or null. */
  maskToBudget: number | null;
  /** Re-apply the frozen final rank pattern (the final phase). */
  maskByPattern: boolean;
}

/** RankAllocator.budget_schedule: the budget (total rank) at `step` and whether it masks. */
export function budgetSchedule(s: AdaloraSchedule, modules: number, step: number): { budget: number; mask: boolean } {
  const init = s.initR * modules;
  const target = s.targetR * modules;
  if (step <= s.tinit) return { budget: init, mask: false };
  if (step > s.totalStep - s.tfinal) return { budget: target, mask: true };
  // The cubic decrease from init to target between tinit and total_step − tfinal; int() truncates toward zero.
  const mul = 1 - (step - s.tinit) / (s.totalStep - s.tfinal - s.tinit);
  return { budget: Math.trunc((init - target) * mul ** 3 + target), mask: step % s.deltaT === 0 };
}

/** AdaLoraModel.update_and_allocate's three cases. */
export function budgetAction(s: AdaloraSchedule, modules: number, step: number): BudgetAction {
  const end = s.totalStep - s.tfinal;
  if (step < end) {
    const { budget, mask } = budgetSchedule(s, modules, step);
    return { updateImportance: true, maskToBudget: mask ? budget : null, maskByPattern: false };
  }
  // At total_step − tfinal: the final mask by score (force_mask, budget = target; the EMAs are not updated, as
  // RankAllocator.update_and_allocate skips update_ipt there), then the pattern stays.
  if (step === end) return { updateImportance: false, maskToBudget: budgetSchedule(s, modules, step).budget, maskByPattern: false };
  return { updateImportance: false, maskToBudget: null, maskByPattern: true };
}

/**
 * mask_to_budget's rule: the threshold is the k-th smallest score (torch.kthvalue, k = init budget − budget), and a
 * triplet is kept when its score is above it (masked_fill_ where score ≤ threshold). Returns 1 kept / 0 masked.
 */
export function maskToBudget(scores: ArrayLike<number>, budget: number): Uint8Array {
  const k = scores.length - budget;
  if (!(Number.isInteger(k) && k >= 1 && k <= scores.length)) {
    throw new RangeError(`AdaLoRA budget ${budget} of ${scores.length} triplets: kthvalue needs 1 ≤ k = ${k} ≤ ${scores.length}`);
  }
  for (let i = 0; i < scores.length; i++) if (Number.isNaN(scores[i])) throw new RangeError(`AdaLoRA importance score ${i} is NaN`);
  const sorted = Float64Array.from(scores).sort();
  const threshold = sorted[k - 1];
  return Uint8Array.from(scores as ArrayLike<number>, (v) => (v > threshold ? 1 : 0));
}
