// The canonical weight names of every architecture, the checkpoint names they come from, the tensors each config
// expects (with shapes), and the linear modules as PEFT names them.
//
// Canonical names are one scheme for every architecture, so the forward pass reads the same names everywhere:
//
//   embed.weight                        (V, H)           token embeddings
//   pos_embed.weight                    (P, H)           learned positions (GPT-2)
//   layers.N.attn_norm.{weight,bias}    (H)              bias only for LayerNorm
//   layers.N.attn.qkv.{weight,bias}     (H, 3H) Conv1D   GPT-2's fused projection, [in, out]
//   layers.N.attn.{q,k,v}.{weight,bias} (heads·hd, H)    Llama family, [out, in]
//   layers.N.attn.{q,k}_norm.weight     (hd)             Qwen3
//   layers.N.attn.o.{weight,bias}       (H, heads·hd)    (H, H) Conv1D for GPT-2
//   layers.N.mlp_norm.{weight,bias}     (H)
//   layers.N.mlp.{gate,up,down}.{weight,bias}            gate only for SwiGLU; GPT-2's up/down are Conv1D
//   final_norm.{weight,bias}            (H)
//   lm_head.weight                      (V, H)           resolved to embed.weight when tied
//
// Checkpoint names are accepted with or without the base model's prefix ("transformer." for GPT-2, "model." for the
// Llama family), as transformers does. Buffers that are not weights (GPT-2's attn.bias / attn.masked_bias causal
// masks, rotary_emb.inv_freq) are ignored.

import type { ModelConfig, ModelType } from './config.ts';
import type { ModelDims } from './memory.ts';

export type TensorLayout = 'embedding' | 'linear' | 'conv1d' | 'vector';

export interface ExpectedTensor {
  canonical: string;
  /** The name transformers' *ForCausalLM saves, e.g. "model.layers.0.self_attn.q_proj.weight". */
  hfName: string;
  /** The shape as stored in the checkpoint. */
  shape: number[];
  layout: TensorLayout;
  /** The layer index, or null for embeddings, the final norm and the head. */
  layer: number | null;
}

/** A linear layer as PEFT sees it, and where its weights are. */
export interface LinearModule {
  /** The canonical module name, e.g. "layers.0.attn.q"; its weight is `${canonical}.weight`. */
  canonical: string;
  /** PEFT's module path inside the *ForCausalLM, e.g. "model.layers.0.self_attn.q_proj"; the adapter's keys are
   *  "base_model.model." + peftPath + ".lora_A.weight". */
  peftPath: string;
  /** The last path component, what target_modules usually lists ("q_proj", "c_attn"). */
  targetName: string;
  layer: number;
  inFeatures: number;
  outFeatures: number;
  /** GPT-2's Conv1D stores [in, out]: LoraConfig(fan_in_fan_out=True). */
  fanInFanOut: boolean;
  hasBias: boolean;
}

/** What fixes a model's linear layers (names, shapes, biases): a ModelConfig has it, and so does a catalogue entry's
 *  architecture numbers (linearArchFromDims), so the memory estimate before a download lists the same modules. */
export type LinearArch = Pick<
  ModelConfig,
  'family' | 'numLayers' | 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim' | 'qkvBias' | 'attnOutputBias' | 'mlpBias' | 'linearLayout'
>;

/** A catalogue entry's (or a model summary's) architecture numbers as the linear layers they imply: a 2-matrix MLP
 *  is GPT-2's Conv1D block, a gated one the Llama family's. */
export function linearArchFromDims(d: ModelDims): LinearArch {
  const gpt2 = !d.gatedMlp;
  return {
    family: gpt2 ? 'gpt2' : 'llama',
    numLayers: d.numLayers,
    hiddenSize: d.hiddenSize,
    intermediateSize: d.intermediateSize,
    numHeads: d.numHeads,
    numKvHeads: d.numKvHeads,
    headDim: d.headDim,
    qkvBias: d.linearBias !== 'none',
    attnOutputBias: d.linearBias === 'all',
    mlpBias: d.linearBias === 'all',
    linearLayout: gpt2 ? 'conv1d' : 'linear',
  };
}

