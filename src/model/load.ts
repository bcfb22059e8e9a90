// A model folder → its config and its weights, checked against each other, ready to be streamed tensor by tensor
// to the GPU. Works on any ModelFiles (disk, a picked browser folder, memory; the Hub later).

import { Checkpoint, readJsonFile, type ModelFiles } from './checkpoint.ts';
import { ConfigError, parseModelConfig, type ModelConfig } from './config.ts';
import type { StorageArray, StorageDtype, TensorChunk, TensorInfo } from './safetensors.ts';
import { assertWeightsMatch, resolveWeights, type ResolvedTensor, type WeightReport } from './weights.ts';

export async function readModelConfig(folder: ModelFiles): Promise<ModelConfig> {
  const json = await readJsonFile(folder, 'config.json');
  if (json === null) throw new ConfigError(`${folder.name}/config.json`, 'not found');
  return parseModelConfig(json, `${folder.name}/config.json`);
}

export class ModelWeights {
  constructor(
    readonly config: ModelConfig,
    readonly checkpoint: Checkpoint,
    readonly report: WeightReport,
  ) {}

  /** Canonical names of every tensor the forward pass reads (lm_head.weight included, tied or not). */
  names(): string[] {
    return [...this.report.tensors.keys()];
  }

  resolved(canonical: string): ResolvedTensor {
    const t = this.report.tensors.get(canonical);
    if (!t) throw new Error(`no weight "${canonical}" in this ${this.config.modelType} model`);
    return t;
  }

  /** The checkpoint entry behind a canonical name: dtype, shape, byte range. */
  info(canonical: string): TensorInfo {
    return this.checkpoint.info(this.resolved(canonical).source);
  }

  read<D extends StorageDtype>(canonical: string, storage: D): Promise<StorageArray<D>> {
    return this.checkpoint.readTensor(this.resolved(canonical).source, storage);
  }

  stream<D extends StorageDtype>(canonical: string, storage: D, maxChunkBytes?: number): AsyncGenerator<TensorChunk<D>> {
    return this.checkpoint.streamTensor(this.resolved(canonical).source, storage, maxChunkBytes);
  }

  close(): Promise<void> {
    return this.checkpoint.close();
  }
}

/** Reads config.json, opens the safetensors (single or sharded) and checks that every expected tensor is there with
 *  its shape; throws a ConfigError, SafetensorsError or WeightsError naming the file and tensor otherwise. */
export async function openModelWeights(folder: ModelFiles): Promise<ModelWeights> {
  const config = await readModelConfig(folder);
  const checkpoint = await Checkpoint.open(folder);
  const shapes = new Map(checkpoint.names().map((n) => [n, checkpoint.info(n).shape]));
  const report = resolveWeights(config, shapes);
  try {
    assertWeightsMatch(report, checkpoint.files.map((f) => f.name).join(', '));
  } catch (e) {
    await checkpoint.close();
    throw e;
  }
  return new ModelWeights(config, checkpoint, report);
}
