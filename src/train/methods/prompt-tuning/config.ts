// Prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning") as PEFT's
// PromptTuningConfig trains it on a causal LM: n trained input embeddings (virtual tokens) ahead of every row, the
// model untouched. The virtual tokens take positions 0 … n − 1 and the row's real tokens start at position n (PEFT
// leaves position ids to the model over the concatenated inputs_embeds), their labels are ignored, and the row's
// first real token is trained, predicted from the last virtual one. With packing every packed row (segment) gets its
// own n virtual tokens, as PEFT sees one row at a time. The table starts as PEFT's RANDOM init (nn.Embedding's
// N(0, 1), drawn here from the run's seed) or its TEXT init (the word embeddings of the tokenizer's ids for a text,
// special tokens included, cycled or cut to n). Nothing to merge: the prompt is an input, not a weight. Its GPU side
// is runtime.ts (the hook is GpuModel.virtualTokens, src/model/runtime/virtual-tokens.ts; kernel
// src/shaders/virtual_tokens.wgsl).
import { writeSafetensors, type TensorToWrite } from '../../../model/safetensors.ts';
import type { ModelConfig, ModelType } from '../../../model/config.ts';
import type { FieldError, TrainConfig } from '../../config.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, adapterConfigText, finiteVector, PEFT_FORMAT_VERSION, type PeftAdapterConfig } from '../../peft.ts';
import type { MethodModel, TrainableTensor, TrainingMethod } from '../method.ts';

/** The segment, and the adapter file's tensor: PEFT saves the table as "prompt_embeddings" [n, hidden]. */
export const PROMPT_EMBEDDINGS = 'prompt_embeddings';

/** No layer is wrapped, whatever the architecture. */
export const NO_TARGETS: Record<ModelType, string[]> = { gpt2: [], llama: [], mistral: [], qwen2: [], qwen3: [] };

/** The fields PEFT's PromptLearningConfig fills from the model's config (_prepare_prompt_learning_config). */
export function promptLearningFields(model: ModelConfig, numVirtualTokens: number) {
  return {
    num_attention_heads: model.numHeads,
    num_layers: model.numLayers,
    num_transformer_submodules: 1,
    num_virtual_tokens: numVirtualTokens,
    token_dim: model.hiddenSize,
  };
}

/** adapter_config.json as PEFT 0.21 saves PromptTuningConfig(task_type="CAUSAL_LM") (keys sorted). */
export function promptTuningAdapterConfig(o: { baseModel: string; model: ModelConfig; config: TrainConfig }): PeftAdapterConfig {
  const text = o.config.promptInit === 'text';
  return {
    auto_mapping: null,
    base_model_name_or_path: o.baseModel,
    inference_mode: true,
    modules_to_save: null,
    ...promptLearningFields(o.model, o.config.numVirtualTokens),
    peft_type: 'PROMPT_TUNING',
    peft_version: PEFT_FORMAT_VERSION,
    prompt_tuning_init: text ? 'TEXT' : 'RANDOM',
    prompt_tuning_init_text: text ? o.config.promptInitText : null,
    revision: null,
    task_type: 'CAUSAL_LM',
    tokenizer_kwargs: null,
    // PEFT requires a tokenizer with TEXT (it would read it again only when training from the config).
    tokenizer_name_or_path: text ? o.baseModel : null,
  } as unknown as PeftAdapterConfig;
}

/** The positions a run's method takes ahead of every row: prompt tuning's and P-tuning's virtual tokens, prefix
 *  tuning's key/value rows (the real tokens start at position n there too); 0 for a method that has none. */
export function virtualTokenCount(c: Pick<TrainConfig, 'method' | 'numVirtualTokens'>): number {
  return c.method === 'prompt-tuning' || c.method === 'p-tuning' || c.method === 'prefix-tuning' ? c.numVirtualTokens : 0;
}

/** The settings' problems common to the prompt-learning methods: none so far. They wrap no layer, so target lists
 *  (a preset's all-linear) are ignored (targets.ts), and an NF4 base is fine: it stays frozen. */
export function promptLearningErrors(_c: TrainConfig, _label: string): FieldError[] {
  return [];
}

/** The [n, hidden] table of virtual tokens, checked finite, as PEFT saves it. */
export function promptEmbeddingsTensor(values: Float32Array | undefined, n: number, hidden: number): TensorToWrite {
  if (!values) throw new Error(`no trained ${PROMPT_EMBEDDINGS} to export`);
  if (values.length !== n * hidden) throw new Error(`${PROMPT_EMBEDDINGS}: ${values.length} values, expected ${n} × ${hidden}`);
  return finiteVector(PROMPT_EMBEDDINGS, values, [n, hidden]);
}

export const promptTuningMethod: TrainingMethod = {
  id: 'prompt-tuning',
  label: 'Prompt tuning',
  explanation:
    'Learns a few virtual tokens (soft prompt embeddings) put ahead of every input; the model itself is untouched. The fewest parameters of all: virtual tokens × hidden size.',
  advice:
    'Best with large models and small datasets (few-shot): on GPT-3-sized models it nears full fine-tuning, on small ones it ' +
    'trails LoRA and is the hardest method to train. 20 virtual tokens is the usual start; it needs a high learning rate ' +
    '(1e-2 to 3e-2), and starting from a text that describes the task (TEXT init) trains more steadily than random values.',
  peftType: 'PROMPT_TUNING',
  exports: 'adapter',
  wrapsLinears: false,
  settings: ['numVirtualTokens', 'promptInit', 'promptInitText'],
  defaultTargets: NO_TARGETS,
  validate(c) {
    const errors = promptLearningErrors(c, 'prompt tuning');
    if (c.promptInit === 'text' && c.promptInitText.trim() === '') {
      errors.push({ field: 'promptInitText', message: 'promptInitText = "": TEXT init needs a text (e.g. a one-line description of the task)' });
    }
    return errors;
  },
  tensors: () => [],
  ownTensors: (model: MethodModel, c) => [{ name: PROMPT_EMBEDDINGS, length: c.numVirtualTokens * model.hiddenSize, lrScale: 1 }],
  footprint(_modules, c, model) {
    if (!model) throw new Error('prompt tuning: the footprint needs the model (its hidden size)');
    // The virtual positions' activations are counted with the sequence (they are tokens to the model).
    return { params: c.numVirtualTokens * model.hiddenSize, activationsPerToken: 0 };
  },
  exportAdapter({ tensors, config, model, baseModel }) {
    const weights = new Map<string, TensorToWrite>([[PROMPT_EMBEDDINGS, promptEmbeddingsTensor(tensors.get(PROMPT_EMBEDDINGS), config.numVirtualTokens, model.hiddenSize)]]);
    return {
      [ADAPTER_CONFIG_FILE]: new TextEncoder().encode(adapterConfigText(promptTuningAdapterConfig({ baseModel, model, config }))),
      [ADAPTER_WEIGHTS_FILE]: writeSafetensors(weights, { format: 'pt' }),
    } as ReturnType<TrainingMethod['exportAdapter']>;
  },
  proof: {
    reference: 'src/gpu/ref/virtual-tokens.ref.ts',
    goldens: [
      'scripts/golden_prompt.py',
      'tests/fixtures/golden/train_prompt_gpt2.json',
      'tests/fixtures/golden/train_prompt_llama.json',
      'tests/fixtures/golden/train_prompt_qwen3.json',
      'src/train/prompt-golden.gpu.test.ts',
    ],
    exportImport: ['src/train/methods/prompt-tuning/prompt-tuning.test.ts', 'src/train/prompt-golden.gpu.test.ts'],
    merge: null,
  },
};
