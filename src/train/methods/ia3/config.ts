// IA³ (Liu et al. 2022, "Few-Shot Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning")
// as PEFT's IA3Config trains it: one learned vector l per wrapped linear layer, initialised to 1 so step 0 is the base
// model; an attention projection's output is scaled, bias included (y = (Wx + b) ⊙ l, l of out_features values,
// saved [out, 1]), a feed-forward layer's input (y = W(x ⊙ l) + b, l of in_features values, saved [1, in]). Its GPU
// side is runtime.ts (the hook is Linear.ia3 in src/model/runtime/linear.ts, kernels src/shaders/ia3.wgsl).
import { writeSafetensors, type TensorToWrite } from '../../../model/safetensors.ts';
import type { ModelType } from '../../../model/config.ts';
import type { LinearModule } from '../../../model/weights.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, adapterConfigText, finiteVector, PEFT_FORMAT_VERSION, type PeftAdapterConfig } from '../../peft.ts';
import type { TrainingMethod } from '../method.ts';

/** PEFT 0.21's TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING for the architectures the engine runs (Qwen scales
 *  q_proj where Llama and Mistral scale k_proj). */
export const IA3_DEFAULT_TARGET_MODULES: Record<ModelType, string[]> = {
  gpt2: ['c_attn', 'mlp.c_proj'],
  llama: ['k_proj', 'v_proj', 'down_proj'],
  mistral: ['k_proj', 'v_proj', 'down_proj'],
  qwen2: ['q_proj', 'v_proj', 'down_proj'],
  qwen3: ['q_proj', 'v_proj', 'down_proj'],
};

/** PEFT 0.21's TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING: the modules whose input l scales. */
export const IA3_FEEDFORWARD_MODULES: Record<ModelType, string[]> = {
  gpt2: ['mlp.c_proj'],
  llama: ['down_proj'],
  mistral: ['down_proj'],
  qwen2: ['down_proj'],
  qwen3: ['down_proj'],
};

/** Whether IA³ scales this module's input: PEFT's feed-forward modules are, for every architecture here, the MLP's
 *  down projection (canonical "layers.N.mlp.down"; ia3.test.ts checks this against the table above). */
export function isIa3Feedforward(m: Pick<LinearModule, 'canonical'>): boolean {
  return m.canonical.endsWith('.mlp.down');
}

export function ia3SegmentName(peftPath: string): string {
  return `${peftPath}.ia3_l`;
}

const KEY_PREFIX = 'base_model.model.';

/** adapter_config.json as PEFT 0.21 saves IA3Config(task_type="CAUSAL_LM") with these targets (keys sorted).
 *  feedforward_modules must be a subset of target_modules when PEFT reads the file back: names with names, full
 *  paths with full paths. */
export function ia3AdapterConfig(o: {
  baseModel: string;
  targetModules: string | string[];
  modules: readonly LinearModule[];
  fanInFanOut: boolean;
}): PeftAdapterConfig {
  let targets = o.modules.map((m) => m.peftPath).sort();
  let feedforward = o.modules.filter(isIa3Feedforward).map((m) => m.peftPath).sort();
  if (Array.isArray(o.targetModules)) {
    // Names (as targets.ts writes them, each selecting whole modules by path suffix): a name is feed-forward when
    // every module it selects is; one that selects both kinds (GPT-2's "c_proj") cannot say which, so paths it is.
    const kinds = o.targetModules.map((t) => new Set(o.modules.filter((m) => m.peftPath === t || m.peftPath.endsWith(`.${t}`)).map(isIa3Feedforward)));
    if (kinds.every((k) => k.size === 1)) {
      targets = [...o.targetModules].sort();
      feedforward = o.targetModules.filter((_, i) => kinds[i].has(true)).sort();
    }
  }
  return {
    auto_mapping: null,
    base_model_name_or_path: o.baseModel,
    exclude_modules: null,
    fan_in_fan_out: o.fanInFanOut,
    feedforward_modules: feedforward,
    inference_mode: true,
    init_ia3_weights: true,
    modules_to_save: null,
    peft_type: 'IA3',
    peft_version: PEFT_FORMAT_VERSION,
    revision: null,
    target_modules: targets,
    task_type: 'CAUSAL_LM',
  } as unknown as PeftAdapterConfig;
}

export const ia3Method: TrainingMethod = {
  id: 'ia3',
  label: 'IA³',
  explanation:
    'Learns one scaling vector per chosen layer, starting at 1: the keys, values (Qwen: queries) and the feed-forward input, as PEFT does. The fewest parameters of any method.',
  advice:
    'About a hundred times fewer parameters than LoRA r8, so it needs a much higher learning rate: 3e-3 to 1e-2 (the IA³ ' +
    'paper trains at 3e-3). Keep PEFT’s default targets; it merges into the weights with no extra latency, and works over ' +
    'an NF4 base too.',
  peftType: 'IA3',
  exports: 'adapter',
  wrapsLinears: true,
  settings: ['targets'],
  defaultTargets: IA3_DEFAULT_TARGET_MODULES,
  validate: () => [],
  tensors(m) {
    return [{ name: ia3SegmentName(m.peftPath), length: isIa3Feedforward(m) ? m.inFeatures : m.outFeatures, lrScale: 1 }];
  },
  footprint(modules) {
    const scaled = modules.filter((m) => !isIa3Feedforward(m));
    return {
      params: modules.reduce((s, m) => s + (isIa3Feedforward(m) ? m.inFeatures : m.outFeatures), 0),
      // An output-scaled layer keeps its unscaled output (out per token) for l's gradient.
      activationsPerToken: scaled.reduce((s, m) => s + m.outFeatures, 0),
    };
  },
  exportAdapter({ tensors, modules, targetModules, model, baseModel }) {
    if (modules.length === 0) throw new Error('no IA³ modules to export');
    const weights = new Map<string, TensorToWrite>();
    for (const m of modules) {
      const ff = isIa3Feedforward(m);
      const n = ff ? m.inFeatures : m.outFeatures;
      const name = `${KEY_PREFIX}${m.peftPath}.ia3_l`;
      const data = tensors.get(ia3SegmentName(m.peftPath));
      if (!data) throw new Error(`no trained ia3_l for ${m.peftPath}`);
      if (data.length !== n) throw new Error(`${name}: ${data.length} values, expected ${n}`);
      weights.set(name, finiteVector(name, data, ff ? [1, n] : [n, 1]));
    }
    const config = ia3AdapterConfig({ baseModel, targetModules, modules, fanInFanOut: model.linearLayout === 'conv1d' });
    return {
      [ADAPTER_CONFIG_FILE]: new TextEncoder().encode(adapterConfigText(config)),
      [ADAPTER_WEIGHTS_FILE]: writeSafetensors(weights, { format: 'pt' }),
    } as ReturnType<TrainingMethod['exportAdapter']>;
  },
  proof: {
    reference: 'src/gpu/ref/ia3.ref.ts',
    goldens: ['scripts/golden_ia3.py', 'tests/fixtures/golden/train_ia3_gpt2.json', 'tests/fixtures/golden/train_ia3_llama.json', 'tests/fixtures/golden/train_ia3_qwen3.json', 'src/train/ia3-golden.gpu.test.ts'],
    exportImport: ['src/train/methods/ia3/ia3.test.ts', 'src/train/ia3-golden.gpu.test.ts'],
    merge: 'src/train/ia3-golden.gpu.test.ts',
  },
};
