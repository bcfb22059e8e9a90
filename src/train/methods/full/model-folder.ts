// What a full fine-tuning run exports: the base model's folder with every weight replaced by its trained value —
// model.safetensors in the base checkpoint's dtype (f32, f16 or bf16), config.json, and the tokenizer and generation
// files copied — which transformers' from_pretrained loads as a plain model (checked live in full-golden.gpu.test.ts).
import type { ModelFiles } from '../../../model/checkpoint.ts';
import type { ModelConfig } from '../../../model/config.ts';
import { openModelWeights } from '../../../model/load.ts';
import { rewriteModel, type MergedModel, type OutputDtype } from '../../merge.ts';
import { fullTensors } from './config.ts';

const FROM_SAFETENSORS: Record<string, OutputDtype> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

/** The dtype the base checkpoint stores its embedding in (what the export keeps). */
export async function checkpointDtype(folder: ModelFiles): Promise<OutputDtype> {
  const weights = await openModelWeights(folder);
  try {
    const stored = weights.checkpoint.info(weights.resolved('embed.weight').source).dtype;
    return FROM_SAFETENSORS[stored] ?? 'f32';
  } finally {
    await weights.close();
  }
}

/**
 * The fully fine-tuned model: `tensors` by segment name (transformers' parameter names, Trainer.trainedTensors()),
 * every tensor of the model among them. A NaN or an infinity is refused, naming the tensor.
 */
export async function fullModelFolder(folder: ModelFiles, tensors: ReadonlyMap<string, Float32Array>, model: ModelConfig, dtype?: OutputDtype): Promise<MergedModel> {
  const replacements = new Map<string, (x: Float32Array) => Float32Array>();
  for (const t of fullTensors(model)) {
    const values = tensors.get(t.name);
    if (!values) throw new Error(`no trained values for ${t.name}: not a full fine-tuning run of this model`);
    if (values.length !== t.length) throw new Error(`${t.name}: ${values.length} trained values, the model's tensor has ${t.length}`);
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${t.name}: element ${bad} is ${values[bad]}; the run diverged, nothing exported`);
    replacements.set(t.canonical, () => values);
  }
  return rewriteModel(folder, replacements, dtype ?? (await checkpointDtype(folder)));
}
