// What a full fine-tuning run needs of the loaded model before its Trainer attaches: f32 weights. The studio loads
// models in f16 where the GPU has shader-f16 (models.ts), which halves the memory of every other method, but full
// fine-tuning's master weights start as a GPU copy of the loaded ones and its forward reads f32 copies
// (methods/full/runtime.ts refuses f16). So the run loads the same model's weights again in f32 first — from the
// same files (a Hub model from the browser's cache), with progress on the start request — and the model stays f32
// afterwards (its summary says so; loading it again from the Models screen gives f16 back). The tokenizer, the
// chat template and the datasets tokenized for the model are kept: the ids are the same. A run resumed after a page
// reload or a lost device goes through here again.
import { loadTransformer } from '../../model/runtime/load.ts';
import type { TrainConfig } from '../config.ts';
import { fullBindingRefusal } from '../full-run.ts';
import { fullTensors } from '../methods/full/config.ts';
import { methodFor } from '../methods/registry.ts';
import { releaseWeights } from './models.ts';
import { requireEngine, UserError, type LoadedModel } from './state.ts';

/** Whether `config`'s method trains the model's own weights (full fine-tuning), which need f32. */
export function needsF32Weights(config: Pick<TrainConfig, 'method'>): boolean {
  return methodFor(config.method).exports === 'model';
}

/**
 * Makes `model` ready for `config`'s method: for full fine-tuning, refuses a model whose f32 weights exceed the GPU's
 * binding (before loading anything), then reloads the weights in f32 when they are f16, replacing them in place (the
 * same LoadedModel object: the datasets keep pointing at it). Returns whether the weights were reloaded.
 */
export async function prepareWeightsFor(config: TrainConfig, model: LoadedModel, onProgress: (done: number, total: number) => void): Promise<boolean> {
  if (!needsF32Weights(config)) return false;
  const e = requireEngine();
  const params = fullTensors(model.config).reduce((s, t) => s + t.length, 0);
  const refusal = fullBindingRefusal(params, e.gpu.limits.maxStorageBufferBindingSize);
  if (refusal) throw new UserError(refusal);
  if (model.quant !== 'none' || model.transformer.model.dtype === 'f32') return false;
  const before = model.transformer;
  let reloaded;
  try {
    reloaded = await loadTransformer(e, model.files, before.kernels, { dtype: 'f32', quant: 'none', onProgress });
  } catch (err) {
    throw new UserError(`full fine-tuning needs ${model.summary.name}'s weights in f32, and loading them again failed: ${(err as Error).message}`);
  }
  model.transformer = reloaded;
  model.summary = { ...model.summary, dtype: 'f32', weightBytes: reloaded.model.weightBytes };
  releaseWeights(before);
  return true;
}
