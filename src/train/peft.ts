// PEFT LoRA adapters in and out: adapter_config.json as PEFT 0.21 writes it, adapter_model.safetensors with PEFT's
// key names, a .zip of both, and the import of any PEFT LoRA adapter (zip or folder) checked against a model.
//
// Layout (peft/utils/save_and_load.py): every LoRA linear layer contributes two F32 tensors,
//   base_model.model.<module path>.lora_A.weight   [r, in]
//   base_model.model.<module path>.lora_B.weight   [out, r]
// whatever the base layer's storage (GPT-2's Conv1D keeps W as [in, out] but its LoRA pair is still nn.Linear-shaped;
// fan_in_fan_out only says how the product B·A is folded into W). The forward is y = W x + scale · B (A x) with
// scale = lora_alpha / r (lora_alpha / √r with rsLoRA). Older files (and raw state dicts) carry the adapter name:
// "…lora_A.default.weight"; both spellings are read.

import { zipSync } from 'fflate';
import type { ModelFiles } from '../model/checkpoint.ts';
import { readJsonFile } from '../model/checkpoint.ts';
import type { ModelConfig } from '../model/config.ts';
import { SafetensorsFile, writeSafetensors, type ByteSource, type TensorToWrite } from '../model/safetensors.ts';
import { basePrefix, linearModules, selectTargetModules, type LinearModule } from '../model/weights.ts';
import { loraScale } from './methods/lora-scale.ts';
import { openAdapterArchive } from './adapter-archive.ts';
import { AdapterError } from './adapter-error.ts';
import { bottleneckName, isBottleneckConfig, readBottleneckAdapter, type BottleneckAdapter } from './methods/bottleneck/format.ts';

import { checkAdaloraConfig, readAdaloraTensors, type AdaloraImport } from './methods/adalora/format.ts';
import type { MethodId } from './methods/ids.ts';

export { AdapterError };

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** The PEFT release whose adapter_config.json layout buildAdapterConfig reproduces key for key. */
export const PEFT_FORMAT_VERSION = '0.21.0';
const KEY_PREFIX = 'base_model.model.';

// ---------------------------------------------------------------------------------------------------------------
// adapter_config.json

export interface AdapterSettings {
  /** base_model_name_or_path: the Hub repo id or the folder the base model was loaded from. */
  baseModel: string;
  rank: number;
  alpha: number;
  dropout: number;
  /** Module names ("q_proj"), full module paths, "all-linear", or one regular expression string. */
  targetModules: string | string[];
  /** true for GPT-2 (Conv1D stores W as [in, out]). */
  fanInFanOut: boolean;
  rslora: boolean;
  /** Needed for "all-linear": PEFT saves the expanded list of module paths, and so do we. */
  model?: ModelConfig;
}

/** adapter_config.json as an object. The keys the engine reads are typed; PEFT's others are kept as they are. */
export interface PeftAdapterConfig {
  peft_type: string;
  task_type: string | null;
  base_model_name_or_path: string | null;
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[] | string | null;
  fan_in_fan_out: boolean;
  bias: string;
  use_rslora: boolean;
  use_dora: boolean;
  [key: string]: unknown;
}

/**
 * The object PEFT 0.21 saves for LoraConfig(task_type="CAUSAL_LM", r, lora_alpha, lora_dropout, target_modules,
 * fan_in_fan_out, use_rslora) with every other field at its default (src/train/golden/adapter_config.*.json are the
 * reference). target_modules is sorted (PEFT writes list(set), in hash order); "all-linear" is expanded to the module
 * paths it selects, as PEFT does when it wraps the model.
 */
