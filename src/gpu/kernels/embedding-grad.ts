// Host side of embedding_grad.wgsl: the positions grouped by token id on the CPU (the batch's ids are known there
// before it is recorded), then one dispatch per shard and per 65535 distinct ids. See the .wgsl header.
import source from '../../shaders/embedding_grad.wgsl?raw';
import { KernelError, packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';

export function embeddingGradSpec(accumulate: boolean): KernelSpec {
  return {
    label: `embedding_grad${accumulate ? '.acc' : ''}`,
    file: 'src/shaders/embedding_grad.wgsl',
    wgsl: renderWgsl('embedding_grad', source),
    entryPoint: 'main',
    constants: { ACCUMULATE: accumulate ? 1 : 0 },
    bindings: ['read', 'read', 'read', 'read', 'read_write'],
    paramsBytes: 16,
  };
}

export function allEmbeddingGradSpecs(): KernelSpec[] {
  return [embeddingGradSpec(false), embeddingGradSpec(true)];
}

/** The batch's positions grouped by id: `order` sorts the positions by id (stable: ascending positions within an id),
 *  the positions of distinct id `ids[u]` are order[starts[u] .. starts[u + 1]). */
export interface EmbeddingGradPlan {
  order: Uint32Array;
  starts: Uint32Array;
  ids: Uint32Array;
}

export function planEmbeddingGrad(tokenIds: ArrayLike<number>, vocab: number): EmbeddingGradPlan {
  const T = tokenIds.length;
  for (let t = 0; t < T; t++) {
    const id = tokenIds[t];
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) throw new KernelError(`embedding_grad: id ${id} at position ${t} is outside the vocabulary of ${vocab}`);
  }
  const order = Uint32Array.from({ length: T }, (_, t) => t).sort((a, b) => tokenIds[a] - tokenIds[b] || a - b);
  const ids: number[] = [];
  const starts: number[] = [];
  for (let k = 0; k < T; k++) {
    const id = tokenIds[order[k]];
    if (k === 0 || id !== ids[ids.length - 1]) {
      ids.push(id);
      starts.push(k);
    }
  }
  starts.push(T);
  return { order, starts: Uint32Array.from(starts), ids: Uint32Array.from(ids) };
}

export interface EmbeddingGradShard {
  /** (rows, C) f32: rows firstRow … firstRow + rows − 1 of the gradient table. */
  dE: BufferRef;
  firstRow: number;
  rows: number;
}

/** dE (+)= the embedding gradient of dx (T, C) for the plan's ids, into each shard the ids fall in. `order`, `starts`
 *  and `ids` are the plan uploaded as u32 buffers. */
export function recordEmbeddingGrad(
  rec: Recorder,
  s: { T: number; C: number },
  plan: EmbeddingGradPlan,
  b: { dx: BufferRef; order: BufferRef; starts: BufferRef; ids: BufferRef },
  shards: readonly EmbeddingGradShard[],
  accumulate = true,
  maxPerDispatch = 65535,
): void {
  const U = plan.ids.length;
  let u = 0;
  for (const shard of shards) {
    const end = shard.firstRow + shard.rows;
    // The distinct ids are ascending and the shards cover the table in order: the shard's ids are the next run.
    if (u < U && plan.ids[u] < shard.firstRow) throw new KernelError(`embedding_grad: id ${plan.ids[u]} lies in no shard (shards must cover the table in order)`);
    let last = u;
    while (last < U && plan.ids[last] < end) last++;
    for (let first = u; first < last; first += maxPerDispatch) {
      const count = Math.min(maxPerDispatch, last - first);
      const positions = plan.starts[first + count] - plan.starts[first];
      rec.dispatch(
        embeddingGradSpec(accumulate),
        [b.dx, b.order, b.starts, b.ids, shard.dE],
        packParams([
          ['u32', s.C],
          ['u32', count],
          ['u32', first],
          ['u32', shard.firstRow],
        ]),
        [Math.ceil(s.C / 64), count, 1],
        { flops: positions * s.C, bytes: positions * s.C * 4 + count * s.C * 4 * (accumulate ? 2 : 1) },
      );
    }
    u = last;
  }
  if (u < U && shards.length) throw new KernelError(`embedding_grad: id ${plan.ids[u]} lies in no shard`);
}
