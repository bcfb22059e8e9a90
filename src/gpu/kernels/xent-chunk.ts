// How many token rows the fused cross-entropy (xent.ts) processes at a time. Its own module, free of WGSL, so the
// memory estimate (src/model/memory.ts, used by the UI) counts the same chunk the engine allocates.

/** Rows per chunk at least (where the budget allows more, more: see xentChunkRows). */
export const DEFAULT_CHUNK_ROWS = 64;

/** The most one chunk's logits may take. The chunk's rows are also the parallelism of gradHidden (a workgroup per
 *  16×16 block of (rows, C), each looping over the whole vocabulary): 64 rows left a 132-SM GPU with ~200
 *  workgroups, so chunks are as large as this budget allows. */
export const XENT_LOGITS_BUDGET_BYTES = 128 * 1024 * 1024;

/** Rows per chunk for T rows over a V-token vocabulary: a multiple of 64 (the matmul's tile), at least DEFAULT_CHUNK_ROWS (or T), within
 *  `budgetBytes` of logits and, with `maxBindingBytes`, small enough that the whole `work` scratch (row stats and
 *  logits) fits one storage binding. */
export function xentChunkRows(T: number, V: number, maxBindingBytes = Infinity, budgetBytes = XENT_LOGITS_BUDGET_BYTES): number {
  const budget = Math.min(budgetBytes, maxBindingBytes - 2 * T * 4 - 256);
  const fit = Math.floor(budget / (V * 4) / 64) * 64;
  return Math.min(T, Math.max(DEFAULT_CHUNK_ROWS, fit));
}

