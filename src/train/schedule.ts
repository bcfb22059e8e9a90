// Learning-rate schedules, identical to transformers' get_{cosine,linear,constant}_schedule_with_warmup: the rate at
// optimizer step `step` (0-based) is lr · λ(step), so a run with warmup starts at 0 exactly as the HF Trainer does.
import type { Schedule } from './config.ts';

export function lrMultiplier(schedule: Schedule, step: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (schedule === 'constant') return 1;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  if (schedule === 'linear') return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** Warmup steps from an explicit count or a ratio of the total (HF rounds the ratio up). */
export function warmupStepsFor(totalSteps: number, warmupSteps: number | null, warmupRatio: number): number {
  return warmupSteps ?? Math.ceil(totalSteps * warmupRatio);
}