/** The base model's attribute name in *ForCausalLM, the prefix of every weight but lm_head. */
export function basePrefix(config: Pick<ModelConfig, 'family'>): string {
  return config.family === 'gpt2' ? 'transformer.' : 'model.';
}

// ---------------------------------------------------------------------------------------------------------------
// Linear modules

/** Every linear layer of the model, in forward order (lm_head excluded: PEFT's "all-linear" excludes it too). */
export function linearModules(config: LinearArch): LinearModule[] {
  const H = config.hiddenSize;
  const I = config.intermediateSize;
  const qOut = config.numHeads * config.headDim;
  const kvOut = config.numKvHeads * config.headDim;
  const out: LinearModule[] = [];
  const prefix = basePrefix(config);
  for (let i = 0; i < config.numLayers; i++) {
    const add = (canonical: string, hfModule: string, inFeatures: number, outFeatures: number, hasBias: boolean) =>
      out.push({
        canonical: `layers.${i}.${canonical}`,
        peftPath: `${prefix}${config.family === 'gpt2' ? 'h' : 'layers'}.${i}.${hfModule}`,
        targetName: hfModule.slice(hfModule.lastIndexOf('.') + 1),
        layer: i,
        inFeatures,
        outFeatures,
        fanInFanOut: config.linearLayout === 'conv1d',
        hasBias,
      });
    if (config.family === 'gpt2') {
      add('attn.qkv', 'attn.c_attn', H, 3 * H, true);
      add('attn.o', 'attn.c_proj', H, H, true);
      add('mlp.up', 'mlp.c_fc', H, I, true);
      add('mlp.down', 'mlp.c_proj', I, H, true);
    } else {
      add('attn.q', 'self_attn.q_proj', H, qOut, config.qkvBias);
      add('attn.k', 'self_attn.k_proj', H, kvOut, config.qkvBias);
      add('attn.v', 'self_attn.v_proj', H, kvOut, config.qkvBias);
      add('attn.o', 'self_attn.o_proj', qOut, H, config.attnOutputBias);
      add('mlp.gate', 'mlp.gate_proj', H, I, config.mlpBias);
      add('mlp.up', 'mlp.up_proj', H, I, config.mlpBias);
      add('mlp.down', 'mlp.down_proj', I, H, config.mlpBias);
    }
  }
  return out;
}

/** PEFT's default target_modules per model_type (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const PEFT_DEFAULT_TARGET_MODULES: Record<ModelType, string[]> = {
  gpt2: ['c_attn'],
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  qwen3: ['q_proj', 'v_proj'],
};

/**
 * The linear modules a LoraConfig's target_modules selects, with PEFT's rules: "all-linear" (any case) is every
 * linear but the output head; a list matches a module whose path equals an entry or ends with "." + entry; a single
 * string is a regular expression the whole path must match. Nothing selected is an error naming what was asked.
 */