export function buildAdapterConfig(s: AdapterSettings): PeftAdapterConfig {
  if (!Number.isInteger(s.rank) || s.rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${s.rank}`);
  if (!Number.isFinite(s.alpha) || s.alpha <= 0) throw new Error(`LoRA alpha must be a positive number, got ${s.alpha}`);
  if (!(s.dropout >= 0 && s.dropout < 1)) throw new Error(`LoRA dropout must be in [0, 1), got ${s.dropout}`);
  let targets: string[] | string;
  if (typeof s.targetModules === 'string' && s.targetModules.toLowerCase() === 'all-linear') {
    if (!s.model) throw new Error('target_modules "all-linear" needs the model config to be expanded into module paths');
    targets = selectTargetModules(s.model, 'all-linear').map((m) => m.peftPath).sort();
  } else if (typeof s.targetModules === 'string') {
    targets = s.targetModules; // a regular expression: PEFT keeps the string
  } else {
    if (s.targetModules.length === 0) throw new Error('target_modules is empty');
    targets = [...new Set(s.targetModules)].sort();
  }
  // Alphabetical, as PEFT's json.dumps(sort_keys=True).
  return {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: s.baseModel,
    bias: 'none',
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: s.fanInFanOut,
    inference_mode: true,
    init_lora_weights: true,
    kasa_config: null,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: s.alpha,
    lora_bias: false,
    lora_dropout: s.dropout,
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    monteclora_config: null,
    peft_type: 'LORA',
    peft_version: PEFT_FORMAT_VERSION,
    qalora_group_size: 16,
    r: s.rank,
    rank_pattern: {},
    revision: null,
    target_modules: targets,
    target_parameters: null,
    task_type: 'CAUSAL_LM',
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: s.rslora,
    velora_config: null,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Export

/** One trained LoRA pair, row-major. */
export interface LoraModuleWeights {
  /** PEFT's module path inside the *ForCausalLM (LinearModule.peftPath), e.g. "model.layers.0.self_attn.q_proj". */
  peftPath: string;
  inFeatures: number;
  outFeatures: number;
  A: Float32Array; // (r, in)
  B: Float32Array; // (out, r)
}

export interface AdapterFiles {
  'adapter_config.json': Uint8Array;
  'adapter_model.safetensors': Uint8Array;
}

/** The adapter file's key of a module's A or B. */
export function loraTensorName(peftPath: string, which: 'A' | 'B'): string {
  return `${KEY_PREFIX}${peftPath}.lora_${which}.weight`;
}

/** adapter_config.json + adapter_model.safetensors bytes. Refuses a shape that disagrees with config.r and any NaN or
 *  infinity (as PEFT's safe_merge does), naming the tensor and the first bad element. `extra`: more tensors of the
 *  same file, already checked (DoRA's magnitudes). */
export function exportAdapter(modules: LoraModuleWeights[], config: PeftAdapterConfig, extra?: ReadonlyMap<string, TensorToWrite>): AdapterFiles {
  if (modules.length === 0) throw new Error('no LoRA modules to export');
  const r = config.r;
  const tensors = new Map<string, TensorToWrite>(extra ?? []);
  for (const m of modules) {
    const a = loraTensorName(m.peftPath, 'A');
    const b = loraTensorName(m.peftPath, 'B');
    if (tensors.has(a)) throw new Error(`module ${m.peftPath} is given twice`);
    checkLength(a, m.A, [r, m.inFeatures]);
    checkLength(b, m.B, [m.outFeatures, r]);
    checkFinite(a, m.A, m.inFeatures);
    checkFinite(b, m.B, r);
    tensors.set(a, { dtype: 'F32', shape: [r, m.inFeatures], data: m.A });
    tensors.set(b, { dtype: 'F32', shape: [m.outFeatures, r], data: m.B });
  }
  return {
    'adapter_config.json': new TextEncoder().encode(adapterConfigText(config)),
    'adapter_model.safetensors': writeSafetensors(tensors, { format: 'pt' }),
  };
}

/** JSON with sorted keys and two-space indent, as PEFT writes it. */
export function adapterConfigText(config: PeftAdapterConfig): string {
  const sorted = Object.fromEntries(Object.keys(config).sort().map((k) => [k, config[k]]));
  return JSON.stringify(sorted, null, 2);
}

function checkLength(name: string, data: Float32Array, shape: [number, number]): void {
  if (data.length !== shape[0] * shape[1]) {
    throw new Error(`${name}: ${data.length} values, expected [${shape.join(', ')}] = ${shape[0] * shape[1]}`);
  }
}

/** A vector tensor for an adapter file: refuses a NaN or infinity, naming the tensor and the element. */
export function finiteVector(name: string, data: Float32Array, shape: number[]): TensorToWrite {
  const bad = data.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new Error(`${name} holds ${data[bad]} at ${bad}: refusing to save a diverged adapter`);
  return { dtype: 'F32', shape, data };
}

function checkFinite(name: string, data: Float32Array, cols: number): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new Error(`${name} holds ${data[i]} at [${Math.floor(i / cols)}, ${i % cols}]: refusing to save a diverged adapter`);
    }
  }
}

/** The two files in one .zip (what the download button gives). */
export function zipAdapter(files: AdapterFiles): Uint8Array {
  return zipSync({ [ADAPTER_CONFIG_FILE]: files['adapter_config.json'], [ADAPTER_WEIGHTS_FILE]: files['adapter_model.safetensors'] }, { level: 6 });
}

// ---------------------------------------------------------------------------------------------------------------
// Import

/** A LoRA pair read from a file, attached to the model's linear layer it adapts. */
export interface AdapterModule extends LoraModuleWeights {
  module: LinearModule;
  /** DoRA (use_dora): the magnitude per output row, lora_magnitude_vector (out). */
  magnitude?: Float32Array;
}

export interface LoraAdapter {
  kind?: 'lora';
  /** adapter_config.json as read. */
  config: PeftAdapterConfig;
  rank: number;
  alpha: number;
  rslora: boolean;
  /** alpha / r (alpha / √r with rsLoRA). */
  scale: number;
  dropout: number;
  /** use_dora: every module has its magnitude (AdapterModule.magnitude), and the layer is DoRA's. */
  dora?: boolean;
  /** peft_type ADALORA, read into this LoRA form (methods/adalora/format.ts): each module's A is diag(E)·A padded to
   *  init_r, scale lora_alpha / (init_r + 1e-5); the SVD tensors and the schedule, for continuing. */
  adalora?: AdaloraImport;
  /** In the model's forward order. */
  modules: AdapterModule[];
  /** Loadable, but worth telling the user (a targeted module without weights, which PEFT would leave at B = 0). */
  warnings: string[];
}

/** Opens a PEFT adapter: a .zip (its bytes or a ByteSource over it; both files at the top or in one folder, inflated
 *  with the bounds of adapter-archive.ts, which need `model`) or a folder. */
export async function adapterFolder(source: Uint8Array | ByteSource | ModelFiles, model: ModelConfig, name?: string): Promise<ModelFiles> {
  if (source instanceof Uint8Array || 'read' in source) return openAdapterArchive(source, model, name ?? (source instanceof Uint8Array ? 'adapter.zip' : source.name));
  return source;
}

/**
 * Reads a PEFT LoRA adapter and checks it against `model`: every tensor must be the A or B of one of the model's
 * linear layers, with shapes [r, in] and [out, r]. F32, F16 and BF16 tensors are read (as f32). Everything wrong is
 * reported at once in one AdapterError (unknown modules by name, wrong shapes with both shapes, …).
 */
export async function importAdapter(source: Uint8Array | ByteSource | ModelFiles, model: ModelConfig, name?: string): Promise<LoraAdapter> {
  const adapter = await importPeftAdapter(source, model, name);
  if (adapter.kind === 'ia3' || adapter.kind === 'prompt') {
    const t = adapter.kind === 'ia3' ? 'IA3' : adapter.peftType;
    throw new AdapterError(adapter.where, [`peft_type is "${t}": this adapter evaluates and generates here, but this needs a LoRA adapter`]);
  }
  if (adapter.adalora) {
    throw new AdapterError(adapter.where ?? name ?? 'adapter', ['peft_type is "ADALORA": this needs a plain LoRA adapter (an AdaLoRA adapter evaluates, generates, merges, imports as a run and continues, but its per-layer ranks and α / (init_r + 1e-5) scale have no LoRA-only form for the TRL or LoRA GGUF exports)']);
  }
  if (adapter.dora) {
    throw new AdapterError(adapter.where ?? name ?? 'adapter', ['use_dora is true: this needs a plain LoRA adapter (a DoRA adapter evaluates, generates, merges, imports as a run and continues, but has no LoRA-only form for the TRL or LoRA GGUF exports)']);
  }
  return adapter;
}

/** An IA³ vector read from a file, on the model's linear layer it scales. */
export interface Ia3AdapterModule {
  module: LinearModule;
  peftPath: string;
  /** Scales the layer's input (in_features values) rather than its output (out_features). */
  feedforward: boolean;
  l: Float32Array;
}

export interface Ia3Adapter {
  kind: 'ia3';
  /** The file or folder it came from, for messages. */
  where: string;
  config: Record<string, unknown>;
  /** In the model's forward order. */
  modules: Ia3AdapterModule[];
  warnings: string[];
}

/** A prompt-learning adapter (peft_type PROMPT_TUNING, P_TUNING or PREFIX_TUNING): its table as PEFT saves it,
 *  "prompt_embeddings" — the virtual tokens' [n, hidden] (for P-tuning the prompt encoder's output: PEFT saves no
 *  MLP, so an imported P-tuning adapter runs and continues as plain virtual embeddings, i.e. prompt tuning), or prefix
 *  tuning's per-layer key/value rows [n, L·2·Hkv·D] (after its projection, if it had one: it continues as a plain
 *  prefix table, without the MLP). */
export interface PromptAdapter {
  kind: 'prompt';
  where: string;
  config: Record<string, unknown>;
  peftType: 'PROMPT_TUNING' | 'P_TUNING' | 'PREFIX_TUNING';
  numVirtualTokens: number;
  /** (numVirtualTokens, hidden) f32; for PREFIX_TUNING (numVirtualTokens, L·2·Hkv·D), the attention prefix
   *  (src/model/runtime/attention-prefix.ts). */
  embeddings: Float32Array;
  /** It wraps no linear layer. */
  modules: readonly never[];
  warnings: string[];
}

export const PROMPT_PEFT_TYPES = ['PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING'] as const;

/** Any adapter the engine runs: LoRA (kind absent or "lora"), IA³ or a prompt-learning one. */
export type PeftAdapter = (LoraAdapter & { where?: string }) | Ia3Adapter | PromptAdapter;

/** Any adapter the engine runs: a PEFT one, or a bottleneck adapter (Houlsby, Pfeiffer: the studio's own layout,
 *  methods/bottleneck/format.ts, as PEFT has none). */
export type AnyAdapter = PeftAdapter | BottleneckAdapter;

/** The registry method (methods/registry.ts) whose prompt-learning adapter has this peft_type. */
const PROMPT_METHODS = { PROMPT_TUNING: 'prompt-tuning', P_TUNING: 'p-tuning', PREFIX_TUNING: 'prefix-tuning' } as const satisfies Record<PromptAdapter['peftType'], MethodId>;

/** The training method that made `adapter`, by its registry id: what the studio and the CLI name it by
 *  (METHODS[id].label) and what a run continuing it trains (continuationMethod: P-tuning's continues as prompt
 *  tuning). The one place that reads the method off an imported adapter's kind, peft_type, use_dora and AdaLoRA
 *  fields. Full fine-tuning saves the model's weights, not an adapter, so it is never the answer. */
export function adapterMethod(adapter: AnyAdapter): MethodId {
  switch (adapter.kind) {
    case 'bottleneck':
      return adapter.method;
    case 'ia3':
      return 'ia3';
    case 'prompt':
      return PROMPT_METHODS[adapter.peftType];
    default:
      // LoRA's form (kind "lora" or absent): an AdaLoRA adapter is read into it too, and never has use_dora.
      return adapter.dora ? 'dora' : adapter.adalora ? 'adalora' : 'lora';
  }
}

/** importAnyAdapter for what takes PEFT adapters only (merging, GGUF, the studio's runs): a bottleneck adapter is
 *  refused by name. */
export async function importPeftAdapter(source: Uint8Array | ByteSource | ModelFiles, model: ModelConfig, name?: string): Promise<PeftAdapter> {
  const adapter = await importAnyAdapter(source, model, name);
  if (adapter.kind === 'bottleneck') {
    throw new AdapterError(adapter.where, [
      `a ${bottleneckName(adapter.method)} bottleneck adapter: it evaluates and generates here (eval/generate --adapter), but it is not a PEFT adapter and, being non-linear, cannot be merged or exported to GGUF or TRL`,
    ]);
  }
  return adapter;
}

/**
 * Reads an adapter of any method the engine runs (adapter_config.json's peft_type: LORA or IA3; or adapter_type
 * "bottleneck", the studio's layout) and checks it against `model`; every problem is reported at once in one AdapterError naming the file and the tensor.
 */
export async function importAnyAdapter(source: Uint8Array | ByteSource | ModelFiles, model: ModelConfig, name?: string): Promise<AnyAdapter> {
  const folder = await adapterFolder(source, model, name);
  const where = name ?? folder.name;
  const json = await readJsonFile(folder, ADAPTER_CONFIG_FILE);
  if (json === null) throw new AdapterError(where, [`no ${ADAPTER_CONFIG_FILE}`]);
  const peftType = typeof json === 'object' && json !== null ? (json as { peft_type?: unknown }).peft_type : undefined;
  const ia3 = peftType === 'IA3';
  const adalora = peftType === 'ADALORA';
  const prompt = (PROMPT_PEFT_TYPES as readonly unknown[]).includes(peftType);
  const bottleneck = isBottleneckConfig(json);
  const configWhere = `${where}/${ADAPTER_CONFIG_FILE}`;
  const config = bottleneck ? null : adalora ? checkAdaloraConfig(configWhere, json) : ia3 || prompt ? checkIa3Config(configWhere, json) : checkAdapterConfig(configWhere, json);

  const weights = await folder.open(ADAPTER_WEIGHTS_FILE);
  if (!weights) {
    const legacy = await folder.open('adapter_model.bin');
    await legacy?.close?.();
    throw new AdapterError(where, [
      legacy
        ? 'adapter_model.bin is a pickled PyTorch file, which cannot be read safely here; save the adapter with safe_serialization=True (adapter_model.safetensors)'
        : `no ${ADAPTER_WEIGHTS_FILE}`,
    ]);
  }
  const file = await SafetensorsFile.open(weights);
  try {
    if (bottleneck) return await readBottleneckAdapter(where, json, file, model);
    if (ia3) return await readIa3Tensors(where, file, config!, model);
    if (prompt) return await readPromptTensors(where, file, config!, model);
    if (adalora) return { ...(await readAdaloraTensors(where, file, config as PeftAdapterConfig, model)), where };
    return { ...(await readAdapterTensors(where, file, config as PeftAdapterConfig, model)), kind: 'lora', where };
  } finally {
    await file.close();
  }
}

function checkAdapterConfig(where: string, json: unknown): PeftAdapterConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new AdapterError(where, ['not a JSON object']);
  const c = json as Record<string, unknown>;
  const problems: string[] = [];
  if (c.peft_type !== 'LORA') problems.push(`peft_type is ${JSON.stringify(c.peft_type)}; only "LORA", "ADALORA", "IA3", "PROMPT_TUNING", "P_TUNING" and "PREFIX_TUNING" adapters are supported`);
  if (!Number.isInteger(c.r) || (c.r as number) < 1) problems.push(`"r" must be a positive integer, got ${JSON.stringify(c.r)}`);
  const alpha = c.lora_alpha ?? 8; // PEFT's default
  if (typeof alpha !== 'number' || !(alpha > 0)) problems.push(`"lora_alpha" must be a positive number, got ${JSON.stringify(c.lora_alpha)}`);
  if (c.bias !== undefined && c.bias !== 'none') problems.push(`bias is ${JSON.stringify(c.bias)}: only "none" is supported (trained biases are not applied)`);
  if (c.lora_bias === true) problems.push('lora_bias is true: a bias on lora_B is not supported');
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length) problems.push(`modules_to_save ${JSON.stringify(c.modules_to_save)}: fully trained module copies are not supported`);
  for (const key of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = c[key];
    if (v && typeof v === 'object' && Object.keys(v).length) problems.push(`${key} ${JSON.stringify(v)}: per-module ranks or alphas are not supported`);
  }
  if (c.task_type != null && c.task_type !== 'CAUSAL_LM') problems.push(`task_type is ${JSON.stringify(c.task_type)}; expected "CAUSAL_LM"`);
  if (problems.length) throw new AdapterError(where, problems);
  return {
    ...c,
    lora_alpha: alpha as number,
    lora_dropout: typeof c.lora_dropout === 'number' ? c.lora_dropout : 0,
    use_rslora: c.use_rslora === true,
    use_dora: c.use_dora === true,
    fan_in_fan_out: c.fan_in_fan_out === true,
    bias: 'none',
  } as PeftAdapterConfig;
}

// "base_model.model.<path>.lora_A.weight", also without the "base_model.model." prefix and with ".default".
const KEY_RE = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.default)?\.weight$/;
// DoRA's "base_model.model.<path>.lora_magnitude_vector" (PEFT 0.21 saves it without ".weight"), also with
// ".default.weight" or ".weight" and without the prefix.
const MAGNITUDE_RE = /^(?:base_model\.model\.)?(.+)\.lora_magnitude_vector(?:\.default)?(?:\.weight)?$/;

/** The model's linear modules by their full path and by their path without the base-model prefix
 *  ("h.0.attn.c_attn"): how an adapter file's keys name them. */
function modulesByPath(model: ModelConfig, modules: readonly LinearModule[]): Map<string, LinearModule> {
  const prefix = basePrefix(model);
  const byPath = new Map<string, LinearModule>();
  for (const m of modules) {
    byPath.set(m.peftPath, m);
    byPath.set(m.peftPath.slice(prefix.length), m);
  }
  return byPath;
}

async function readAdapterTensors(where: string, file: SafetensorsFile, config: PeftAdapterConfig, model: ModelConfig): Promise<LoraAdapter> {
  const r = config.r;
  const modules = linearModules(model);
  const prefix = basePrefix(model);
  const byPath = modulesByPath(model, modules);
  const problems: string[] = [];
  const found = new Map<LinearModule, { A?: string; B?: string }>();
  const magnitudes = new Map<LinearModule, string>();
  for (const key of file.names()) {
    const magnitude = MAGNITUDE_RE.exec(key);
    if (magnitude) {
      const m = byPath.get(magnitude[1]);
      if (!config.use_dora) problems.push(`tensor "${key}" is a DoRA magnitude, but adapter_config.json has use_dora false`);
      else if (!m) problems.push(`tensor "${key}": the ${model.modelType} model has no linear layer "${magnitude[1]}"`);
      else if (magnitudes.has(m)) problems.push(`tensors "${magnitudes.get(m)}" and "${key}" are both the lora_magnitude_vector of ${m.peftPath}`);
      else {
        magnitudes.set(m, key);
        const shape = file.info(key).shape;
        if (shape.reduce((a, b) => a * b, 1) !== m.outFeatures || shape.length > 2 || (shape.length === 2 && shape[1] !== 1)) {
          problems.push(`tensor "${key}" has shape [${shape.join(', ')}], expected [${m.outFeatures}] (${m.targetName} out_features)`);
        }
      }
      continue;
    }
    const match = KEY_RE.exec(key);
    if (!match) {
      problems.push(`tensor "${key}" is not a LoRA A/B weight of a linear layer (lora_embedding, DoRA magnitudes, biases and modules_to_save are not supported)`);
      continue;
    }
    const [, path, which] = match;
    const m = byPath.get(path);
    if (!m) {
      const names = [...new Set(modules.map((x) => x.targetName))].join(', ');
      problems.push(`tensor "${key}": the ${model.modelType} model has no linear layer "${path}" (its layers are ${prefix}…{${names}} in ${model.numLayers} layers)`);
      continue;
    }
    const pair = found.get(m) ?? {};
    const slot = which as 'A' | 'B';
    if (pair[slot]) {
      problems.push(`tensors "${pair[slot]}" and "${key}" are both lora_${slot} of ${m.peftPath}`);
      continue;
    }
    pair[slot] = key;
    found.set(m, pair);
    const shape = file.info(key).shape;
    const expected = slot === 'A' ? [r, m.inFeatures] : [m.outFeatures, r];
    if (shape.length !== 2 || shape[0] !== expected[0] || shape[1] !== expected[1]) {
      problems.push(`tensor "${key}" has shape [${shape.join(', ')}], expected [${expected.join(', ')}] (r = ${r}, ${m.targetName} in_features ${m.inFeatures}, out_features ${m.outFeatures})`);
    }
  }
  for (const [m, pair] of found) {
    if (!pair.A || !pair.B) problems.push(`${m.peftPath} has lora_${pair.A ? 'A' : 'B'} but no lora_${pair.A ? 'B' : 'A'}`);
    if (config.use_dora && !magnitudes.has(m)) problems.push(`${m.peftPath} has lora_A and lora_B but no lora_magnitude_vector, which use_dora true needs`);
  }
  for (const m of magnitudes.keys()) if (!found.has(m)) problems.push(`${m.peftPath} has a lora_magnitude_vector but no lora_A and lora_B`);
  if (found.size === 0 && problems.length === 0) problems.push(`${ADAPTER_WEIGHTS_FILE} holds no LoRA tensors`);
  if (problems.length) throw new AdapterError(where, problems);

  const warnings: string[] = [];
  if (config.target_modules) {
    try {
      const present = new Set([...found.keys()].map((m) => m.peftPath));
      for (const m of selectTargetModules(model, config.target_modules)) {
        if (!present.has(m.peftPath)) warnings.push(`target_modules selects ${m.peftPath}, but the adapter has no weights for it (it stays at the base model)`);
      }
    } catch {
      warnings.push(`target_modules ${JSON.stringify(config.target_modules)} selects none of this model's layers; using the tensors the file holds`);
    }
  }

  const out: AdapterModule[] = [];
  for (const m of modules) {
    const pair = found.get(m);
    if (!pair) continue;
    const A = await file.readTensor(pair.A!, 'f32');
    const B = await file.readTensor(pair.B!, 'f32');
    const mag = magnitudes.get(m);
    const magnitude = mag ? { magnitude: owned(await file.readTensor(mag, 'f32')) } : {};
    out.push({ peftPath: m.peftPath, inFeatures: m.inFeatures, outFeatures: m.outFeatures, A: owned(A), B: owned(B), module: m, ...magnitude });
  }
  const rslora = config.use_rslora;
  return {
    config,
    rank: r,
    alpha: config.lora_alpha,
    rslora,
    scale: loraScale(config.lora_alpha, r, rslora),
    dropout: config.lora_dropout,
    ...(config.use_dora && { dora: true }),
    modules: out,
    warnings,
  };
}

