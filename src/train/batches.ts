// From the data pipeline's micro-batches (B rows padded to T) to the engine's packed batch (one sequence of B·T
// tokens with segment ids): each row's segments get ids of their own, so no row attends to another, and every
// position predicts the next token of its own segment only.
import type { MicroBatch } from '../data/batcher.ts';
import { IGNORE_INDEX } from '../data/encode.ts';
import type { HostBatch } from '../model/runtime/transformer.ts';

/** `firstPosition`: where every segment's positions start — 0, or P under an attention prefix (prefix tuning: the
 *  prefix's P key/value rows take positions 0 … P − 1, as transformers counts positions from the cache's length). */
export function toHostBatch(mb: MicroBatch, firstPosition = 0): HostBatch {
  const n = mb.B * mb.T;
  const tokens = new Uint32Array(n);
  const positions = new Uint32Array(n);
  const segments = new Uint32Array(n);
  const targets = new Int32Array(n).fill(IGNORE_INDEX);
  let maxSegment = 0;
  for (let i = 0; i < n; i++) maxSegment = Math.max(maxSegment, mb.segmentIds[i]);
  const perRow = maxSegment + 1; // padding is segment 0 of its row
  for (let b = 0; b < mb.B; b++) {
    for (let t = 0; t < mb.T; t++) {
      const i = b * mb.T + t;
      tokens[i] = mb.tokens[i];
      positions[i] = mb.positions[i] + firstPosition;
      segments[i] = b * perRow + mb.segmentIds[i];
      const next = i + 1;
      if (t + 1 < mb.T && mb.segmentIds[next] === mb.segmentIds[i] && mb.segmentIds[i] !== 0) targets[i] = mb.labels[next];
    }
  }
  return { tokens, positions, segments, targets, firstPosition };
}

/** Positions whose target counts in the loss. */
export function countTargets(b: HostBatch): number {
  let n = 0;
  for (const t of b.targets) if (t !== IGNORE_INDEX) n++;
  return n;
}
