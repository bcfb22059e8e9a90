// The training presets, shared by the studio's Train screen (the store's applyTrainPreset) and the CLI
// (`lora-studio train --preset quick|balanced|quality`, explicit flags override). Quick is what the studio picks
// first, so it is tuned together with the bundled demo model and the sample datasets: with it, each sample changes
// the demo model's greedy answers to the held-out prompts in one epoch (src/train/demo-samples.gpu.test.ts;
// scripts/check_demo_samples.py runs the same check in PEFT on CPU).
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';

export const PRESET_NAMES = ['quick', 'balanced', 'quality'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** The hidden size the LoRA guide's learning rates (1e-4…3e-4, as LLaMA-Factory and Unsloth use) are for: the
 *  7B-class models they are quoted for (LLaMA-7B, Mistral-7B: 4096). */
export const REFERENCE_HIDDEN = 4096;
/** The highest rate a preset gives any model, however small. */
export const MAX_PRESET_LR = 1e-2;

/** What a preset needs to know about the model it is applied to. */
export interface PresetModel {
  /** The hidden size (transformers' hidden_size, GPT-2's n_embd). */
  hidden: number;
}

/**
 * A preset's learning rate for a model of this hidden size: the preset's rate at REFERENCE_HIDDEN scaled by
 * REFERENCE_HIDDEN / hidden, never below that rate and never above MAX_PRESET_LR. Adam's update to a weight matrix
 * moves its output in proportion to the width it sums over, so the rate that moves a layer by the same amount goes as
 * 1 / width (μP's rule for Adam on hidden weights; LoRA's B is such a matrix). The guide's 2e-4 for a 7B model thus
 * gives ~9e-4 for a 0.5B one (896), ~1e-3 for GPT-2 (768) and ~4e-3 for the demo model (192), while wider models
 * keep the guide's rate (rates are not lowered below what the guide says works at 7B).
 */
export function presetLr(lrAtReference: number, hidden: number): number {
  if (!(hidden > 0)) return lrAtReference;
  const scaled = lrAtReference * Math.max(1, REFERENCE_HIDDEN / hidden);
  return Math.min(Math.max(lrAtReference, MAX_PRESET_LR), Number(scaled.toPrecision(2)));
}

/** Presets from the LoRA guide's advice: rank 4 for small, simple tasks and 8–16 for most; alpha = 2r; LoRA takes
 *  far higher rates than full fine-tuning, the guide's 1e-4…3e-4 being for 7B models (each preset's `lr` is its
 *  rate at REFERENCE_HIDDEN; applied to a model, presetLr scales it to the model's width); q/v projections by
 *  default, all linear layers when quality matters; dropout 0.05–0.1 and early stopping against overfitting;
 *  gradient clipping at 1.0 and ~3% warmup always. */
export const PRESETS: Record<PresetName, { title: string; about: string; config: Partial<TrainConfig> }> = {
  quick: {
    title: 'Quick',
    about: 'A first look in minutes: rank 4 on every linear layer (LLaMA-Factory\'s and Unsloth\'s default targets), the usual learning rate scaled to the model, short sequences, one epoch.',
    config: { rank: 4, alpha: 8, dropout: 0, targets: ['all-linear'], lr: 2e-4, maxLength: 256, epochs: 1, batchSize: 4, evalSplit: 0 },
  },
  balanced: {
    title: 'Balanced',
    about: 'The usual choice: rank 8 on every attention projection, a little dropout, a held-out 5% to watch.',
    config: { rank: 8, alpha: 16, dropout: 0.05, targets: ['attention'], lr: 2e-4, maxLength: 512, epochs: 2, evalSplit: 0.05, evalEvery: 25 },
  },
  quality: {
    title: 'Quality',
    about: 'Rank 16 on all linear layers, three epochs with early stopping on a 10% eval split.',
    config: {
      rank: 16, alpha: 32, dropout: 0.1, targets: ['all-linear'], lr: 1e-4, maxLength: 1024, epochs: 3,
      evalSplit: 0.1, evalEvery: 25, earlyStoppingPatience: 3, weightDecay: 0.01,
    },
  },
};

/** The preset over `base`; with the model known, its learning rate scaled to the model's width (presetLr). */
export function applyPreset(name: PresetName, base: TrainConfig = DEFAULT_CONFIG, model?: PresetModel | null): TrainConfig {
  const config = { ...base, ...PRESETS[name].config };
  if (model) config.lr = presetLr(PRESETS[name].config.lr!, model.hidden);
  return config;
}

export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}