function checkIa3Config(where: string, json: unknown): Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new AdapterError(where, ['not a JSON object']);
  const c = json as Record<string, unknown>;
  const problems: string[] = [];
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length) problems.push(`modules_to_save ${JSON.stringify(c.modules_to_save)}: fully trained module copies are not supported`);
  if (c.task_type != null && c.task_type !== 'CAUSAL_LM') problems.push(`task_type is ${JSON.stringify(c.task_type)}; expected "CAUSAL_LM"`);
  if (c.feedforward_modules != null && typeof c.feedforward_modules !== 'string' && !Array.isArray(c.feedforward_modules)) {
    problems.push(`feedforward_modules must be a list of module names or a regular expression, got ${JSON.stringify(c.feedforward_modules)}`);
  }
  if (problems.length) throw new AdapterError(where, problems);
  return c;
}

// "base_model.model.<path>.ia3_l", also without the prefix and with ".default".
const IA3_KEY_RE = /^(?:base_model\.model\.)?(.+)\.ia3_l(?:\.default)?$/;

/** IA³ tensors: one ia3_l per scaled linear layer, [out, 1] on a layer whose output it scales, [1, in] on a
 *  feed-forward layer (feedforward_modules, matched as PEFT does: a path ending with an entry, or a regular
 *  expression). The shape must say the same as the config. */
