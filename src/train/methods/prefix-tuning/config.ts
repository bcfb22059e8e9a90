// Prefix tuning (Li & Liang 2021; as P-tuning v2, Liu et al. 2022) as PEFT's PrefixTuningConfig trains it on a causal
// LM: n trained key/value rows ahead of every attention layer's keys and values (past_key_values), the model
// untouched. PEFT's table is (n, L·2·token_dim), token_dim = Hkv·D (PEFT sizes it by the key/value heads for a GQA
// model; GPT-2's is its hidden size), viewed (n, L·2, Hkv, D): layer l's keys are row 2l, its values row 2l + 1. The
// prefix enters attention as given (no RoPE, no q/k norm), every query sees it, and the real tokens start at position
// n (transformers counts positions from the cache's length); no virtual token is added to the sequence, so every
// real token is trained as without the prefix. With prefix_projection the table is the output of PEFT's
// PrefixEncoder MLP, embedding (n, token_dim) → Linear(token_dim, H) → tanh → Linear(H, L·2·token_dim), H =
// encoder_hidden_size (token_dim when unset, PEFT's rule). PEFT saves only the table ("prompt_embeddings", after the
// projection), so an exported adapter imports back and continues as a plain table, without its MLP. Nothing to
// merge: the prefix is attention input, not a weight. GPU side: runtime.ts (the hook is GpuModel.attentionPrefix,
// src/model/runtime/attention-prefix.ts; kernels attention.wgsl's prefix rows, columns.wgsl, prompt_encoder.wgsl).
import { writeSafetensors, type TensorToWrite } from '../../../model/safetensors.ts';
import type { ModelConfig } from '../../../model/config.ts';
import { prefixEncoderRef } from '../../../gpu/ref/prompt-encoder.ref.ts';
import type { FieldError, TrainConfig } from '../../config.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, adapterConfigText, finiteVector, PEFT_FORMAT_VERSION, type PeftAdapterConfig } from '../../peft.ts';
import type { MethodModel, TrainableTensor, TrainingMethod } from '../method.ts';
import { NO_TARGETS, PROMPT_EMBEDDINGS, promptLearningErrors } from '../prompt-tuning/config.ts';

/** The projection's tensors by PEFT's state-dict names (prompt_encoder.default.<name>), in the flat buffers' order. */
export const PREFIX_PROJECTION_TENSORS = ['embedding.weight', 'transform.0.weight', 'transform.0.bias', 'transform.2.weight', 'transform.2.bias'] as const;
export type PrefixProjectionTensor = (typeof PREFIX_PROJECTION_TENSORS)[number];

export function prefixSegmentName(t: PrefixProjectionTensor): string {
  return `prompt_encoder.${t}`;
}

/** What the prefix is sized by: L layers, token_dim = Hkv·D. */
export interface PrefixDims {
  layers: number;
  tokenDim: number;
  /** L·2·token_dim: the table's width. */
  width: number;
}

export function prefixDims(model: MethodModel): PrefixDims {
  const { numLayers, numKvHeads, headDim } = model;
  if (!numLayers || !numKvHeads || !headDim) throw new Error('prefix tuning: the model\'s layers, key/value heads and head size are needed to size the prefix');
  const tokenDim = numKvHeads * headDim;
  return { layers: numLayers, tokenDim, width: numLayers * 2 * tokenDim };
}

/** H: encoder_hidden_size, token_dim when unset (PEFT's rule). */
export function prefixEncoderHidden(model: MethodModel, c: Pick<TrainConfig, 'encoderHiddenSize'>): number {
  return c.encoderHiddenSize ?? prefixDims(model).tokenDim;
}

/** Each projection tensor's shape for n rows, token_dim K, encoder hidden H, table width O. */
export function prefixProjectionShapes(n: number, K: number, H: number, O: number): Record<PrefixProjectionTensor, number[]> {
  return {
    'embedding.weight': [n, K],
    'transform.0.weight': [H, K],
    'transform.0.bias': [H],
    'transform.2.weight': [O, H],
    'transform.2.bias': [O],
  };
}

/** The fields PEFT's _prepare_prompt_learning_config fills for prefix tuning: for a model whose config has
 *  num_key_value_heads (the Llama family) token_dim = Hkv·D and num_attention_heads = Hkv; GPT-2's are its own
 *  (where Hkv·D = hidden, Hkv = heads alike). */
export function prefixLearningFields(model: ModelConfig, numVirtualTokens: number) {
  const { layers, tokenDim } = prefixDims(model);
  return {
    num_attention_heads: model.numKvHeads,
    num_layers: layers,
    num_transformer_submodules: 1,
    num_virtual_tokens: numVirtualTokens,
    token_dim: tokenDim,
  };
}

/** adapter_config.json as PEFT 0.21 saves PrefixTuningConfig(task_type="CAUSAL_LM") (keys sorted). */
export function prefixTuningAdapterConfig(o: { baseModel: string; model: ModelConfig; config: TrainConfig }): PeftAdapterConfig {
  return {
    auto_mapping: null,
    base_model_name_or_path: o.baseModel,
    encoder_hidden_size: prefixEncoderHidden(o.model, o.config),
    inference_mode: true,
    init_weights: null,
    modules_to_save: null,
    ...prefixLearningFields(o.model, o.config.numVirtualTokens),
    peft_type: 'PREFIX_TUNING',
    peft_version: PEFT_FORMAT_VERSION,
    prefix_projection: o.config.prefixProjection,
    revision: null,
    task_type: 'CAUSAL_LM',
  } as unknown as PeftAdapterConfig;
}

