// Host side of xent.wgsl: cross-entropy fused with the LM head, processed in chunks of token rows so only one chunk's
// logits (chunkRows, V) ever exist, with the gradient of the hidden states computed in the same pass over each
// chunk (the logits are computed once, not once for the loss and again for the backward). See the .wgsl header.
import source from '../../shaders/xent.wgsl?raw';
import { packParams, type BufferRef, type DispatchCost, type KernelSpec, type Recorder } from '../kernel.ts';
import { recordMatmul, type MatmulVariant } from './matmul.ts';
import { renderWgsl, type ElementType } from '../wgsl.ts';
import type { XentShape } from '../ref/xent.ref.ts';
import { shardsOf, tableElem, type RowShardedTable, type TableShard } from '../sharded.ts';
import { elemBytes } from './cost.ts';

export type { XentShape } from '../ref/xent.ref.ts';

export const XENT_ENTRIES = ['logitsTiled', 'rowStats', 'gradHidden', 'reduce'] as const;
export type XentEntry = (typeof XENT_ENTRIES)[number];

export { DEFAULT_CHUNK_ROWS, XENT_LOGITS_BUDGET_BYTES, xentChunkRows } from './xent-chunk.ts';
import { DEFAULT_CHUNK_ROWS } from './xent-chunk.ts';

export interface XentSpecOptions {
  entry: XentEntry;
  /** Storage of Wh; only logitsTiled and gradHidden read it. */
  elem?: ElementType;
  writeGrad?: boolean;
  /** reduce: add into total; gradHidden: continue the running sum in dhs (every Wh shard after the first). */
  accumulate?: boolean;
}

export function xentSpec(o: XentSpecOptions): KernelSpec {
  const readsWh = o.entry === 'logitsTiled' || o.entry === 'gradHidden';
  const elem = readsWh ? (o.elem ?? 'f32') : 'f32';
  const flags = [o.writeGrad && 'grad', o.accumulate && 'acc'].filter(Boolean);
  return {
    label: `xent.${o.entry}${readsWh ? '.' + elem : ''}${flags.length ? '.' + flags.join('.') : ''}`,
    file: 'src/shaders/xent.wgsl',
    wgsl: renderWgsl('xent', source, { ELEM: elem }),
    entryPoint: o.entry,
    constants: { WRITE_GRAD: o.writeGrad ? 1 : 0, ACCUMULATE: o.accumulate ? 1 : 0 },
    bindings: ['read', 'read', 'read', 'read_write', 'read_write'],
    paramsBytes: 48,
  };
}

/** Every spec the runtime can instantiate, for the compile-everything test. */
export function allXentSpecs(hasF16: boolean): KernelSpec[] {
  const elems: ElementType[] = hasF16 ? ['f32', 'f16'] : ['f32'];
  const specs: KernelSpec[] = [];
  for (const elem of elems) {
    specs.push(xentSpec({ entry: 'logitsTiled', elem }));
    for (const accumulate of [false, true]) specs.push(xentSpec({ entry: 'gradHidden', elem, accumulate }));
  }
  for (const writeGrad of [false, true]) specs.push(xentSpec({ entry: 'rowStats', writeGrad }));
  for (const accumulate of [false, true]) specs.push(xentSpec({ entry: 'reduce', accumulate }));
  return specs;
}

/** `shard`: the Wh shard bound (logitsTiled, gradHidden); the other entries ignore it. */
function params(s: XentShape, row0: number, rows: number, gradScale: number, logitsOffset: number, shard?: TableShard): ArrayBuffer {
  return packParams([
    ['u32', s.T],
    ['u32', s.C],
    ['u32', s.V],
    ['u32', row0],
    ['u32', rows],
    ['f32', gradScale],
    ['u32', logitsOffset],
    ['u32', shard?.firstRow ?? 0],
    ['u32', shard?.rows ?? s.V],
    ['u32', 0],
    ['u32', 0],
  ]);
}

/** logitsTiled: rows×cols logits from C-long dot products, reading hs rows and the Wh shard, writing the logits.
 *  gradHidden: the transpose product into dhs (read too when accumulating). */
function productCost(rows: number, cols: number, C: number, elem: ElementType | undefined, accumulate = false): DispatchCost {
  return { flops: 2 * rows * cols * C, bytes: rows * C * 4 * (accumulate ? 2 : 1) + cols * C * elemBytes(elem) + rows * cols * 4 };
}