async function readIa3Tensors(where: string, file: SafetensorsFile, config: Record<string, unknown>, model: ModelConfig): Promise<Ia3Adapter> {
  const modules = linearModules(model);
  const byPath = modulesByPath(model, modules);
  const ff = config.feedforward_modules;
  const isFeedforward = (m: LinearModule) =>
    typeof ff === 'string' ? new RegExp(`^(?:${ff})$`).test(m.peftPath) : Array.isArray(ff) && ff.some((f) => typeof f === 'string' && m.peftPath.endsWith(f));
  const problems: string[] = [];
  const found = new Map<LinearModule, string>();
  for (const key of file.names()) {
    const match = IA3_KEY_RE.exec(key);
    const m = match ? byPath.get(match[1]) : undefined;
    if (!match) {
      problems.push(`tensor "${key}" is not an IA³ vector (ia3_l) of a linear layer`);
      continue;
    }
    if (!m) {
      problems.push(`tensor "${key}": the ${model.modelType} model has no linear layer "${match[1]}"`);
      continue;
    }
    if (found.has(m)) {
      problems.push(`tensors "${found.get(m)}" and "${key}" are both the ia3_l of ${m.peftPath}`);
      continue;
    }
    found.set(m, key);
    const shape = file.info(key).shape;
    const expected = isFeedforward(m) ? [1, m.inFeatures] : [m.outFeatures, 1];
    if (shape.length !== 2 || shape[0] !== expected[0] || shape[1] !== expected[1]) {
      problems.push(`tensor "${key}" has shape [${shape.join(', ')}], expected [${expected.join(', ')}] (${isFeedforward(m) ? 'a feed-forward module scales its input' : 'it scales the output'}: in_features ${m.inFeatures}, out_features ${m.outFeatures})`);
    }
  }
  if (found.size === 0 && problems.length === 0) problems.push(`${ADAPTER_WEIGHTS_FILE} holds no IA³ tensors`);
  if (problems.length) throw new AdapterError(where, problems);
  const out: Ia3AdapterModule[] = [];
  for (const m of modules) {
    const key = found.get(m);
    if (!key) continue;
    const l = owned(await file.readTensor(key, 'f32'));
    const bad = l.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new AdapterError(where, [`tensor "${key}" holds ${l[bad]} at ${bad}`]);
    out.push({ module: m, peftPath: m.peftPath, feedforward: isFeedforward(m), l });
  }
  return { kind: 'ia3', where, config, modules: out, warnings: [] };
}

