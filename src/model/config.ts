// config.json → one typed ModelConfig for every supported architecture (transformers.js getNormalizedConfig).
//
// Defaults are transformers' own for each model_type, so a config.json that leaves a key out means what it means
// there. Both rope layouts are read: transformers 5's "rope_parameters" and the "rope_theta" + "rope_scaling" keys
// most hub checkpoints carry. Options that change the forward pass and that this engine does not implement are
// rejected here, by name, rather than silently computing something else.

export const SUPPORTED_MODEL_TYPES = ['gpt2', 'llama', 'mistral', 'qwen2', 'qwen3'] as const;
export type ModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

/** The block structure: GPT-2 (LayerNorm, learned positions, fused Conv1D qkv, GELU MLP) or Llama (RMSNorm, RoPE,
 *  separate q/k/v with grouped-query attention, SwiGLU). Mistral, Qwen2 and Qwen3 are Llama with variations. */
export type ArchFamily = 'gpt2' | 'llama';

export const SUPPORTED_ACTIVATIONS = ['gelu_new', 'gelu_pytorch_tanh', 'gelu', 'relu', 'silu'] as const;
/** gelu_new and gelu_pytorch_tanh are the same tanh approximation; gelu is the exact erf form; silu = swish. */
export type Activation = (typeof SUPPORTED_ACTIVATIONS)[number];

/** transformers' rope types (ROPE_INIT_FUNCTIONS). Which ones the forward implements is the forward's business. */
export const KNOWN_ROPE_TYPES = ['default', 'linear', 'dynamic', 'yarn', 'longrope', 'llama3'] as const;
export type RopeType = (typeof KNOWN_ROPE_TYPES)[number];

export interface RotaryPositions {
  kind: 'rope';
  theta: number;
  type: RopeType;
  /** The scaling parameters as given (factor, low_freq_factor, original_max_position_embeddings, …), or null. */
  scaling: Record<string, unknown> | null;
}

export interface LearnedPositions {
  kind: 'learned';
}

