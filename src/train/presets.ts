// The training presets, shared by the studio's Train screen (the store's applyTrainPreset) and the CLI
// (`lora-studio train --preset quick|balanced|quality`, explicit flags override). Quick is what the studio picks
// first, so it is tuned together with the bundled demo model and the sample datasets: with it, each sample changes
// the demo model's greedy answers to the held-out prompts in one epoch (src/train/demo-samples.gpu.test.ts;
// scripts/check_demo_samples.py runs the same check in PEFT on CPU).
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';

export const PRESET_NAMES = ['quick', 'balanced', 'quality'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

/** Presets from the LoRA guide's advice: rank 4 for small, simple tasks and 8–16 for most; alpha = 2r; a higher
 *  learning rate for smaller ranks (LoRA takes far higher rates than full fine-tuning); q/v projections by default,
 *  all linear layers when quality matters; dropout 0.05–0.1 and early stopping against overfitting; gradient clipping
 *  at 1.0 and ~3% warmup always. The guide's 1e-4…3e-4 is for billion-parameter models: Quick's rate is higher so
 *  that its single epoch visibly teaches a small model (the demo model learns nothing at 3e-4 in one epoch). */
export const PRESETS: Record<PresetName, { title: string; about: string; config: Partial<TrainConfig> }> = {
  quick: {
    title: 'Quick',
    about: 'A first look in minutes: rank 4 on the attention q/v projections, a high learning rate, short sequences, one epoch.',
    config: { rank: 4, alpha: 8, dropout: 0, targets: [], lr: 5e-3, maxLength: 256, epochs: 1, batchSize: 4, evalSplit: 0 },
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

export function applyPreset(name: PresetName, base: TrainConfig = DEFAULT_CONFIG): TrainConfig {
  return { ...base, ...PRESETS[name].config };
}

export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}
