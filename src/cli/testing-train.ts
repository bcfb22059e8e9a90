// What the CLI's training tests share (train.gpu.test.ts, train-dora.gpu.test.ts): a learnable row set, JSONL files,
// an in-memory tuning cache and the relative difference. Test-only.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';

export interface Row {
  input_ids: number[];
  labels: number[];
}

/** A learnable task: each row counts up from a random start, the first two tokens a masked prompt. */
export function countingRows(n: number, len: number, vocab: number, seed: number): Row[] {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
  return Array.from({ length: n }, () => {
    const start = 3 + Math.floor(rnd() * (vocab - len - 4));
    const ids = Array.from({ length: len }, (_, i) => start + i);
    return { input_ids: ids, labels: ids.map((id, i) => (i < 2 ? -100 : id)) };
  });
}

/** `rows` as a JSONL file `name` in `dir`; its path. */
export function writeJsonl(dir: string, name: string, rows: object[]): string {
  const p = join(dir, name);
  writeFileSync(p, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
}

export const memoryCache = (): TuningCache => {
  const m = new Map<string, string>();
  return { get: (k) => m.get(k), set: (k, v) => void m.set(k, v) };
};

export const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
