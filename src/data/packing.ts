// Packing: several short rows in one block of at most maxLength tokens, so a micro-batch holds
// fewer pad tokens. Each block carries segment ids (1, 2, … per row; the batcher pads with 0) and
// positions that restart at 0 for every row; the attention mask is block-diagonal causal
// (query t sees key s when segment[s] == segment[t] and s <= t).
//
// The label of each row's first token becomes -100 in the block: otherwise the last position of
// the previous row would be trained to predict it across the boundary. Unpacked, labels[0] is never
// a target either, so packing leaves the loss (sum and count of trained positions) unchanged.
//
// Next-fit in the given order (shuffle first if wanted): deterministic, one pass, keeps order.

import { IGNORE_INDEX, type TokenizedRow } from './encode.ts';

export interface PackedRow extends TokenizedRow {
  segment_ids: Int32Array;
  positions: Int32Array;
  /** Indices of the source rows in this block, in order. */
  sources: number[];
}

export function packRows(rows: readonly TokenizedRow[], maxLength: number): PackedRow[] {
  if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`maxLength must be a positive integer, got ${maxLength}`);
  const blocks: PackedRow[] = [];
  let group: number[] = [];
  let groupLength = 0;
  const flush = () => {
    if (group.length > 0) blocks.push(buildBlock(rows, group, groupLength));
    group = [];
    groupLength = 0;
  };
  rows.forEach((row, i) => {
    const n = row.input_ids.length;
    if (n > maxLength) throw new RangeError(`row ${i} has ${n} tokens, more than maxLength ${maxLength}; truncate first`);
    if (groupLength + n > maxLength) flush();
    group.push(i);
    groupLength += n;
  });
  flush();
  return blocks;
}

function buildBlock(rows: readonly TokenizedRow[], group: number[], length: number): PackedRow {
  const input_ids = new Int32Array(length);
  const labels = new Int32Array(length);
  const segment_ids = new Int32Array(length);
  const positions = new Int32Array(length);
  let at = 0;
  group.forEach((rowIndex, k) => {
    const row = rows[rowIndex];
    const n = row.input_ids.length;
    input_ids.set(row.input_ids, at);
    labels.set(row.labels, at);
    labels[at] = IGNORE_INDEX;
    segment_ids.fill(k + 1, at, at + n);
    for (let t = 0; t < n; t++) positions[at + t] = t;
    at += n;
  });
  return { input_ids, labels, segment_ids, positions, sources: group.slice() };
}