/** rowStats: max, Σexp and the loss over each row's V logits (≈ 4 FLOPs per logit, one more writing the gradient). */
function rowStatsCost(rows: number, V: number, withGrad: boolean): DispatchCost {
  return { flops: rows * V * (withGrad ? 5 : 4), bytes: rows * V * 4 * (withGrad ? 2 : 1) + rows * 12 };
}

function checkShape(s: XentShape): void {
  for (const key of ['T', 'C', 'V'] as const) {
    if (!(Number.isInteger(s[key]) && s[key] > 0)) throw new RangeError(`xent: ${key} = ${s[key]} must be a positive integer`);
  }
}

/** Elements of the f32 `work` scratch recordCrossEntropy needs: the row stats (2T) and one chunk's logits. */
export function xentScratchElements(shape: XentShape, chunkRows = DEFAULT_CHUNK_ROWS): number {
  return logitsOffsetFor(shape.T) + Math.min(chunkRows, shape.T) * shape.V;
}

/** Where the logits start in `work`: after the row stats (2T), rounded up to 64 floats so they start on a vec4
 *  boundary whatever T (blocked4 then applies to the dhs product, which reads them at this element offset). */
function logitsOffsetFor(T: number): number {
  return Math.ceil((2 * T) / 64) * 64;
}

export interface XentBuffers {
  hs: GPUBuffer; // (T, C) f32
  /** [V, C] f32 or f16: one buffer, or split by rows into shards (one logits and one dhs dispatch per shard). */
  Wh: GPUBuffer | RowShardedTable;
  labels: GPUBuffer; // (T) i32, already shifted; −100 = ignore
  /** f32 scratch of xentScratchElements(shape, chunkRows). */
  work: GPUBuffer;
  /** (2) f32 output: [loss sum, count of counted tokens] (added to when accumulate). */
  total: GPUBuffer;
  /** (T, C) f32 output: the gradient of gradScale·(loss sum) w.r.t. hs. Omit for the loss alone (eval). */
  dhs?: GPUBuffer;
  /** [V, C] f32, added to: the LM head's own gradient Σ_t (softmax − onehot)_t·gradScale ⊗ hs_t, for training the
   *  head (full fine-tuning). Needs dhs, `matmul` and a one-shard head; zero it before the first micro-batch. */
  dWh?: BufferRef;
}

export interface XentOptions {
  elem?: ElementType;
  /** 1/N with N the counted tokens of the whole accumulated batch (token-weighted loss). Needed with dhs. */
  gradScale?: number;
  /** Add the loss sum and count into `total` (accumulating over micro-batches). */
  accumulate?: boolean;
  chunkRows?: number;
  /** Compute the logits and dhs with this matmul variant (the engine's fastest) instead of the kernel's own 16×16
   *  tiles, where the head is one shard. */
  matmul?: MatmulVariant;
}

