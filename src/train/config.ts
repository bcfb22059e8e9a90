// The training configuration: one typed object for the UI form, the CLI flags and the worker, validated once at the
// boundary (as PEFT's LoraConfig.__post_init__ does). Every error names the field, its value and the valid range.

import { METHOD_IDS, type MethodId } from './methods/ids.ts';

export type { MethodId };
/** Base-weight quantization, an axis of its own: every method that wraps linear layers trains over NF4 too. */
export type Quant = 'none' | 'nf4';
export const QUANTS: readonly Quant[] = ['none', 'nf4'];
export type Schedule = 'cosine' | 'linear' | 'constant';

export interface TrainConfig {
  /** The PEFT method (src/train/methods/registry.ts). QLoRA is method lora with quant nf4. */
  method: MethodId;
  /** Storage of the frozen linear layers while training: as loaded, or NF4 (bitsandbytes' layout). */
  quant: Quant;
  /** LoRA rank r. */
  rank: number;
  /** LoRA alpha; the update is scaled by alpha / r (alpha / √r with rsLoRA). */
  alpha: number;
  dropout: number;
  /** Module names (e.g. q_proj, v_proj, c_attn); or one alias: 'all-linear' (every linear layer but the head, as PEFT)
   *  or 'attention' (every attention projection); empty = the architecture's PEFT default. */
  targets: string[];
  rslora: boolean;
  /** LoRA+: B's learning rate is lr × this ratio (1 = plain LoRA). */
  loraPlusRatio: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  schedule: Schedule;
  /** Warmup in optimizer steps; when null, warmupRatio of the total steps. */
  warmupSteps: number | null;
  warmupRatio: number;
  /** Stop after this many optimizer steps; when null, after `epochs` passes over the data. */
  maxSteps: number | null;
  epochs: number;
  batchSize: number;
  gradAccum: number;
  maxLength: number;
  maxGradNorm: number;
  /** Fraction of rows held out for evaluation (0 = none unless an eval file is given). */
  evalSplit: number;
  /** Evaluate every N optimizer steps (0 = only at the end). */
  evalEvery: number;
  /** Stop when eval loss has not improved for this many evaluations (0 = never). */
  earlyStoppingPatience: number;
  /** Checkpoint every N optimizer steps (and always at stop). */
  checkpointEvery: number;
  /** Train on prompt tokens too (default: only completions / assistant turns). */
  trainOnPrompt: boolean;
  packing: boolean;
  seed: number;
  /** NF4: quantize the absmax values too (bitsandbytes' compress_statistics). */
  doubleQuant: boolean;
  /** Prompt tuning and P-tuning: the virtual tokens ahead of every row (PEFT's num_virtual_tokens). */
  numVirtualTokens: number;
  /** Prompt tuning: the virtual tokens start as N(0, 1) values (PEFT's RANDOM) or as the embeddings of
   *  promptInitText's tokens, cycled or cut to numVirtualTokens (TEXT). */
  promptInit: PromptInit;
  promptInitText: string;
  /** P-tuning: the prompt encoder MLP's hidden size (PEFT's encoder_hidden_size); null = the model's hidden size.
   *  Prefix tuning with prefixProjection: the reparameterisation MLP's hidden size; null = PEFT's token_dim (the
   *  key/value width, numKvHeads × headDim). */
  encoderHiddenSize: number | null;
  /** P-tuning: the prompt encoder's reparameterisation (PEFT's encoder_reparameterization_type): the MLP, or the
   *  bidirectional LSTM followed by a two-layer MLP head. */
  encoderType: PromptEncoderType;
  /** P-tuning with the LSTM encoder: its stacked layers (PEFT's encoder_num_layers; the MLP ignores it, as PEFT). */
  encoderNumLayers: number;
  /** P-tuning: PEFT's encoder_dropout, the LSTM's dropout between its layers (the MLP has none). Only 0 trains with
   *  more than one layer: torch's dropout masks cannot be reproduced. */
  encoderDropout: number;
  /** Prefix tuning: train the key/value prefix through PEFT's reparameterisation MLP (prefix_projection). */
  prefixProjection: boolean;
  /** Bottleneck adapters (houlsby, pfeiffer): the bottleneck is max(1, ⌊out_features / this⌋) wide. */
  reductionFactor: number;
  /** Bottleneck adapters: the non-linearity between the down- and up-projection. */
  adapterActivation: 'relu' | 'gelu_new' | 'silu';
  /** AdaLoRA (PEFT's AdaLoraConfig): every triplet's rank at the start (init_r), and the average rank the budget
   *  ends at (target_r). */
  initR: number;
  targetR: number;
  /** AdaLoRA's schedule in optimizer steps: warmup without masking (tinit), the final phase with the rank pattern
   *  fixed (tfinal), the interval between budget steps (deltaT), and the total it is planned over (total_step; null =
   *  the run's own number of steps). */
  tinit: number;
  tfinal: number;
  deltaT: number;
  totalStep: number | null;
  /** AdaLoRA's EMA factors of the importance and its uncertainty (PEFT's beta1, beta2: not AdamW's). */
  adaloraBeta1: number;
  adaloraBeta2: number;
  /** AdaLoRA: the orthogonality regulariser's weight in the loss (orth_reg_weight). */
  orthRegWeight: number;
}

