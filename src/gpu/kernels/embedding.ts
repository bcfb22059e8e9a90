// Host side of embedding.wgsl: the token (+ learned position) embedding gather. See the .wgsl header for the contract.
import source from '../../shaders/embedding.wgsl?raw';
import { KernelError, packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import type { EmbeddingShape } from '../ref/embedding.ref.ts';
import { shardsOf, tableElem, type RowShardedTable } from '../sharded.ts';
import { renderWgsl, type ElementType } from '../wgsl.ts';
import { elemBytes } from './cost.ts';
import { foldWorkgroups, type FoldOptions } from './elementwise.ts';

const WG = 256;

export interface EmbeddingOptions {
  /** Storage type of wte and wpe. */
  elem?: ElementType;
  /** Add learned position embeddings (GPT-2). */
  hasPos?: boolean;
}

export function embeddingSpec(o: EmbeddingOptions = {}): KernelSpec {
  const elem = o.elem ?? 'f32';
  return {
    label: `embedding.${elem}${o.hasPos ? '.pos' : ''}`,
    file: 'src/shaders/embedding.wgsl',
    wgsl: renderWgsl('embedding', source, { ELEM: elem }),
    entryPoint: 'forward',
    constants: { HAS_POS: o.hasPos ? 1 : 0 },
    bindings: ['read', 'read', 'read', 'read', 'read_write'],
    paramsBytes: 32,
  };
}

export function allEmbeddingSpecs(hasF16: boolean): KernelSpec[] {
  const elems: ElementType[] = hasF16 ? ['f32', 'f16'] : ['f32'];
  return elems.flatMap((elem) => [false, true].map((hasPos) => embeddingSpec({ elem, hasPos })));
}

export interface EmbeddingBuffers {
  ids: GPUBuffer; // (rows) u32
  /** (vocab, C) elem: one buffer, or split by rows into shards (one dispatch per shard). */
  wte: GPUBuffer | RowShardedTable;
  out: BufferRef; // (rows, C) f32
  /** (rows) u32 and (maxPos, C) elem, for learned positions; give both or neither. */
  positions?: GPUBuffer;
  wpe?: GPUBuffer;
}

/** out[t] = wte[ids[t]] (+ wpe[positions[t]]). Out-of-range ids/positions contribute zeros (see the .wgsl).
 *  A sharded wte is gathered shard by shard, each token written by the one dispatch that owns its id. */
export function recordEmbedding(
  rec: Recorder,
  shape: EmbeddingShape,
  b: EmbeddingBuffers,
  options: { elem?: ElementType } & FoldOptions = {},
): void {
  const hasPos = !!b.wpe;
  if (hasPos !== !!b.positions) throw new KernelError('embedding: positions and wpe go together; give both or neither');
  if (hasPos && !shape.maxPos) throw new KernelError(`embedding: wpe given but shape.maxPos is ${shape.maxPos}`);
  const elem = tableElem('embedding', b.wte, shape.vocab, shape.C, options.elem);
  const workgroups = foldWorkgroups(Math.ceil((shape.rows * shape.C) / WG), options.maxWorkgroupsPerDim);
  const shards = shardsOf(b.wte, shape.vocab);
  // Each shard's dispatch reads every id and writes the tokens it owns: the table rows and outputs are split evenly
  // among the shards here (the ids' true split is known only on the GPU).
  const perToken = shape.C * (4 + elemBytes(elem) * (hasPos ? 2 : 1));
  const cost = {
    flops: hasPos ? (shape.rows * shape.C) / shards.length : 0,
    bytes: shape.rows * 4 * (hasPos ? 2 : 1) + (shape.rows * perToken) / shards.length,
  };
  shards.forEach((shard, i) => {
    const params = packParams([
      ['u32', shape.rows],
      ['u32', shape.C],
      ['u32', shape.vocab],
      ['u32', hasPos ? shape.maxPos! : 0],
      ['u32', shard.firstRow],
      ['u32', shard.rows],
      ['u32', i === 0 ? 1 : 0], // ids past the vocabulary: zeros (+ position), written once
      ['u32', 0],
    ]);
    rec.dispatch(
      embeddingSpec({ elem, hasPos }),
      [b.ids, b.positions ?? rec.unused, shard.buffer, b.wpe ?? rec.unused, b.out],
      params,
      workgroups,
      cost,
    );
  });
}