export interface ModelConfig {
  modelType: ModelType;
  family: ArchFamily;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (grouped-query attention); equals numHeads without GQA. */
  numKvHeads: number;
  /** Per-head width; numHeads·headDim may differ from hiddenSize (explicit head_dim). */
  headDim: number;
  intermediateSize: number;
  /** Context length (n_positions / max_position_embeddings). */
  maxPositions: number;
  norm: { kind: 'layernorm' | 'rmsnorm'; eps: number };
  activation: Activation;
  /** plain: down(act(up(x))); gated (SwiGLU): down(act(gate(x)) · up(x)). */
  mlp: 'plain' | 'gated';
  positions: RotaryPositions | LearnedPositions;
  tieWordEmbeddings: boolean;
  qkvBias: boolean;
  attnOutputBias: boolean;
  mlpBias: boolean;
  /** Qwen3: RMSNorm over each head of q and k before RoPE. */
  qkNorm: boolean;
  /** GPT-2's Conv1D stores weights [in, out]; nn.Linear stores [out, in]. */
  linearLayout: 'conv1d' | 'linear';
  /** Multiplier of q·k (1/sqrt(headDim) unless GPT-2's scale_attn_weights is false). */
  attentionScale: number;
  /** Sliding-window attention width, or null for full attention. Only matters for sequences longer than it. */
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  padTokenId: number | null;
  /** The checkpoint's declared dtype ("float32", "bfloat16", …: torch_dtype, or "dtype" in transformers 5). */
  torchDtype: string | null;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${file}: ${detail}`);
    this.name = 'ConfigError';
  }
}

type Json = Record<string, unknown>;

/** Maps a parsed config.json. `file` names it in errors. */
export function parseModelConfig(json: unknown, file = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new ConfigError(file, 'not a JSON object');
  const raw = json as Json;
  const modelType = raw.model_type;
  if (typeof modelType !== 'string') {
    throw new ConfigError(file, `missing "model_type" (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  if (!(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    throw new ConfigError(file, `model_type "${modelType}" is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  const r = new Reader(raw, file, modelType);
  return modelType === 'gpt2' ? gpt2(r) : llamaFamily(r, modelType as Exclude<ModelType, 'gpt2'>);
}

// ---------------------------------------------------------------------------------------------------------------

const MAX_CONFIG_INT = 2 ** 31 - 1;

/** Typed access to config keys: errors name the key, its value and what was expected. */
class Reader {
  constructor(
    readonly raw: Json,
    readonly file: string,
    readonly modelType: string,
  ) {}

  fail(detail: string): never {
    throw new ConfigError(this.file, detail);
  }

  /** Throws one error listing every missing key. */
  require(keys: string[]): void {
    const missing = keys.filter((k) => this.raw[k] === undefined || this.raw[k] === null);
    if (missing.length) this.fail(`missing required key${missing.length > 1 ? 's' : ''} for model_type "${this.modelType}": ${missing.join(', ')}`);
  }

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  int(key: string, fallback?: number, min = 1): number {
    const v = this.raw[key] ?? fallback;
    if (v === undefined) this.fail(`missing required key "${key}"`);
    // At most 2³¹ − 1: sizes past it are no model's (and not safe integers past 2⁵³; found by config.fuzz.test.ts).
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_CONFIG_INT) this.fail(`"${key}" must be an integer in [${min}, ${MAX_CONFIG_INT}], got ${JSON.stringify(v)}`);
    return v as number;
  }

  num(key: string, fallback: number): number {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key] ?? fallback;
    if (typeof v !== 'boolean') this.fail(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  }

  tokenId(key: string): number | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.fail(`"${key}" must be a token id, got ${JSON.stringify(v)}`);
    return v as number;
  }

  tokenIds(key: string): number[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    const ids = Array.isArray(v) ? v : [v];
    if (!ids.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) this.fail(`"${key}" must be a token id or a list of them, got ${JSON.stringify(v)}`);
    return ids as number[];
  }

  activation(key: string, fallback: Activation): Activation {
    const v = this.raw[key] ?? fallback;
    const name = v === 'swish' ? 'silu' : v;
    if (typeof name !== 'string' || !(SUPPORTED_ACTIVATIONS as readonly string[]).includes(name)) {
      this.fail(`"${key}" ${JSON.stringify(v)} is not supported (supported: ${SUPPORTED_ACTIVATIONS.join(', ')})`);
    }
    return name as Activation;
  }

  dtype(): string | null {
    const v = this.raw.torch_dtype ?? this.raw.dtype;
    return typeof v === 'string' ? v : null;
  }
}

function gpt2(r: Reader): ModelConfig {
  r.require(['vocab_size', 'n_embd', 'n_layer', 'n_head']);
  const hiddenSize = r.int('n_embd');
  const numHeads = r.int('n_head');
  if (hiddenSize % numHeads !== 0) r.fail(`n_embd ${hiddenSize} is not divisible by n_head ${numHeads}`);
  if (r.bool('add_cross_attention', false)) r.fail('"add_cross_attention": true (an encoder-decoder GPT-2) is not supported');
  if (r.bool('scale_attn_by_inverse_layer_idx', false)) r.fail('"scale_attn_by_inverse_layer_idx": true is not supported');
  const headDim = hiddenSize / numHeads;
  return {
    modelType: 'gpt2',
    family: 'gpt2',
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    numLayers: r.int('n_layer'),
    numHeads,
    numKvHeads: numHeads,
    headDim,
    intermediateSize: r.int('n_inner', 4 * hiddenSize),
    maxPositions: r.int('n_positions', 1024),
    norm: { kind: 'layernorm', eps: r.num('layer_norm_epsilon', 1e-5) },
    activation: r.activation('activation_function', 'gelu_new'),
    mlp: 'plain',
    positions: { kind: 'learned' },
    tieWordEmbeddings: r.bool('tie_word_embeddings', true),
    qkvBias: true,
    attnOutputBias: true,
    mlpBias: true,
    qkNorm: false,
    linearLayout: 'conv1d',
    attentionScale: r.bool('scale_attn_weights', true) ? 1 / Math.sqrt(headDim) : 1,
    slidingWindow: null,
    bosTokenId: r.tokenId('bos_token_id'),
    eosTokenIds: r.tokenIds('eos_token_id'),
    padTokenId: r.tokenId('pad_token_id'),
    torchDtype: r.dtype(),
  };
}

/** transformers' defaults per model_type for the keys a config.json may leave out. */
const LLAMA_DEFAULTS: Record<Exclude<ModelType, 'gpt2'>, { maxPositions: number; tie: boolean; headDim: number | null }> = {
  llama: { maxPositions: 2048, tie: false, headDim: null },
  mistral: { maxPositions: 4096 * 32, tie: false, headDim: null },
  qwen2: { maxPositions: 32768, tie: false, headDim: null },
  qwen3: { maxPositions: 32768, tie: false, headDim: 128 },
};

function llamaFamily(r: Reader, modelType: Exclude<ModelType, 'gpt2'>): ModelConfig {
  r.require(['vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size']);
  const defaults = LLAMA_DEFAULTS[modelType];
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = r.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) r.fail(`num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  let headDim: number;
  if (r.has('head_dim')) headDim = r.int('head_dim');
  else if (defaults.headDim !== null) headDim = defaults.headDim;
  else {
    if (hiddenSize % numHeads !== 0) r.fail(`hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads} and there is no "head_dim"`);
    headDim = hiddenSize / numHeads;
  }
  // Llama and Qwen3 put one switch on all four attention projections; Qwen2 always has q/k/v biases and no o bias.
  const attentionBias = modelType === 'llama' || modelType === 'qwen3' ? r.bool('attention_bias', false) : false;
  const qkvBias = modelType === 'qwen2' ? true : attentionBias;
  let slidingWindow: number | null = null;
  if (modelType === 'mistral') slidingWindow = r.has('sliding_window') ? r.int('sliding_window') : null;
  if ((modelType === 'qwen2' || modelType === 'qwen3') && r.bool('use_sliding_window', false)) {
    slidingWindow = r.has('sliding_window') ? r.int('sliding_window') : null;
  }
  return {
    modelType,
    family: 'llama',
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    numLayers: r.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: r.int('intermediate_size'),
    maxPositions: r.int('max_position_embeddings', defaults.maxPositions),
    norm: { kind: 'rmsnorm', eps: r.num('rms_norm_eps', 1e-6) },
    activation: r.activation('hidden_act', 'silu'),
    mlp: 'gated',
    positions: rope(r),
    tieWordEmbeddings: r.bool('tie_word_embeddings', defaults.tie),
    qkvBias,
    attnOutputBias: attentionBias,
    mlpBias: modelType === 'llama' ? r.bool('mlp_bias', false) : false,
    qkNorm: modelType === 'qwen3',
    linearLayout: 'linear',
    attentionScale: 1 / Math.sqrt(headDim),
    slidingWindow,
    bosTokenId: r.tokenId('bos_token_id'),
    eosTokenIds: r.tokenIds('eos_token_id'),
    padTokenId: r.tokenId('pad_token_id'),
    torchDtype: r.dtype(),
  };
}

/** RoPE from "rope_parameters" (transformers 5) or "rope_theta" + "rope_scaling" (older configs, "type" or
 *  "rope_type" inside). */
function rope(r: Reader): RotaryPositions {
  const params = r.raw.rope_parameters;
  const scalingRaw = params ?? r.raw.rope_scaling ?? null;
  if (scalingRaw !== null && (typeof scalingRaw !== 'object' || Array.isArray(scalingRaw))) {
    r.fail(`"${params ? 'rope_parameters' : 'rope_scaling'}" must be an object, got ${JSON.stringify(scalingRaw)}`);
  }
  const scaling = scalingRaw ? { ...(scalingRaw as Json) } : null;
  let theta = r.num('rope_theta', 10000);
  if (scaling && 'rope_theta' in scaling) {
    theta = scaling.rope_theta as number;
    if (typeof theta !== 'number' || !(theta > 0)) r.fail(`"rope_parameters.rope_theta" must be a positive number, got ${JSON.stringify(theta)}`);
    delete scaling.rope_theta;
  }
  const type = scaling ? (scaling.rope_type ?? scaling.type ?? 'default') : 'default';
  if (typeof type !== 'string' || !(KNOWN_ROPE_TYPES as readonly string[]).includes(type)) {
    r.fail(`rope type ${JSON.stringify(type)} is not supported (known: ${KNOWN_ROPE_TYPES.join(', ')})`);
  }
  if (scaling) {
    delete scaling.rope_type;
    delete scaling.type;
  }
  if (type === 'llama3') {
    for (const key of ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings']) {
      if (typeof scaling?.[key] !== 'number') r.fail(`rope type llama3 needs a numeric "${key}"`);
    }
  }
  if ((type === 'linear' || type === 'dynamic' || type === 'yarn') && typeof scaling?.factor !== 'number') {
    r.fail(`rope type ${type} needs a numeric "factor"`);
  }
  return { kind: 'rope', theta, type: type as RopeType, scaling: scaling && Object.keys(scaling).length ? scaling : null };
}
