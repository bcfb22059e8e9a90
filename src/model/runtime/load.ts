// A model folder (disk, a picked browser folder, the Hub) to a ready Transformer on the GPU: config.json,
// the checkpoint, the storage policy, the kernel variants.
import type { Engine } from '../../gpu/engine.ts';
import { Checkpoint, readJsonFile, type ModelFiles } from '../checkpoint.ts';
import { parseModelConfig, type ModelConfig } from '../config.ts';
import { loadGpuModel, type LoadOptions } from './gpu-model.ts';
import type { KernelChoice } from './linear.ts';
import { createTransformer, type Transformer } from './transformer.ts';

export async function readModelConfig(files: ModelFiles): Promise<ModelConfig> {
  const json = await readJsonFile(files, 'config.json');
  if (json === null) throw new Error(`${files.name}: no config.json (is this a Hugging Face model folder?)`);
  return parseModelConfig(json, `${files.name}/config.json`);
}

export async function loadTransformer(
  e: Engine,
  files: ModelFiles,
  kernels: KernelChoice,
  options: Omit<LoadOptions, 'where'>,
): Promise<Transformer> {
  const config = await readModelConfig(files);
  const checkpoint = await Checkpoint.open(files);
  try {
    const model = await loadGpuModel(e, config, checkpoint, { ...options, where: files.name });
    return createTransformer(e, model, kernels);
  } finally {
    await checkpoint.close();
  }
}
