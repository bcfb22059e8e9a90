// Row-sharded tables: a (rows, cols) weight too big for one storage binding (GPT-2's wte in f32 is 154 MB, over
// lavapipe's 128 MiB maxStorageBufferBindingSize; Qwen2.5-0.5B's embedding is 272 MB even in f16) is kept as
// consecutive row ranges, one GPU buffer each, every one within the binding limit. The kernels that read such a
// table (the embedding gather, the LM head inside cross-entropy) run once per shard on that shard's row range.
// A table that fits is one shard holding every row: the single-buffer path, unchanged.
import { align4, STORAGE_USAGE, type BufferPool } from './buffers.ts';
import type { ElementType } from './wgsl.ts';

export interface TableShard {
  buffer: GPUBuffer; // (rows, cols) elem: rows firstRow … firstRow + rows − 1 of the table
  firstRow: number;
  rows: number;
}

export interface RowShardedTable {
  rows: number;
  cols: number;
  elem: ElementType;
  /** In row order, covering 0 … rows − 1 without gaps. */
  shards: TableShard[];
}

export type ShardPlan = { firstRow: number; rows: number }[];

export class ShardPlanError extends Error {
  override name = 'ShardPlanError';
}

export function bytesPerElement(elem: ElementType): number {
  return elem === 'f16' ? 2 : 4;
}

/** The largest buffer a table shard may be: one binding, and one buffer. */
export function tableBindingLimit(device: GPUDevice): number {
  return Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
}

/**
 * Row ranges for a (rows, cols) table of `bytesPerElement`-byte elements such that every shard's buffer (its bytes
 * rounded up to 4) is at most `maxBindingBytes`. All shards but the last hold the same number of rows, chosen so their
 * byte size is a multiple of 4: every shard then starts on an even element, which keeps the f16 uploads' 4-byte
 * aligned writes aligned. One shard when the whole table fits.
 */
export function planRowShards(rows: number, cols: number, bytesPerElement: number, maxBindingBytes: number): ShardPlan {
  for (const [name, v] of [['rows', rows], ['cols', cols], ['bytesPerElement', bytesPerElement]] as const) {
    if (!(Number.isInteger(v) && v > 0)) throw new ShardPlanError(`planRowShards: ${name} = ${v} must be a positive integer`);
  }
  if (!(maxBindingBytes > 0)) throw new ShardPlanError(`planRowShards: maxBindingBytes = ${maxBindingBytes} must be positive`);
  const rowBytes = cols * bytesPerElement;
  if (align4(rows * rowBytes) <= maxBindingBytes) return [{ firstRow: 0, rows }];
  let perShard = Math.floor(maxBindingBytes / rowBytes);
  while (perShard > 0 && (perShard * rowBytes) % 4 !== 0) perShard--;
  if (perShard === 0) {
    throw new ShardPlanError(
      `planRowShards: a shard of ${maxBindingBytes} bytes cannot hold a 4-byte-aligned run of rows of ${rowBytes} bytes (${cols} columns)`,
    );
  }
  const plan: ShardPlan = [];
  for (let firstRow = 0; firstRow < rows; firstRow += perShard) plan.push({ firstRow, rows: Math.min(perShard, rows - firstRow) });
  return plan;
}

/** Allocates the shards of a (rows, cols) table (contents undefined until written). */
export function allocateRowSharded(
  pool: BufferPool,
  rows: number,
  cols: number,
  elem: ElementType,
  maxBindingBytes: number,
  label = 'table',
): RowShardedTable {
  const bpe = bytesPerElement(elem);
  const plan = planRowShards(rows, cols, bpe, maxBindingBytes);
  const shards = plan.map((s, i) => ({
    ...s,
    buffer: pool.acquire(s.rows * cols * bpe, STORAGE_USAGE, plan.length > 1 ? `${label}[${i}]` : label),
  }));
  return { rows, cols, elem, shards };
}