export type PromptEncoderType = 'mlp' | 'lstm';
export const PROMPT_ENCODER_TYPES: readonly PromptEncoderType[] = ['mlp', 'lstm'];

export type PromptInit = 'random' | 'text';
export const PROMPT_INITS: readonly PromptInit[] = ['random', 'text'];

/** The CLI's defaults, as issue #5 fixes them (rank 8, alpha 16, lr 2e-4, batch 4, max length 512, 1 epoch, 3%
 *  warmup, cosine, seed 42), with PEFT's and the HF Trainer's defaults elsewhere. */
export const DEFAULT_CONFIG: TrainConfig = {
  method: 'lora',
  quant: 'none',
  rank: 8,
  alpha: 16,
  dropout: 0,
  targets: [],
  rslora: false,
  loraPlusRatio: 1,
  lr: 2e-4,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  schedule: 'cosine',
  warmupSteps: null,
  warmupRatio: 0.03,
  maxSteps: null,
  epochs: 1,
  batchSize: 4,
  gradAccum: 1,
  maxLength: 512,
  maxGradNorm: 1,
  evalSplit: 0,
  evalEvery: 0,
  earlyStoppingPatience: 0,
  checkpointEvery: 50,
  trainOnPrompt: false,
  packing: false,
  seed: 42,
  doubleQuant: false,
  numVirtualTokens: 20,
  promptInit: 'random',
  promptInitText: '',
  encoderHiddenSize: null,
  encoderType: 'mlp',
  encoderNumLayers: 2,
  encoderDropout: 0,
  prefixProjection: false,
  reductionFactor: 16,
  adapterActivation: 'relu',
  initR: 12,
  targetR: 8,
  tinit: 0,
  tfinal: 0,
  deltaT: 1,
  totalStep: null,
  adaloraBeta1: 0.85,
  adaloraBeta2: 0.85,
  orthRegWeight: 0.5,
};

export { applyPreset, PRESET_NAMES, PRESETS, type PresetName } from './presets.ts';

export interface FieldError {
  field: keyof TrainConfig;
  message: string;
}

type NumberRule = { min: number; max: number; integer?: boolean; minExclusive?: boolean };

