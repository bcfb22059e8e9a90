// Full fine-tuning: every weight of the model trains — embeddings (and GPT-2's learned positions), every linear
// layer's weight and bias, every norm, the LM head when it is not tied to the embeddings (a tied head is the
// embedding table itself, so it stays tied: its gradient adds into the embedding's). f32 master weights, AdamW over
// all of them with weight decay on matrices only (the embeddings and every linear weight; not on norms or biases, as
// transformers' Trainer does). What it exports is not an adapter but a model folder (model-folder.ts) that
// transformers' from_pretrained loads. Its GPU side is runtime.ts (the hooks are Linear.grad, Norm.grad and
// GpuModel.tableGrads, read by src/model/runtime/transformer.ts's backward).
import type { ModelConfig, ModelType } from '../../../model/config.ts';
import { expectedTensors, linearModules, type ExpectedTensor, type LinearModule } from '../../../model/weights.ts';
import { DEFAULT_CONFIG } from '../../config.ts';
import type { TrainableTensor, TrainingMethod } from '../method.ts';

/** Every linear layer: full fine-tuning has no target choice (the module list is the model's). */
const ALL_LINEAR: Record<ModelType, string[]> = {
  gpt2: ['c_attn', 'c_proj', 'c_fc'],
  llama: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  mistral: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  qwen2: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  qwen3: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
};

/** A model tensor as a trainable segment: named as transformers names the parameter, decayed when it is a matrix. */
function segmentOf(t: Pick<ExpectedTensor, 'hfName' | 'shape' | 'layout'>): TrainableTensor {
  return { name: t.hfName, length: t.shape.reduce((a, b) => a * b, 1), lrScale: 1, decay: t.layout !== 'vector' };
}

/** Every trainable tensor of the model, in expectedTensors' order (the tied head is the embedding, listed once). */
export function fullTensors(model: ModelConfig): (TrainableTensor & { canonical: string })[] {
  return expectedTensors(model).map((t) => ({ ...segmentOf(t), canonical: t.canonical }));
}

export const fullMethod: TrainingMethod = {
  id: 'full',
  label: 'Full fine-tuning',
  explanation: 'Trains every weight of the model (embeddings, every layer, norms): the most capacity, and the most memory — about 20 bytes per parameter beside the loaded model, before activations.',
  advice:
    'For small models only: f32 master weights, gradients, AdamW’s two moments and the copy the forward reads take five copies of the model. Use a learning ' +
    'rate ten times lower than LoRA’s (1e-5 to 5e-5; 1e-4 for a tiny model), weight decay 0.01–0.1 (applied to matrices, ' +
    'not to norms and biases), and watch the eval loss: it overfits a small dataset fastest of all methods.',
  peftType: null,
  exports: 'model',
  wrapsLinears: false,
  settings: [],
  defaultTargets: ALL_LINEAR,
  validate(c) {
    const errors = [];
    if (c.quant !== 'none') errors.push({ field: 'quant' as const, message: `quant = ${c.quant}: full fine-tuning trains the weights themselves, which cannot be NF4 (use LoRA for QLoRA)` });
    if (c.targets.length > 0) errors.push({ field: 'targets' as const, message: 'targets: full fine-tuning trains every layer; leave the target list empty' });
    return errors;
  },
  tensors(m: LinearModule) {
    const shape = m.fanInFanOut ? [m.inFeatures, m.outFeatures] : [m.outFeatures, m.inFeatures];
    const out = [segmentOf({ hfName: `${m.peftPath}.weight`, shape, layout: m.fanInFanOut ? 'conv1d' : 'linear' })];
    if (m.hasBias) out.push(segmentOf({ hfName: `${m.peftPath}.bias`, shape: [m.outFeatures], layout: 'vector' }));
    return out;
  },
  baseTensors(model) {
    const wrapped = new Set(linearModules(model).flatMap((m) => fullMethod.tensors(m, DEFAULT_CONFIG).map((t) => t.name)));
    return fullTensors(model).filter((t) => !wrapped.has(t.name));
  },
  footprint(modules) {
    return {
      params: modules.reduce((s, m) => s + m.inFeatures * m.outFeatures + ((m as Partial<LinearModule>).hasBias ? m.outFeatures : 0), 0),
      // Every layer's input is already kept for the activations' backward; the weight gradient reads it there.
      activationsPerToken: 0,
    };
  },
  exportAdapter() {
    throw new Error('full fine-tuning exports a model folder, not an adapter (methods/full/model-folder.ts)');
  },
  proof: {
    reference: 'src/model/runtime/reference.ts',
    goldens: ['scripts/golden_full.py', 'tests/fixtures/golden/train_full_gpt2.json', 'tests/fixtures/golden/train_full_llama.json', 'tests/fixtures/golden/train_full_qwen3.json', 'src/train/full-golden.gpu.test.ts'],
    exportImport: ['src/train/full-golden.gpu.test.ts'],
    merge: null,
  },
};
