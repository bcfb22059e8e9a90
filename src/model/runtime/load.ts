// A model folder (disk, a picked browser folder, the Hub) to a ready Transformer on the GPU: config.json,
// the checkpoint, the storage policy, the kernel variants.
import type { Engine } from '../../gpu/engine.ts';
import { Checkpoint, type ModelFiles } from '../checkpoint.ts';
import { readModelConfig } from '../load.ts';
import { loadGpuModel, type LoadOptions, type Norm } from './gpu-model.ts';
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

/** Every GPU buffer a loaded transformer's weights hold, each once (a tied head is the embedding's buffer). */
export function transformerBuffers(tf: Transformer): Set<GPUBuffer> {
  const m = tf.model;
  const out = new Set<GPUBuffer>();
  const norm = (n: Norm | undefined) => {
    if (!n) return;
    out.add(n.weight);
    if (n.bias) out.add(n.bias);
  };
  for (const s of [...m.embed.shards, ...m.head.shards]) out.add(s.buffer);
  if (m.posEmbed) out.add(m.posEmbed);
  if (tf.invFreq) out.add(tf.invFreq);
  norm(m.finalNorm);
  for (const b of m.blocks) {
    for (const n of [b.attnNorm, b.mlpNorm, b.qNorm, b.kNorm]) norm(n);
    for (const l of b.linears.values()) {
      if (l.weight.kind === 'dense') out.add(l.weight.buffer);
      else for (const buf of [l.weight.weight.codes, l.weight.weight.absmax, l.weight.weight.stats]) if (buf) out.add(buf);
      if (l.bias) out.add(l.bias);
    }
  }
  return out;
}

/** Gives a transformer's weights back to the pool (its methods detached first) and trims the pool. */
export function releaseTransformer(e: Engine, tf: Transformer): void {
  for (const buffer of transformerBuffers(tf)) e.buffers.release(buffer);
  e.buffers.trim();
}
