// The article's method comparison (../shared/background/): which rows it trains, on one model and dataset with the same
// seed, steps and evaluation split. Shared by the CLI's `compare-methods` and the studio's "Compare methods" (Compare
// screen), so both run the same rows.
//
// Learning rates: the methods train very different numbers of parameters, so one rate does not suit them all. The
// LoRA family and the bottleneck adapters use the base rate; IA³, prompt tuning and prefix tuning ten times it (the IA³
// paper trains at 3e-3 where LoRA uses 3e-4; a soft prompt's or a prefix's few parameters need a large rate too); full fine-tuning a tenth of it
// (the article: full fine-tuning wants a rate about ten times lower than LoRA's).
import type { TrainConfig } from './config.ts';
import type { MethodId } from './methods/ids.ts';

export interface MethodRow {
  id: string;
  label: string;
  method: MethodId;
  /** The row's own settings over the base config. */
  settings: Partial<Pick<TrainConfig, 'rank' | 'alpha' | 'initR' | 'targetR'>>;
  /** The base weights it needs: full precision, NF4 (QLoRA), or whichever the model has. */
  quant: 'none' | 'nf4' | 'any';
  /** Its learning rate as a multiple of the base rate. */
  lrScale: number;
  /** Keeps the base config's target list (the LoRA family); otherwise the method's own default targets. */
  keepTargets: boolean;
}

export const METHOD_ROWS: readonly MethodRow[] = [
  { id: 'full', label: 'Full FT', method: 'full', settings: {}, quant: 'none', lrScale: 0.1, keepTargets: false },
  { id: 'lora-r8', label: 'LoRA r8', method: 'lora', settings: { rank: 8, alpha: 16 }, quant: 'any', lrScale: 1, keepTargets: true },
  { id: 'lora-r64', label: 'LoRA r64', method: 'lora', settings: { rank: 64, alpha: 128 }, quant: 'any', lrScale: 1, keepTargets: true },
  { id: 'qlora-r8', label: 'QLoRA r8', method: 'lora', settings: { rank: 8, alpha: 16 }, quant: 'nf4', lrScale: 1, keepTargets: true },
  { id: 'dora-r8', label: 'DoRA r8', method: 'dora', settings: { rank: 8, alpha: 16 }, quant: 'any', lrScale: 1, keepTargets: true },
  // AdaLoRA starts wider and prunes to LoRA r8's average rank (PEFT's defaults init_r 12, target_r 8) over the run.
  { id: 'adalora-r12-8', label: 'AdaLoRA r12→8', method: 'adalora', settings: { initR: 12, targetR: 8, alpha: 16 }, quant: 'any', lrScale: 1, keepTargets: true },
  { id: 'ia3', label: 'IA³', method: 'ia3', settings: {}, quant: 'any', lrScale: 10, keepTargets: false },
  { id: 'prompt-tuning', label: 'Prompt tuning', method: 'prompt-tuning', settings: {}, quant: 'any', lrScale: 10, keepTargets: false },
  { id: 'prefix-tuning', label: 'Prefix tuning', method: 'prefix-tuning', settings: {}, quant: 'any', lrScale: 10, keepTargets: false },
  { id: 'houlsby', label: 'Houlsby adapters', method: 'houlsby', settings: {}, quant: 'any', lrScale: 1, keepTargets: false },
  { id: 'pfeiffer', label: 'Pfeiffer adapters', method: 'pfeiffer', settings: {}, quant: 'any', lrScale: 1, keepTargets: false },
];

/** A row's config over `base` with base weights `quant`; null with the reason when the row cannot run over them. */
export function methodRowConfig(row: MethodRow, base: TrainConfig, quant: TrainConfig['quant']): { config: TrainConfig } | { reason: string } {
  if (row.quant === 'none' && quant === 'nf4') return { reason: `${row.label} trains full-precision weights; the model is loaded with NF4 weights` };
  if (row.quant === 'nf4' && quant !== 'nf4') return { reason: `${row.label} needs the model loaded with NF4 weights` };
  return {
    config: {
      ...base,
      ...row.settings,
      method: row.method,
      quant: row.quant === 'any' ? quant : row.quant,
      lr: base.lr * row.lrScale,
      targets: row.keepTargets ? [...base.targets] : [],
    },
  };
}