/** Loss sum and count of counted tokens into `total`, and dhs when given, chunk by chunk over the T rows. */
export function recordCrossEntropy(rec: Recorder, shape: XentShape, buffers: XentBuffers, options: XentOptions = {}): void {
  checkShape(shape);
  const { T, C, V } = shape;
  const chunkRows = Math.min(options.chunkRows ?? DEFAULT_CHUNK_ROWS, T);
  const maxGroups = 65535;
  if (!(Number.isInteger(chunkRows) && chunkRows > 0 && chunkRows <= maxGroups)) {
    throw new RangeError(`xent: chunkRows = ${options.chunkRows} must be an integer in 1..${maxGroups}`);
  }
  const withGrad = !!buffers.dhs;
  const gradScale = options.gradScale ?? 0;
  if (withGrad && !(Number.isFinite(gradScale) && gradScale >= 0)) {
    throw new RangeError(`xent: gradScale = ${options.gradScale} must be a finite number ≥ 0 (1/N counted tokens)`);
  }
  const { hs, Wh, labels, work, total, dhs, dWh } = buffers;
  const logitsOffset = logitsOffsetFor(T);
  const elem = tableElem('xent', Wh, V, C, options.elem);
  const shards = shardsOf(Wh, V);
  // `out` is dhs for gradHidden and total for reduce; the chunk passes that write neither get total.
  // The matmul path binds whole buffers at element offsets, not ranges: the bind groups stay the same whatever the rows.
  const viaMatmul = options.matmul !== undefined && shards.length === 1;
  if (dWh && !(viaMatmul && dhs)) throw new RangeError('xent: dWh needs dhs, a matmul variant and a one-shard head');
  for (let row0 = 0; row0 < T; row0 += chunkRows) {
    const rows = Math.min(chunkRows, T - row0);
    // The chunk's logits, shard by shard into their columns; then the row stats over the whole row.
    if (viaMatmul) {
      recordMatmul(
        rec,
        { M: rows, N: V, K: C, transB: true, offsetA: row0 * C, offsetC: logitsOffset },
        { A: hs, B: shards[0].buffer, C: work },
        { variant: options.matmul!, elemB: elem },
      );
    } else {
      for (const shard of shards) {
        rec.dispatch(
          xentSpec({ entry: 'logitsTiled', elem }),
          [hs, shard.buffer, labels, work, total],
          params(shape, row0, rows, gradScale, logitsOffset, shard),
          [Math.ceil(shard.rows / 16), Math.ceil(rows / 16), 1],
          productCost(rows, shard.rows, C, elem),
        );
      }
    }
    const prm = params(shape, row0, rows, gradScale, logitsOffset);
    rec.dispatch(xentSpec({ entry: 'rowStats', writeGrad: withGrad }), [hs, shards[0].buffer, labels, work, total], prm, [rows, 1, 1], rowStatsCost(rows, V, withGrad));
    if (dhs && viaMatmul) {
      // dhs rows = (softmax − onehot)·gradScale, now in the logits' place, times Wh [V, C].
      recordMatmul(
        rec,
        { M: rows, N: C, K: V, offsetA: logitsOffset, offsetC: row0 * C },
        { A: work, B: shards[0].buffer, C: dhs },
        { variant: options.matmul!, elemB: elem },
      );
      // dWh += Gᵀ·hs over this chunk's rows (G stored (rows, V): transA).
      if (dWh) {
        recordMatmul(
          rec,
          { M: V, N: C, K: rows, transA: true, offsetA: logitsOffset, offsetB: row0 * C },
          { A: work, B: hs, C: dWh },
          { variant: options.matmul!, accumulate: true },
        );
      }
    } else if (dhs) {
      shards.forEach((shard, i) => {
        rec.dispatch(
          xentSpec({ entry: 'gradHidden', elem, accumulate: i > 0 }),
          [hs, shard.buffer, labels, work, dhs],
          params(shape, row0, rows, gradScale, logitsOffset, shard),
          [Math.ceil(C / 16), Math.ceil(rows / 16), 1],
          productCost(rows, shard.rows, C, elem, i > 0),
        );
      });
    }
  }
  rec.dispatch(
    xentSpec({ entry: 'reduce', accumulate: options.accumulate }),
    [hs, shards[0].buffer, labels, work, total],
    params(shape, 0, T, gradScale, logitsOffset),
    [1, 1, 1],
    { flops: T, bytes: T * 8 },
  );
}

/** Plain logits (rows, V) = hs[row0 : row0+rows]·Whᵀ into `logits`, e.g. the last position's for generation. */
export function recordLogits(
  rec: Recorder,
  shape: { C: number; V: number; T: number },
  buffers: { hs: GPUBuffer; Wh: GPUBuffer | RowShardedTable; logits: GPUBuffer },
  options: { elem?: ElementType; row0?: number; rows?: number } = {},
): void {
  checkShape(shape);
  const row0 = options.row0 ?? 0;
  const rows = options.rows ?? shape.T - row0;
  if (!(Number.isInteger(row0) && Number.isInteger(rows) && row0 >= 0 && rows > 0 && row0 + rows <= shape.T)) {
    throw new RangeError(`recordLogits: rows ${row0}..${row0 + rows} outside the T = ${shape.T} rows of hs`);
  }
  // logitsTiled reads hs and Wh and writes `work` only: labels gets hs (read-only either way), out the spare buffer.
  // A sharded Wh: one dispatch per shard, each into its own columns of the (rows, V) logits.
  const { hs, Wh, logits } = buffers;
  const elem = tableElem('recordLogits', Wh, shape.V, shape.C, options.elem);
  for (const shard of shardsOf(Wh, shape.V)) {
    rec.dispatch(
      xentSpec({ entry: 'logitsTiled', elem }),
      [hs, shard.buffer, hs, logits, rec.unused],
      params(shape, row0, rows, 0, 0, shard),
      [Math.ceil(shard.rows / 16), Math.ceil(rows / 16), 1],
      productCost(rows, shard.rows, shape.C, elem),
    );
  }
}
