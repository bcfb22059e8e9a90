// P-tuning (Liu et al. 2021, "GPT Understands, Too") as PEFT's PromptEncoderConfig trains it on a causal LM: the n
// virtual tokens' embeddings are the output of a prompt encoder over a trained (n, C) table, one of PEFT's two
// reparameterisations (encoder_reparameterization_type):
// - "MLP" (the default): Linear(C, H) → ReLU → Linear(H, H) → ReLU → Linear(H, C) (encoder_num_layers is ignored for
//   MLP, as in PEFT, and MLP has no dropout);
// - "LSTM": a bidirectional nn.LSTM(C, H, encoder_num_layers) over the table as one sequence, then Linear(2H, 2H) →
//   ReLU → Linear(2H, C) (lstm.ts); dropout between its layers (encoder_dropout) is refused: torch's masks cannot be
//   reproduced.
// H = encoder_hidden_size, the model's hidden size when unset, as PEFT fills it. Everything else is prompt tuning's:
// the virtual tokens ahead of every row and of every packed segment, positions from 0, labels ignored there
// (../prompt-tuning/config.ts). PEFT saves only the encoder's output, as "prompt_embeddings": the export computes it
// (float64, rounded to f32), and an exported P-tuning adapter imports back and continues as plain virtual embeddings,
// i.e. as prompt tuning, without its encoder. Nothing to merge. GPU side: runtime.ts (kernels
// src/shaders/prompt_encoder.wgsl, lstm.wgsl, virtual_tokens.wgsl).
import { writeSafetensors, type TensorToWrite } from '../../../model/safetensors.ts';
import type { ModelConfig } from '../../../model/config.ts';
import { promptEncoderRef } from '../../../gpu/ref/prompt-encoder.ref.ts';
import type { FieldError, TrainConfig } from '../../config.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, adapterConfigText, PEFT_FORMAT_VERSION, type PeftAdapterConfig } from '../../peft.ts';
import type { MethodModel, TrainableTensor, TrainingMethod } from '../method.ts';
import { NO_TARGETS, promptEmbeddingsTensor, promptLearningErrors, promptLearningFields } from '../prompt-tuning/config.ts';
import { lstmEncoderShapes, lstmPrompt } from './lstm.ts';

/** The MLP encoder's tensors by PEFT's state-dict names (prompt_encoder.default.<name>), in the flat buffers' order. */
export const P_TUNING_TENSORS = [
  'embedding.weight',
  'mlp_head.0.weight',
  'mlp_head.0.bias',
  'mlp_head.2.weight',
  'mlp_head.2.bias',
  'mlp_head.4.weight',
  'mlp_head.4.bias',
] as const;
export type PTuningTensor = (typeof P_TUNING_TENSORS)[number];

export function pTuningSegmentName(name: string): string {
  return `prompt_encoder.${name}`;
}

/** H: encoder_hidden_size, the model's hidden size when unset (PEFT's rule). */
export function encoderHidden(model: MethodModel, c: Pick<TrainConfig, 'encoderHiddenSize'>): number {
  return c.encoderHiddenSize ?? model.hiddenSize;
}

/** Each MLP tensor's shape for n virtual tokens, hidden C, encoder hidden H. */
export function pTuningShapes(n: number, C: number, H: number): Record<PTuningTensor, number[]> {
  return {
    'embedding.weight': [n, C],
    'mlp_head.0.weight': [H, C],
    'mlp_head.0.bias': [H],
    'mlp_head.2.weight': [H, H],
    'mlp_head.2.bias': [H],
    'mlp_head.4.weight': [C, H],
    'mlp_head.4.bias': [C],
  };
}

type EncoderConfig = Pick<TrainConfig, 'numVirtualTokens' | 'encoderHiddenSize' | 'encoderType' | 'encoderNumLayers'>;

/** The encoder's tensors (names under prompt_encoder.default, PEFT's state-dict order) with their shapes. */
export function pTuningTensorShapes(model: MethodModel, c: EncoderConfig): [string, number[]][] {
  const n = c.numVirtualTokens;
  const H = encoderHidden(model, c);
  if (c.encoderType === 'lstm') return lstmEncoderShapes(n, model.hiddenSize, H, c.encoderNumLayers);
  const shapes = pTuningShapes(n, model.hiddenSize, H);
  return P_TUNING_TENSORS.map((t) => [t, shapes[t]]);
}

/** What PEFT cannot be matched on: dropout inside a stacked LSTM (nn.LSTM applies none with one layer). */
export function pTuningErrors(c: TrainConfig): FieldError[] {
  if (c.encoderType === 'lstm' && c.encoderDropout > 0 && c.encoderNumLayers > 1) {
    return [{
      field: 'encoderDropout',
      message: `encoderDropout = ${c.encoderDropout}: dropout between the LSTM encoder's ${c.encoderNumLayers} layers is not supported (torch's random masks cannot be reproduced, so the run would not be PEFT's); use 0, or one layer`,
    }];
  }
  return [];
}

/** adapter_config.json as PEFT 0.21 saves PromptEncoderConfig(task_type="CAUSAL_LM") (keys sorted). */
export function pTuningAdapterConfig(o: { baseModel: string; model: ModelConfig; config: TrainConfig }): PeftAdapterConfig {
  return {
    auto_mapping: null,
    base_model_name_or_path: o.baseModel,
    encoder_dropout: o.config.encoderDropout,
    encoder_hidden_size: encoderHidden(o.model, o.config),
    encoder_num_layers: o.config.encoderNumLayers,
    encoder_reparameterization_type: o.config.encoderType === 'lstm' ? 'LSTM' : 'MLP',
    inference_mode: true,
    modules_to_save: null,
    ...promptLearningFields(o.model, o.config.numVirtualTokens),
    peft_type: 'P_TUNING',
    peft_version: PEFT_FORMAT_VERSION,
    revision: null,
    task_type: 'CAUSAL_LM',
  } as unknown as PeftAdapterConfig;
}

