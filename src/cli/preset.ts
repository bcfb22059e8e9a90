// `--preset quick|balanced|quality` for `lora-studio train`: the studio's presets (src/train/presets.ts) as the base
// that the explicit flags override. As in the studio, the preset's learning rate is scaled to the model's width
// (presetLr), read from --model's config.json.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG, type TrainConfig } from '../train/config.ts';
import { parseModelConfig } from '../model/config.ts';
import { applyPreset, isPresetName, PRESET_NAMES, type PresetModel } from '../train/presets.ts';
import { UsageError, type FlagValues } from './args.ts';

export const PRESET_USAGE = `[--preset ${PRESET_NAMES.join('|')}]`;

/** The width of the --model folder's model, or null when its config.json cannot be read here (the train command
 *  reports a missing or bad folder itself, with the file named, before anything runs). */
export function presetModel(modelDir: unknown): PresetModel | null {
  if (typeof modelDir !== 'string') return null;
  try {
    const config = parseModelConfig(JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')), join(modelDir, 'config.json'));
    return { hidden: config.hiddenSize };
  } catch {
    return null;
  }
}

/** The config the flags start from: DEFAULT_CONFIG, or the named preset over it. An --eval-data file replaces the
 *  preset's held-out split, and `--eval-split 0` drops the preset's evaluation schedule with it. */
export function presetBase(flags: FlagValues): TrainConfig {
  const name = flags.preset;
  if (name === undefined) return DEFAULT_CONFIG;
  if (typeof name !== 'string' || !isPresetName(name)) {
    throw new UsageError(`train: --preset "${String(name)}" is not supported. Should be one of: ${PRESET_NAMES.join(', ')}`);
  }
  const config = applyPreset(name, DEFAULT_CONFIG, presetModel(flags.model));
  if (flags['eval-data'] !== undefined) config.evalSplit = 0;
  if (flags['eval-data'] === undefined && typeof flags['eval-split'] === 'string' && Number(flags['eval-split']) === 0) {
    config.evalEvery = 0;
    config.earlyStoppingPatience = 0;
  }
  return config;
}