const NUMBER_RULES: Partial<Record<keyof TrainConfig, NumberRule>> = {
  rank: { min: 1, max: 1024, integer: true },
  alpha: { min: 0, max: 1e6, minExclusive: true },
  dropout: { min: 0, max: 0.9 },
  loraPlusRatio: { min: 1, max: 1000 },
  lr: { min: 0, max: 1, minExclusive: true },
  beta1: { min: 0, max: 0.9999 },
  beta2: { min: 0, max: 0.99999 },
  eps: { min: 0, max: 1e-2, minExclusive: true },
  weightDecay: { min: 0, max: 1 },
  warmupRatio: { min: 0, max: 0.5 },
  epochs: { min: 1, max: 1000, integer: true },
  batchSize: { min: 1, max: 1024, integer: true },
  gradAccum: { min: 1, max: 1024, integer: true },
  maxLength: { min: 8, max: 32768, integer: true },
  maxGradNorm: { min: 0, max: 1e6, minExclusive: true },
  evalSplit: { min: 0, max: 0.5 },
  evalEvery: { min: 0, max: 1e7, integer: true },
  earlyStoppingPatience: { min: 0, max: 1000, integer: true },
  checkpointEvery: { min: 1, max: 1e7, integer: true },
  seed: { min: 0, max: 2 ** 32 - 1, integer: true },
  numVirtualTokens: { min: 1, max: 1024, integer: true },
  reductionFactor: { min: 1, max: 4096 },
  encoderNumLayers: { min: 1, max: 16, integer: true },
  encoderDropout: { min: 0, max: 0.9 },
  initR: { min: 1, max: 1024, integer: true },
  targetR: { min: 1, max: 1024, integer: true },
  tinit: { min: 0, max: 1e7, integer: true },
  tfinal: { min: 0, max: 1e7, integer: true },
  deltaT: { min: 1, max: 1e7, integer: true },
  // RankAllocator asserts 0 < beta < 1.
  adaloraBeta1: { min: 0, max: 0.9999, minExclusive: true },
  adaloraBeta2: { min: 0, max: 0.9999, minExclusive: true },
  orthRegWeight: { min: 0, max: 1e6 },
};

function describeRange(r: NumberRule): string {
  const lo = `${r.minExclusive ? '>' : '≥'} ${r.min}`;
  return `${r.integer ? 'an integer ' : 'a number '}${lo} and ≤ ${r.max}`;
}

/** Every problem with a config, each naming the field, the value and what would be valid. */
export function validateConfig(c: TrainConfig): FieldError[] {
  const errors: FieldError[] = [];
  for (const [field, rule] of Object.entries(NUMBER_RULES) as [keyof TrainConfig, NumberRule][]) {
    const v = c[field] as unknown;
    const ok =
      typeof v === 'number' &&
      Number.isFinite(v) &&
      (rule.minExclusive ? v > rule.min : v >= rule.min) &&
      v <= rule.max &&
      (!rule.integer || Number.isInteger(v));
    if (!ok) errors.push({ field, message: `${field} = ${JSON.stringify(v)}: must be ${describeRange(rule)}` });
  }
  for (const [field, nullableRule] of [
    ['warmupSteps', { min: 0, max: 1e7, integer: true }],
    ['maxSteps', { min: 1, max: 1e7, integer: true }],
    ['encoderHiddenSize', { min: 1, max: 65536, integer: true }],
    ['totalStep', { min: 1, max: 1e7, integer: true }],
  ] as const) {
    const v = c[field];
    if (v !== null && !(Number.isInteger(v) && v >= nullableRule.min && v <= nullableRule.max)) {
      errors.push({ field, message: `${field} = ${JSON.stringify(v)}: must be empty or ${describeRange(nullableRule)}` });
    }
  }
  if (!(METHOD_IDS as readonly string[]).includes(c.method)) {
    errors.push({ field: 'method', message: `method = ${JSON.stringify(c.method)}: must be one of ${METHOD_IDS.join(', ')} (qlora = lora with quant nf4)` });
  }
  if (!QUANTS.includes(c.quant)) errors.push({ field: 'quant', message: `quant = ${JSON.stringify(c.quant)}: must be none or nf4` });
  if (!['cosine', 'linear', 'constant'].includes(c.schedule)) {
    errors.push({ field: 'schedule', message: `schedule = ${JSON.stringify(c.schedule)}: must be cosine, linear or constant` });
  }
  if (!Array.isArray(c.targets) || c.targets.some((t) => typeof t !== 'string' || !/^[\w.-]+$/.test(t))) {
    errors.push({ field: 'targets', message: `targets = ${JSON.stringify(c.targets)}: must be module names like q_proj, or all-linear` });
  }
  if (!PROMPT_INITS.includes(c.promptInit)) errors.push({ field: 'promptInit', message: `promptInit = ${JSON.stringify(c.promptInit)}: must be random or text` });
  if (!PROMPT_ENCODER_TYPES.includes(c.encoderType)) {
    errors.push({ field: 'encoderType', message: `encoderType = ${JSON.stringify(c.encoderType)}: must be mlp or lstm` });
  }
  if (typeof c.promptInitText !== 'string') errors.push({ field: 'promptInitText', message: `promptInitText = ${JSON.stringify(c.promptInitText)}: must be a string` });
  if (!['relu', 'gelu_new', 'silu'].includes(c.adapterActivation)) {
    errors.push({ field: 'adapterActivation', message: `adapterActivation = ${JSON.stringify(c.adapterActivation)}: must be relu, gelu_new or silu` });
  }
  if (typeof c.prefixProjection !== 'boolean') errors.push({ field: 'prefixProjection', message: `prefixProjection = ${JSON.stringify(c.prefixProjection)}: must be true or false` });
  if (c.doubleQuant && c.quant !== 'nf4') {
    errors.push({ field: 'doubleQuant', message: 'doubleQuant = true: only applies to quant nf4 (QLoRA)' });
  }
  return errors;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly errors: FieldError[]) {
    super(errors.map((e) => e.message).join('; '));
  }
}