export function selectTargetModules(config: LinearArch & Pick<ModelConfig, 'modelType'>, targets: string | string[] = PEFT_DEFAULT_TARGET_MODULES[config.modelType]): LinearModule[] {
  const modules = linearModules(config);
  let selected: LinearModule[];
  if (typeof targets === 'string') {
    if (targets.toLowerCase() === 'all-linear') return modules;
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targets})$`);
    } catch (e) {
      throw new Error(`target_modules ${JSON.stringify(targets)} is not a valid regular expression (${(e as Error).message})`);
    }
    selected = modules.filter((m) => re.test(m.peftPath));
  } else {
    selected = modules.filter((m) => targets.some((t) => m.peftPath === t || m.peftPath.endsWith(`.${t}`)));
  }
  if (selected.length === 0) {
    const names = [...new Set(modules.map((m) => m.targetName))].join(', ');
    throw new Error(`target_modules ${JSON.stringify(targets)} matches no linear layer of this ${config.modelType} model (its linear layers: ${names}, or "all-linear")`);
  }
  return selected;
}

// ---------------------------------------------------------------------------------------------------------------
// Expected tensors

/** Every tensor the forward pass needs, with its checkpoint name and shape. lm_head is listed only when untied. */
export function expectedTensors(config: ModelConfig): ExpectedTensor[] {
  const H = config.hiddenSize;
  const V = config.vocabSize;
  const prefix = basePrefix(config);
  const gpt2 = config.family === 'gpt2';
  const layerNormBias = config.norm.kind === 'layernorm';
  const out: ExpectedTensor[] = [];
  const add = (canonical: string, hfName: string, shape: number[], layout: TensorLayout, layer: number | null) =>
    out.push({ canonical, hfName, shape, layout, layer });
  const norm = (canonical: string, hfModule: string, layer: number | null) => {
    add(`${canonical}.weight`, `${hfModule}.weight`, [H], 'vector', layer);
    if (layerNormBias) add(`${canonical}.bias`, `${hfModule}.bias`, [H], 'vector', layer);
  };

  add('embed.weight', `${prefix}${gpt2 ? 'wte' : 'embed_tokens'}.weight`, [V, H], 'embedding', null);
  if (config.positions.kind === 'learned') add('pos_embed.weight', `${prefix}wpe.weight`, [config.maxPositions, H], 'embedding', null);
  const linears = linearModules(config);
  const addLinear = (m: LinearModule) => {
    const shape = m.fanInFanOut ? [m.inFeatures, m.outFeatures] : [m.outFeatures, m.inFeatures];
    add(`${m.canonical}.weight`, `${m.peftPath}.weight`, shape, m.fanInFanOut ? 'conv1d' : 'linear', m.layer);
    if (m.hasBias) add(`${m.canonical}.bias`, `${m.peftPath}.bias`, [m.outFeatures], 'vector', m.layer);
  };
  for (let i = 0; i < config.numLayers; i++) {
    const layerPath = `${prefix}${gpt2 ? 'h' : 'layers'}.${i}`;
    const inLayer = linears.filter((l) => l.layer === i);
    norm(`layers.${i}.attn_norm`, `${layerPath}.${gpt2 ? 'ln_1' : 'input_layernorm'}`, i);
    inLayer.filter((m) => m.canonical.includes('.attn.')).forEach(addLinear);
    if (config.qkNorm) {
      add(`layers.${i}.attn.q_norm.weight`, `${layerPath}.self_attn.q_norm.weight`, [config.headDim], 'vector', i);
      add(`layers.${i}.attn.k_norm.weight`, `${layerPath}.self_attn.k_norm.weight`, [config.headDim], 'vector', i);
    }
    norm(`layers.${i}.mlp_norm`, `${layerPath}.${gpt2 ? 'ln_2' : 'post_attention_layernorm'}`, i);
    inLayer.filter((m) => m.canonical.includes('.mlp.')).forEach(addLinear);
  }
  norm('final_norm', `${prefix}${gpt2 ? 'ln_f' : 'norm'}`, null);
  if (!config.tieWordEmbeddings) add('lm_head.weight', 'lm_head.weight', [V, H], 'linear', null);
  return out;
}

/** Checkpoint names that are buffers, not weights: GPT-2's causal masks and cached rotary frequencies. */
const IGNORED_BUFFERS = [/(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/, /(^|\.)rotary_emb\.inv_freq$/];

/** A checkpoint name without the base-model prefix, so "transformer.h.0.ln_1.weight" and "h.0.ln_1.weight" agree. */
function unprefixed(config: ModelConfig, name: string): string {
  const prefix = basePrefix(config);
  return name.startsWith(prefix) ? name.slice(prefix.length) : name;
}

// ---------------------------------------------------------------------------------------------------------------
// Resolution against a checkpoint

export interface ResolvedTensor {
  expected: ExpectedTensor;
  /** The checkpoint's name for it (for lm_head when tied: the embedding's). */
  source: string;
}

export interface WeightReport {
  /** canonical → where to read it; complete only when `problems` is empty. lm_head.weight is always present. */
  tensors: Map<string, ResolvedTensor>;
  missing: ExpectedTensor[];
  unexpected: string[];
  wrongShape: { expected: ExpectedTensor; source: string; shape: number[] }[];
  /** Non-weight buffers and a redundant lm_head of a tied model: skipped on purpose. */
  ignored: string[];
  /** Loadable but worth saying (an untied model without lm_head, tied to the embeddings). */
  warnings: string[];
  /** Human-readable, one line each; empty when the checkpoint matches the config. */
  problems: string[];
}

export class WeightsError extends Error {
  constructor(
    readonly where: string,
    readonly problems: string[],
  ) {
    const shown = problems.slice(0, 12);
    const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more` : '';
    super(`${where}: the checkpoint does not match config.json:\n  ${shown.join('\n  ')}${more}`);
    this.name = 'WeightsError';
  }
}