/** The (n, L·2·token_dim) table PEFT saves: the trained table itself, or the projection's output over its embedding
 *  (float64, rounded to f32). */
export function prefixTable(tensors: ReadonlyMap<string, Float32Array>, model: MethodModel, c: Pick<TrainConfig, 'numVirtualTokens' | 'prefixProjection' | 'encoderHiddenSize'>): Float32Array {
  const n = c.numVirtualTokens;
  const { tokenDim, width } = prefixDims(model);
  if (!c.prefixProjection) {
    const t = tensors.get(PROMPT_EMBEDDINGS);
    if (!t) throw new Error(`no trained ${PROMPT_EMBEDDINGS} to export`);
    if (t.length !== n * width) throw new Error(`${PROMPT_EMBEDDINGS}: ${t.length} values, expected ${n} × ${width}`);
    return t;
  }
  const H = prefixEncoderHidden(model, c);
  const shapes = prefixProjectionShapes(n, tokenDim, H, width);
  const get = (t: PrefixProjectionTensor) => {
    const v = tensors.get(prefixSegmentName(t));
    const want = shapes[t].reduce((a, b) => a * b, 1);
    if (!v) throw new Error(`no trained ${prefixSegmentName(t)} to export`);
    if (v.length !== want) throw new Error(`${prefixSegmentName(t)}: ${v.length} values, expected [${shapes[t].join(', ')}]`);
    return v;
  };
  const { table } = prefixEncoderRef(
    { E: get('embedding.weight'), W0: get('transform.0.weight'), b0: get('transform.0.bias'), W2: get('transform.2.weight'), b2: get('transform.2.bias') },
    { n, K: tokenDim, H, O: width },
  );
  return Float32Array.from(table);
}

export const prefixTuningMethod: TrainingMethod = {
  id: 'prefix-tuning',
  label: 'Prefix tuning',
  explanation:
    'Learns key/value vectors (a prefix) that every attention layer attends to ahead of the input — P-tuning v2; the model itself is untouched. ' +
    'Optionally trained through a small MLP (prefix projection); only the prefix is saved, so a re-imported adapter continues without the MLP.',
  advice:
    'Plants a task-specific, implicit instruction in every layer: suited to small datasets and to multi-task setups (one small prefix ' +
    'per task over one frozen model). It trains with moderate difficulty and trails LoRA (the article’s LLaMA-7B GSM8K run: 32.7% ' +
    'against LoRA’s 35.8%, in less time and memory). 20 virtual tokens is the usual start, with a learning rate around 1e-3 to 1e-2; ' +
    'the MLP reparameterisation (prefix projection, P-tuning v2) makes it more expressive and steadier to train, at the cost of ' +
    'many more trained parameters — only the prefix it produces is saved, so a re-imported adapter continues without the MLP.',
  peftType: 'PREFIX_TUNING',
  exports: 'adapter',
  wrapsLinears: false,
  settings: ['numVirtualTokens', 'prefixProjection', 'encoderHiddenSize'],
  defaultTargets: NO_TARGETS,
  validate(c): FieldError[] {
    return promptLearningErrors(c, 'prefix tuning');
  },
  tensors: () => [],
  ownTensors(model, c): TrainableTensor[] {
    const n = c.numVirtualTokens;
    const { tokenDim, width } = prefixDims(model);
    if (!c.prefixProjection) return [{ name: PROMPT_EMBEDDINGS, length: n * width, lrScale: 1 }];
    const shapes = prefixProjectionShapes(n, tokenDim, prefixEncoderHidden(model, c), width);
    return PREFIX_PROJECTION_TENSORS.map((t) => ({ name: prefixSegmentName(t), length: shapes[t].reduce((a, b) => a * b, 1), lrScale: 1 }));
  },
  footprint(_modules, c, model) {
    if (!model) throw new Error('prefix tuning: the footprint needs the model (its layers and key/value heads)');
    // The prefix adds P keys and values per layer, not tokens: its activations are a few rows, not counted per token.
    return { params: this.ownTensors!(model, c).reduce((s, t) => s + t.length, 0), activationsPerToken: 0 };
  },
  exportAdapter({ tensors, config, model, baseModel }) {
    const n = config.numVirtualTokens;
    const { width } = prefixDims(model);
    const table = finiteVector(PROMPT_EMBEDDINGS, prefixTable(tensors, model, config), [n, width]);
    const weights = new Map<string, TensorToWrite>([[PROMPT_EMBEDDINGS, table]]);
    return {
      [ADAPTER_CONFIG_FILE]: new TextEncoder().encode(adapterConfigText(prefixTuningAdapterConfig({ baseModel, model, config }))),
      [ADAPTER_WEIGHTS_FILE]: writeSafetensors(weights, { format: 'pt' }),
    } as ReturnType<TrainingMethod['exportAdapter']>;
  },
  proof: {
    reference: 'src/gpu/ref/attention.ref.ts',
    goldens: [
      'scripts/golden_prefix.py',
      'tests/fixtures/golden/train_prefix_gpt2.json',
      'tests/fixtures/golden/train_prefix_llama_proj.json',
      'tests/fixtures/golden/train_prefix_qwen3.json',
      'src/train/prefix-golden.gpu.test.ts',
    ],
    exportImport: ['src/train/methods/prefix-tuning/prefix-tuning.test.ts', 'src/train/prefix-golden.gpu.test.ts'],
    merge: null,
  },
};
