// Micro-batches for the trainer: B rows padded to a common length T, flattened row-major.
//
//   tokens      (B, T) int32  token ids; padding = padId
//   labels      (B, T) int32  aligned with tokens (the trainer shifts: logits at t predict labels[t+1]);
//                             -100 = ignored, and on every padding position
//   segmentIds  (B, T) int32  1, 2, … per packed row (1 for an unpacked row); padding is segment 0
//   positions   (B, T) int32  restart at 0 in every segment, padding included
//
// Order: rows in a seeded permutation per epoch (seed null = file order). batch(epoch, k) is random
// access, so a resumed run rebuilds exactly the batch it stopped at from (epoch, k) alone.
// T is the longest row of the batch rounded up to padToMultipleOf, or a fixed seqLen.

import { IGNORE_INDEX, type TokenizedRow } from './encode.ts';
import type { PackedRow } from './packing.ts';
import { deriveSeed, permutation } from './rng.ts';

export interface MicroBatch {
  B: number;
  T: number;
  tokens: Int32Array;
  labels: Int32Array;
  segmentIds: Int32Array;
  positions: Int32Array;
  /** Indices into the batcher's rows. */
  rowIndices: number[];
  /** Positions whose label counts in the loss: labels[b, t] != -100 with t >= 1. */
  trainedTokens: number;
}

export interface BatcherOptions {
  batchSize: number;
  padId: number;
  /** Shuffle seed; null keeps file order every epoch. */
  seed: number | null;
  /** Drop a last, smaller batch (default false: it is kept with fewer rows). */
  dropLast?: boolean;
  /** A fixed T; rows longer than it are an error. Default: the longest row in the batch. */
  seqLen?: number;
  padToMultipleOf?: number;
}

export class Batcher {
  readonly batchesPerEpoch: number;
  private orderCache: { epoch: number; order: Uint32Array } | null = null;

  constructor(readonly rows: readonly (TokenizedRow | PackedRow)[], readonly options: BatcherOptions) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    if (rows.length === 0) throw new RangeError('Batcher needs at least one row');
    this.batchesPerEpoch = options.dropLast ? Math.floor(rows.length / batchSize) : Math.ceil(rows.length / batchSize);
    if (this.batchesPerEpoch === 0) {
      throw new RangeError(`dropLast with ${rows.length} rows and batchSize ${batchSize} leaves no batch`);
    }
  }

  /** The row order of an epoch. */
  order(epoch: number): Uint32Array {
    if (this.orderCache?.epoch === epoch) return this.orderCache.order;
    const n = this.rows.length;
    let order: Uint32Array;
    if (this.options.seed === null) {
      order = new Uint32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
    } else {
      order = permutation(n, deriveSeed(this.options.seed, epoch));
    }
    this.orderCache = { epoch, order };
    return order;
  }

  batch(epoch: number, index: number): MicroBatch {
    if (!Number.isInteger(index) || index < 0 || index >= this.batchesPerEpoch) {
      throw new RangeError(`batch index ${index} outside [0, ${this.batchesPerEpoch})`);
    }
    const order = this.order(epoch);
    const { batchSize } = this.options;
    const rowIndices = Array.from(order.subarray(index * batchSize, Math.min(order.length, (index + 1) * batchSize)));
    return collate(rowIndices.map((i) => this.rows[i]), rowIndices, this.options);
  }

  *epoch(epoch: number, startBatch = 0): Generator<MicroBatch> {
    for (let k = startBatch; k < this.batchesPerEpoch; k++) yield this.batch(epoch, k);
  }
}

/** Pad and stack rows into one micro-batch. */
export function collate(
  rows: readonly (TokenizedRow | PackedRow)[],
  rowIndices: number[],
  options: Pick<BatcherOptions, 'padId' | 'seqLen' | 'padToMultipleOf'>,
): MicroBatch {
  const B = rows.length;
  const longest = Math.max(...rows.map((r) => r.input_ids.length));
  let T: number;
  if (options.seqLen !== undefined) {
    if (longest > options.seqLen) throw new RangeError(`a row has ${longest} tokens, more than seqLen ${options.seqLen}`);
    T = options.seqLen;
  } else {
    const m = options.padToMultipleOf ?? 1;
    T = Math.ceil(longest / m) * m;
  }
  const tokens = new Int32Array(B * T).fill(options.padId);
  const labels = new Int32Array(B * T).fill(IGNORE_INDEX);
  const segmentIds = new Int32Array(B * T);
  const positions = new Int32Array(B * T);
  let trainedTokens = 0;
  rows.forEach((row, b) => {
    const n = row.input_ids.length;
    const base = b * T;
    tokens.set(row.input_ids, base);
    labels.set(row.labels, base);
    if ('segment_ids' in row) {
      segmentIds.set(row.segment_ids, base);
      positions.set(row.positions, base);
    } else {
      segmentIds.fill(1, base, base + n);
      for (let t = 0; t < n; t++) positions[base + t] = t;
    }
    for (let t = n; t < T; t++) positions[base + t] = t - n; // the padding segment starts at 0 too
    for (let t = 1; t < n; t++) if (row.labels[t] !== IGNORE_INDEX) trainedTokens++;
  });
  return { B, T, tokens, labels, segmentIds, positions, rowIndices, trainedTokens };
}
