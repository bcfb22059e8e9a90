// A model folder (disk, a picked browser folder, the Hub) to a ready Transformer on the GPU: config.json,
// the checkpoint, the storage policy, the kernel variants.
import type { Engine } from '../../gpu/engine.ts';
import { Checkpoint, type ModelFiles } from '../checkpoint.ts';
import { readModelConfig } from '../load.ts';
import { loadGpuModel, type LoadOptions } from './gpu-model.ts';
import type { KernelChoice } from './linear.ts';
import { createTransformer, type Transformer } from './transformer.ts';

export { readModelConfig };

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
