// The rows a run trains on, and its sample prompt: pure helpers of the worker's training (and its evaluation and
// cluster export, which must see the rows exactly as the trainer does).
import { IGNORE_INDEX, type TokenizedRow } from '../../data/index.ts';

/** Rows cut to the config's max length (the first maxLength tokens, as the loss contract truncates); rows left with
 *  no trained position are dropped and counted. */
export function truncateRows(rows: readonly TokenizedRow[], maxLength: number): { rows: TokenizedRow[]; dropped: number } {
  const out: TokenizedRow[] = [];
  let dropped = 0;
  for (const r of rows) {
    const row = r.input_ids.length > maxLength ? { input_ids: r.input_ids.subarray(0, maxLength), labels: r.labels.subarray(0, maxLength) } : r;
    let trained = false;
    for (let t = 1; t < row.labels.length && !trained; t++) trained = row.labels[t] !== IGNORE_INDEX;
    if (trained) out.push(row);
    else dropped++;
  }
  return { rows: out, dropped };
}

/** The fixed sample prompt from a row: everything before its first trained token (the question of a chat row, the
 *  instruction of an Alpaca row); for plain text, which trains from the start, its first few tokens. */
export function promptFromRow(row: TokenizedRow, maxPrompt: number): number[] {
  let first = 1;
  while (first < row.labels.length && row.labels[first] === IGNORE_INDEX) first++;
  const take = first >= 4 ? first : Math.min(8, Math.max(1, Math.floor(row.input_ids.length / 2)));
  return Array.from(row.input_ids.subarray(0, Math.min(take, maxPrompt)));
}
