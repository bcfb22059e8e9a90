// What the CLI's training tests share (train*.gpu.test.ts, compare-methods): a learnable row set, JSONL files, an
// in-memory tuning cache, the relative difference, and `train` / `eval` run on a shared engine with their JSON lines
// parsed. Test-only.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { driverName } from '../gpu/testing-gpu.ts';
import { evalCommand } from './eval.ts';
import type { CliIo } from './load.ts';
import { trainCommand } from './train.ts';

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

/** `lora-studio train ARGS` on `engine` (naive matmul, a fresh tuning cache): its step lines, its summary, its stderr. */
export async function runTrain(engine: Engine, args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { stdout: (l) => void out.push(l), stderr: (l) => void err.push(l), progress: () => {}, tty: false };
  await trainCommand(args, { io, engine, tuningCache: memoryCache(), matmulOverride: 'naive' });
  return { err, summary: JSON.parse(out.at(-1)!) as Record<string, number>, steps: out.slice(0, -1).map((l) => JSON.parse(l) as Record<string, number>) };
}

/** `lora-studio eval ARGS` on `engine`: its last line, {loss, tokens}. */
export async function runEval(engine: Engine, args: string[]): Promise<{ loss: number; tokens: number }> {
  const out: string[] = [];
  const io: CliIo = { stdout: (l) => void out.push(l), stderr: () => {}, progress: () => {}, tty: false };
  await evalCommand(args, { io, engine, tuningCache: memoryCache(), matmulOverride: 'naive' });
  return JSON.parse(out.at(-1)!) as { loss: number; tokens: number };
}

/** Leaves `out` as a run killed after logging step `loggedSteps` leaves it: no checkpoint past that step, none of the
 *  final files (adapter or model), metrics.jsonl cut to its first `loggedSteps` lines. */
export function simulateCrash(out: string, loggedSteps: number): void {
  for (const f of readdirSync(out)) {
    const checkpoint = /^checkpoint-(\d+)$/.exec(f);
    if (checkpoint ? Number(checkpoint[1]) > loggedSteps : f !== 'metrics.jsonl') rmSync(join(out, f), { recursive: true });
  }
  const metrics = join(out, 'metrics.jsonl');
  writeFileSync(metrics, readFileSync(metrics, 'utf8').split('\n').slice(0, loggedSteps).join('\n') + '\n');
}

/** A run's step lines as the curve a resumed run must repeat. */
export const curveOf = (steps: Record<string, number>[]) => steps.map((s) => ({ step: s.step, loss: s.loss, grad_norm: s.grad_norm, eval_loss: s.eval_loss }));

/** The CLI is the same on every driver (the kernels and goldens run on both): its end-to-end runs go once per suite,
 *  on lavapipe when the suite also runs on SwiftShader. */
export const OTHER_DRIVER = driverName === 'swiftshader' && existsSync(join(process.cwd(), '.webgpu', 'lavapipe', 'env.json'));