/** The prompt table: one "prompt_embeddings" [num_virtual_tokens, hidden] (num_transformer_submodules 1, as a causal
 *  LM has), token_dim the model's hidden size. */
async function readPromptTensors(where: string, file: SafetensorsFile, config: Record<string, unknown>, model: ModelConfig): Promise<PromptAdapter> {
  const problems: string[] = [];
  const prefix = config.peft_type === 'PREFIX_TUNING';
  const n = config.num_virtual_tokens;
  if (!Number.isInteger(n) || (n as number) < 1) problems.push(`num_virtual_tokens must be a positive integer, got ${JSON.stringify(n)}`);
  const sub = config.num_transformer_submodules ?? 1;
  if (sub !== 1) problems.push(`num_transformer_submodules is ${JSON.stringify(sub)}; a causal LM has 1`);
  // Prefix tuning: token_dim is the key/value width Hkv·D, and the table holds 2 of it per layer.
  const tokenDim = prefix ? model.numKvHeads * model.headDim : model.hiddenSize;
  const width = prefix ? model.numLayers * 2 * tokenDim : tokenDim;
  const what = prefix ? `the ${model.modelType} model's key/value width (${model.numKvHeads} heads × ${model.headDim})` : `the ${model.modelType} model's hidden size`;
  if (config.token_dim != null && config.token_dim !== tokenDim) problems.push(`token_dim is ${JSON.stringify(config.token_dim)}, but ${what} is ${tokenDim}`);
  if (prefix && config.num_layers != null && config.num_layers !== model.numLayers) problems.push(`num_layers is ${JSON.stringify(config.num_layers)}, but the ${model.modelType} model has ${model.numLayers} layers`);
  if (prefix && config.num_attention_heads != null && config.num_attention_heads !== model.numKvHeads) {
    problems.push(`num_attention_heads is ${JSON.stringify(config.num_attention_heads)}, but the ${model.modelType} model has ${model.numKvHeads} key/value heads (PEFT sizes the prefix by them)`);
  }
  const names = file.names();
  for (const key of names) if (key !== 'prompt_embeddings') problems.push(`tensor "${key}" is not a prompt table (prompt_embeddings)`);
  if (!names.includes('prompt_embeddings')) problems.push(`${ADAPTER_WEIGHTS_FILE} holds no prompt_embeddings`);
  else {
    const shape = file.info('prompt_embeddings').shape;
    if (shape.length !== 2 || shape[0] !== n || shape[1] !== width) {
      const cols = prefix ? 'layers × 2 × key/value width' : 'hidden size';
      problems.push(`tensor "prompt_embeddings" has shape [${shape.join(', ')}], expected [${n}, ${width}] (num_virtual_tokens, ${cols})`);
    }
  }
  if (problems.length) throw new AdapterError(where, problems);
  const embeddings = owned(await file.readTensor('prompt_embeddings', 'f32'));
  const bad = embeddings.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new AdapterError(where, [`tensor "prompt_embeddings" holds ${embeddings[bad]} at ${bad}`]);
  const peftType = config.peft_type as PromptAdapter['peftType'];
  const warnings =
    peftType === 'P_TUNING'
      ? ['a P-tuning adapter holds its prompt encoder\'s output only (PEFT saves no MLP): it runs and continues as plain virtual embeddings (prompt tuning)']
      : peftType === 'PREFIX_TUNING' && config.prefix_projection === true
        ? ['a prefix adapter trained with prefix_projection holds the projection\'s output only (PEFT saves no MLP): it runs and continues as a plain prefix table']
        : [];
  return { kind: 'prompt', where, config, peftType, numVirtualTokens: n as number, embeddings, modules: [], warnings };
}

/** A Float32Array that owns its buffer (a tensor read as F32 may be a view into a larger read). */
function owned(a: Float32Array): Float32Array {
  return a.byteOffset === 0 && a.buffer.byteLength === a.byteLength ? a : a.slice();
}