/**
 * Matches a checkpoint's tensors (name → shape) against what the config expects. Reports, rather than throws, so
 * callers can show everything at once; `assertWeightsMatch` throws.
 */
export function resolveWeights(config: ModelConfig, checkpoint: Map<string, number[]> | Record<string, number[]>): WeightReport {
  const shapes = checkpoint instanceof Map ? checkpoint : new Map(Object.entries(checkpoint));
  const expected = expectedTensors(config);
  const byKey = new Map(expected.map((e) => [unprefixed(config, e.hfName), e]));
  const report: WeightReport = { tensors: new Map(), missing: [], unexpected: [], wrongShape: [], ignored: [], warnings: [], problems: [] };

  for (const [name, shape] of shapes) {
    const key = unprefixed(config, name);
    if (IGNORED_BUFFERS.some((re) => re.test(name))) {
      report.ignored.push(name);
      continue;
    }
    if (key === 'lm_head.weight' && config.tieWordEmbeddings) {
      report.ignored.push(name); // tied: the embedding is the head (transformers ignores a stored copy too)
      continue;
    }
    const e = byKey.get(key);
    if (!e) {
      report.unexpected.push(name);
      continue;
    }
    if (report.tensors.has(e.canonical)) {
      report.problems.push(`${name}: same tensor as ${report.tensors.get(e.canonical)!.source} (given with and without the "${basePrefix(config)}" prefix)`);
      continue;
    }
    if (shape.length !== e.shape.length || shape.some((d, i) => d !== e.shape[i])) {
      report.wrongShape.push({ expected: e, source: name, shape });
      continue;
    }
    report.tensors.set(e.canonical, { expected: e, source: name });
  }

  for (const e of expected) {
    if (report.tensors.has(e.canonical) || report.wrongShape.some((w) => w.expected === e)) continue;
    if (e.canonical === 'lm_head.weight') {
      report.warnings.push('lm_head.weight is missing although tie_word_embeddings is false: using the token embeddings as the head');
      continue;
    }
    report.missing.push(e);
  }
  const embed = report.tensors.get('embed.weight');
  if (embed && !report.tensors.has('lm_head.weight')) {
    report.tensors.set('lm_head.weight', {
      expected: { canonical: 'lm_head.weight', hfName: 'lm_head.weight', shape: [config.vocabSize, config.hiddenSize], layout: 'linear', layer: null },
      source: embed.source,
    });
  }

  for (const e of report.missing) report.problems.push(`missing ${e.hfName} ${shapeText(e.shape)}`);
  for (const w of report.wrongShape) report.problems.push(`${w.source} has shape ${shapeText(w.shape)}, expected ${shapeText(w.expected.shape)}`);
  for (const name of report.unexpected) report.problems.push(`unexpected tensor ${name} (not part of a ${config.modelType} model with this config)`);
  return report;
}

/** Throws a WeightsError listing every problem; `where` names the checkpoint (folder or file). */
export function assertWeightsMatch(report: WeightReport, where: string): void {
  if (report.problems.length) throw new WeightsError(where, report.problems);
}

function shapeText(shape: number[]): string {
  return `[${shape.join(', ')}]`;
}
