// Helpers for tests that run whole models: the committed fixtures and their transformers goldens.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostBatch } from './transformer.ts';

export const FIXTURES = join(process.cwd(), 'tests', 'fixtures');

export interface GoldenRow {
  input_ids: number[];
  labels: number[];
  /** (len, V) logits from transformers in float64. */
  logits: number[][];
}

export interface ModelGolden {
  fixture: string;
  rows: GoldenRow[];
  loss: number;
  tokens: number;
}

export function readGolden(name: string): ModelGolden {
  return JSON.parse(readFileSync(join(FIXTURES, 'golden', `${name}.json`), 'utf8'));
}

/** Rows packed along T, one segment per row; targets[t] = labels[t+1] within a row, −100 at each row's end. */
export function packRows(rows: { input_ids: number[]; labels?: number[] }[]): HostBatch {
  const T = rows.reduce((s, r) => s + r.input_ids.length, 0);
  const b: HostBatch = { tokens: new Uint32Array(T), positions: new Uint32Array(T), segments: new Uint32Array(T), targets: new Int32Array(T) };
  let t = 0;
  rows.forEach((row, seg) => {
    const labels = row.labels ?? row.input_ids;
    row.input_ids.forEach((id, p) => {
      b.tokens[t] = id;
      b.positions[t] = p;
      b.segments[t] = seg;
      b.targets[t] = p + 1 < labels.length ? labels[p + 1] : -100;
      t++;
    });
  });
  return b;
}
