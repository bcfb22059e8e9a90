// Which linear layers a method wraps: the one resolver behind the trainer, the CLI, the worker's export, the Train
// screen's plan and the Models screen's memory estimate, so a target list means the same thing everywhere.
//
// PEFT's rules (selectTargetModules) plus the studio's: an empty list is the method's default for the architecture,
// "attention" every attention projection, and a name that matches nothing is an error even beside names that do
// (PEFT only fails when nothing at all matches, which would silently train fewer layers than asked).
import type { ModelConfig, ModelType } from '../../model/config.ts';
import { linearModules, selectTargetModules, type LinearArch, type LinearModule } from '../../model/weights.ts';

export type TargetArch = LinearArch & Pick<ModelConfig, 'modelType'>;

export const TARGET_ALIASES = ['all-linear', 'attention'] as const;

export class TargetError extends Error {
  override name = 'TargetError';
}

export interface TargetSelection {
  modules: LinearModule[];
  /** adapter_config.json's target_modules for them: "all-linear" as asked, else the names that selected them (sorted),
   *  which PEFT's suffix matching resolves to the same modules. */
  targetModules: string | string[];
}

/** The attention projections of an architecture, by the names PEFT matches. */
export function attentionTargets(arch: Pick<LinearArch, 'family'>): string[] {
  return arch.family === 'gpt2' ? ['attn.c_attn', 'attn.c_proj'] : ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
}

/**
 * The modules `targets` selects on a model. `defaults` is the method's default target list per model type (LoRA:
 * PEFT's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING), used when `targets` is empty.
 */
export function resolveTargets(arch: TargetArch, targets: readonly string[], defaults: Record<ModelType, readonly string[]>): TargetSelection {
  // A method whose default is no module (prompt tuning, P-tuning) wraps none, whatever the list says (a preset's
  // all-linear, a run's saved targets): its tensors are its own.
  if (defaults[arch.modelType].length === 0) return { modules: [], targetModules: [] };
  const all = linearModules(arch);
  const pick = (names: readonly string[]): LinearModule[] => {
    try {
      return selectTargetModules(arch, [...names]);
    } catch (e) {
      throw new TargetError((e as Error).message);
    }
  };
  if (targets.length === 1 && targets[0].toLowerCase() === 'all-linear') return { modules: linearModules(arch), targetModules: 'all-linear' };
  let names: readonly string[];
  if (targets.length === 1 && targets[0] === 'attention') names = attentionTargets(arch);
  else if (targets.length === 0) names = defaults[arch.modelType];
  else {
    for (const t of targets) pick([t]); // each name on its own, so a misspelt one is named
    names = targets;
  }
  // PEFT matches these names exactly as selectTargetModules did, so they are the adapter's target_modules as they are.
  return { modules: pick(names), targetModules: [...new Set(names)].sort() };
}

/** target_modules for adapter_config.json naming exactly `chosen` among `all` under PEFT's suffix matching. */
export function peftTargetModules(chosen: readonly LinearModule[], all: readonly LinearModule[]): string[] {
  const names = [...new Set(chosen.map((m) => m.targetName))].sort();
  const bySuffix = all.filter((m) => names.some((n) => m.peftPath.endsWith(`.${n}`)));
  if (bySuffix.length === chosen.length) return names;
  return chosen.map((m) => m.peftPath).sort();
}