/**
 * A config as saved before quantization was its own axis (method "qlora", no quant field: run records in IndexedDB,
 * CLI checkpoints, imported runs) or given the old way (`--method qlora`), as today's: method lora with quant nf4.
 * Anything else passes through unchanged for validateConfig to judge.
 */
export function normalizeConfig<T extends Partial<TrainConfig>>(config: T): T {
  const c = config;
  const legacy = c as { method?: string };
  if (legacy.method === 'qlora') return withLaterFields({ ...c, method: 'lora', quant: 'nf4' });
  if (c.method !== undefined && c.quant === undefined) return withLaterFields({ ...c, quant: 'none' });
  return withLaterFields(c);
}

/** Fields added after runs were first saved: a saved config without them (complete otherwise) takes their defaults,
 *  so re-running, continuing or resuming an older run validates. A partial config (overrides) is left alone. */
const LATER_FIELDS: readonly (keyof TrainConfig)[] = [
  'numVirtualTokens', 'promptInit', 'promptInitText', 'encoderHiddenSize', 'prefixProjection', 'reductionFactor', 'adapterActivation',
  'encoderType', 'encoderNumLayers', 'encoderDropout',
  'initR', 'targetR', 'tinit', 'tfinal', 'deltaT', 'totalStep', 'adaloraBeta1', 'adaloraBeta2', 'orthRegWeight',
];

function withLaterFields<T extends Partial<TrainConfig>>(c: T): T {
  const keys = Object.keys(DEFAULT_CONFIG) as (keyof TrainConfig)[];
  const complete = keys.every((k) => k in c || k === 'quant' || LATER_FIELDS.includes(k));
  if (!complete || LATER_FIELDS.every((k) => k in c)) return c;
  return { ...Object.fromEntries(LATER_FIELDS.map((k) => [k, DEFAULT_CONFIG[k]])), ...c };
}

/** A complete, valid config from defaults plus overrides; throws ConfigError listing every problem. */
export function resolveConfig(overrides: Partial<TrainConfig>, base: TrainConfig = DEFAULT_CONFIG): TrainConfig {
  if ((overrides as { method?: string }).method === 'qlora' && overrides.quant === 'none') {
    throw new ConfigError([{ field: 'quant', message: 'quant = "none": contradicts method qlora (LoRA over an NF4 base)' }]);
  }
  const config = normalizeConfig({ ...base, ...normalizeConfig(overrides) });
  const errors = validateConfig(config);
  if (errors.length) throw new ConfigError(errors);
  return config;
}