/** The virtual tokens' embeddings of either encoder, from the trained tensors by segment name (float64, rounded to
 *  f32). */
export function pTuningEncoderPrompt(tensors: ReadonlyMap<string, Float32Array>, model: MethodModel, c: EncoderConfig): Float32Array {
  const n = c.numVirtualTokens;
  const C = model.hiddenSize;
  const H = encoderHidden(model, c);
  if (c.encoderType !== 'lstm') return pTuningPrompt(tensors, n, C, H);
  const shapes = new Map(pTuningTensorShapes(model, c));
  return lstmPrompt((name) => trainedTensor(tensors, name, shapes.get(name)!), n, C, H, c.encoderNumLayers);
}

/** Tensor `name` (under prompt_encoder) of a trained encoder, checked against its shape. */
function trainedTensor(tensors: ReadonlyMap<string, Float32Array>, name: string, shape: number[]): Float32Array {
  const v = tensors.get(pTuningSegmentName(name));
  if (!v) throw new Error(`no trained ${pTuningSegmentName(name)} to export`);
  if (v.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`${pTuningSegmentName(name)}: ${v.length} values, expected [${shape.join(', ')}]`);
  return v;
}

/** The MLP encoder's virtual-token embeddings: its output over its table (float64, rounded to f32). */
export function pTuningPrompt(tensors: ReadonlyMap<string, Float32Array>, n: number, C: number, H: number): Float32Array {
  const shapes = pTuningShapes(n, C, H);
  const get = (t: PTuningTensor) => trainedTensor(tensors, t, shapes[t]);
  const { P } = promptEncoderRef(
    { E: get('embedding.weight'), W0: get('mlp_head.0.weight'), b0: get('mlp_head.0.bias'), W2: get('mlp_head.2.weight'), b2: get('mlp_head.2.bias'), W4: get('mlp_head.4.weight'), b4: get('mlp_head.4.bias') },
    { n, C, H },
  );
  return Float32Array.from(P);
}

export const pTuningMethod: TrainingMethod = {
  id: 'p-tuning',
  label: 'P-tuning',
  explanation:
    'Prompt tuning whose virtual tokens come out of a small network (the prompt encoder: an MLP, or a bidirectional LSTM with an MLP head) that is trained with them; only its output is saved, so the adapter is a plain soft prompt.',
  advice:
    'The MLP reparameterisation makes the soft prompt train faster and more stably than plain prompt tuning, the gap largest on ' +
    'small models and small data; 20 virtual tokens and an encoder as wide as the model (PEFT’s default) are the usual start, ' +
    'with a learning rate around 1e-3 to 1e-2. The paper’s LSTM encoder ties the virtual tokens to each other through the ' +
    'sequence; PEFT recommends the MLP. For deeper effect, the per-layer variant is prefix tuning (P-tuning v2).',
  peftType: 'P_TUNING',
  continuesAs: 'prompt-tuning',
  exports: 'adapter',
  wrapsLinears: false,
  settings: ['numVirtualTokens', 'encoderType', 'encoderHiddenSize', 'encoderNumLayers', 'encoderDropout'],
  defaultTargets: NO_TARGETS,
  validate: (c) => [...promptLearningErrors(c, 'P-tuning'), ...pTuningErrors(c)],
  tensors: () => [],
  ownTensors(model, c): TrainableTensor[] {
    return pTuningTensorShapes(model, c).map(([name, shape]) => ({ name: pTuningSegmentName(name), length: shape.reduce((a, b) => a * b, 1), lrScale: 1 }));
  },
  footprint(_modules, c, model) {
    if (!model) throw new Error('P-tuning: the footprint needs the model (its hidden size)');
    return { params: this.ownTensors!(model, c).reduce((s, t) => s + t.length, 0), activationsPerToken: 0 };
  },
  exportAdapter({ tensors, config, model, baseModel }) {
    const n = config.numVirtualTokens;
    const P = pTuningEncoderPrompt(tensors, model, config);
    const weights = new Map<string, TensorToWrite>([['prompt_embeddings', promptEmbeddingsTensor(P, n, model.hiddenSize)]]);
    return {
      [ADAPTER_CONFIG_FILE]: new TextEncoder().encode(adapterConfigText(pTuningAdapterConfig({ baseModel, model, config }))),
      [ADAPTER_WEIGHTS_FILE]: writeSafetensors(weights, { format: 'pt' }),
    } as ReturnType<TrainingMethod['exportAdapter']>;
  },
  proof: {
    reference: 'src/gpu/ref/prompt-encoder.ref.ts',
    goldens: [
      'scripts/golden_prompt.py',
      'tests/fixtures/golden/train_ptuning_gpt2.json',
      'tests/fixtures/golden/train_ptuning_llama.json',
      'tests/fixtures/golden/train_ptuning_qwen3.json',
      'src/train/ptuning-golden.gpu.test.ts',
      'scripts/golden_ptuning_lstm.py',
      'tests/fixtures/golden/train_ptuning_lstm_gpt2.json',
      'tests/fixtures/golden/train_ptuning_lstm_llama.json',
      'src/train/ptuning-lstm-golden.gpu.test.ts',
    ],
    exportImport: ['src/train/methods/p-tuning/p-tuning.test.ts', 'src/train/ptuning-golden.gpu.test.ts', 'src/train/ptuning-lstm-golden.gpu.test.ts'],
    merge: null,
  },
};