/**
 * Writes `data` (elements `elementOffset …` of the row-major table, f32 or f16 bits as the table's elem) into the
 * shards it spans. Writes must start 4-byte aligned within their shard (an even element for f16; shards start on
 * even elements), and only a write that ends the table may hold an odd number of f16 elements (it is padded).
 */
export function writeRows(device: GPUDevice, table: RowShardedTable, elementOffset: number, data: Float32Array | Uint16Array): void {
  const bpe = bytesPerElement(table.elem);
  if (data.BYTES_PER_ELEMENT !== bpe) throw new ShardPlanError(`writeRows: ${table.elem} table given ${data.constructor.name} data`);
  const total = table.rows * table.cols;
  if (!(Number.isInteger(elementOffset) && elementOffset >= 0 && elementOffset + data.length <= total)) {
    throw new ShardPlanError(`writeRows: elements ${elementOffset}..${elementOffset + data.length} outside the table's ${total}`);
  }
  let done = 0;
  for (const shard of table.shards) {
    if (done === data.length) break;
    const start = shard.firstRow * table.cols;
    const end = start + shard.rows * table.cols;
    const from = elementOffset + done;
    if (from >= end) continue;
    const n = Math.min(end, elementOffset + data.length) - from;
    const byteOffset = (from - start) * bpe;
    if (byteOffset % 4 !== 0) throw new ShardPlanError(`writeRows: element ${from} is not 4-byte aligned within its shard`);
    const piece = data.subarray(done, done + n);
    const bytes = new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength);
    const padded = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
    device.queue.writeBuffer(shard.buffer, byteOffset, padded.buffer as ArrayBuffer, padded.byteOffset, padded.byteLength);
    done += n;
  }
}

/** A table uploaded whole from `data` ((rows, cols) row-major; f16 as its bits), split at `maxBindingBytes`. */
export function uploadRowSharded(
  pool: BufferPool,
  device: GPUDevice,
  data: Float32Array | Uint16Array,
  rows: number,
  cols: number,
  maxBindingBytes: number,
  label = 'table',
): RowShardedTable {
  if (data.length !== rows * cols) throw new ShardPlanError(`uploadRowSharded: ${data.length} elements for a (${rows}, ${cols}) table`);
  const elem: ElementType = data instanceof Uint16Array ? 'f16' : 'f32';
  const table = allocateRowSharded(pool, rows, cols, elem, maxBindingBytes, label);
  writeRows(device, table, 0, data);
  return table;
}

export function releaseRowSharded(pool: BufferPool, table: RowShardedTable): void {
  for (const s of table.shards) pool.release(s.buffer);
}

/** Bytes of GPU memory the table's shards hold. */
export function rowShardedBytes(table: RowShardedTable): number {
  return table.shards.reduce((sum, s) => sum + s.buffer.size, 0);
}

/** The shards of a table given either as a RowShardedTable or as one plain (rows, …) buffer (one shard). */
export function shardsOf(table: GPUBuffer | RowShardedTable, rows: number): readonly TableShard[] {
  return isRowSharded(table) ? table.shards : [{ buffer: table, firstRow: 0, rows }];
}

export function isRowSharded(x: GPUBuffer | RowShardedTable): x is RowShardedTable {
  return typeof x === 'object' && x !== null && 'shards' in x;
}

/** The storage type to read a table with: a sharded table carries its own (checked against the kernel's shape and any
 *  elem the caller gives); a plain buffer is whatever the caller says. */
export function tableElem(
  kernel: string,
  table: GPUBuffer | RowShardedTable,
  rows: number,
  cols: number,
  elem: ElementType | undefined,
): ElementType | undefined {
  if (!isRowSharded(table)) return elem;
  if (table.rows !== rows || table.cols !== cols) {
    throw new ShardPlanError(`${kernel}: table is (${table.rows}, ${table.cols}), the shape says (${rows}, ${cols})`);
  }
  if (elem !== undefined && elem !== table.elem) throw new ShardPlanError(`${kernel}: elem ${elem} given for a ${table.elem} table`);
  return table.elem;
}

function padTo4(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(align4(bytes.byteLength));
  out.set(bytes);
  return out;
}
