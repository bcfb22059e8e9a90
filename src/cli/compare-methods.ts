// `lora-studio compare-methods`: the comparison of the article the product grew from (../shared/background/), run on
// one model and one dataset. Each row is one `train` run into --out/<row>/ with the same data, seed, steps, batch and
// evaluation split — full fine-tuning, LoRA r8 and r64, QLoRA r8, DoRA r8, IA³, Houlsby and Pfeiffer bottleneck
// adapters (reduction factor 16, at LoRA's rate) by default — then, where --prompt is
// given, one greedy generation of the same prompt with each result. A row the GPU cannot hold (full fine-tuning of a
// model over its binding limit) is reported as skipped with the reason; a row that fails is reported and the others
// still run.
//
// stdout: one JSON line per row, then nothing else; stderr: the table. --out/comparison.csv and comparison.json hold
// the same numbers.
//
// The rows and their learning rates are src/train/method-comparison.ts's (the studio's "Compare methods" runs the
// same); the base rate is --lr, or the preset's or the default's. Each row's rate is in its line and in the table.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { createEngine } from '../gpu/engine.ts';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { openNodeGpu } from '../gpu/node.ts';
import { GpuOutOfMemoryError } from '../gpu/buffers.ts';
import { resolveConfig } from '../train/config.ts';
import { METHOD_ROWS, type MethodRow } from '../train/method-comparison.ts';
import { FullModelTooLargeError } from '../train/methods/full/runtime.ts';
import { methodFor } from '../train/methods/registry.ts';
import { optionalString, parseFlags, requiredString, UsageError } from './args.ts';
import { generateCommand } from './generate.ts';
import type { CliIo } from './load.ts';
import { processIo } from './load.ts';
import { presetBase } from './preset.ts';
import { METRICS_FILE, trainCommand, type TrainSummary } from './train.ts';

/** A row's `train` flags beside the common ones. */
function rowFlags(row: MethodRow): string[] {
  const flags = ['--method', row.method];
  if (row.settings.rank !== undefined) flags.push('--rank', String(row.settings.rank));
  if (row.settings.alpha !== undefined) flags.push('--alpha', String(row.settings.alpha));
  if (row.quant === 'nf4') flags.push('--quant', 'nf4');
  if (!row.keepTargets) flags.push('--targets', '');
  return flags;
}

export const COMPARE_METHODS_USAGE =
  'lora-studio compare-methods --model DIR --data FILE.jsonl --steps N --out DIR ' +
  `[--methods ${METHOD_ROWS.map((r) => r.id).join(',')}] [--eval-data FILE | --eval-split FRACTION] [--lr BASE] [--batch N] ` +
  '[--max-len N] [--seed N] [--preset quick|balanced|quality] [--prompt TEXT] [--chat] [--max-new-tokens N]';

const FLAGS = {
  model: { type: 'string' },
  data: { type: 'string' },
  steps: { type: 'string' },
  out: { type: 'string' },
  methods: { type: 'string' },
  'eval-data': { type: 'string' },
  'eval-split': { type: 'string' },
  lr: { type: 'string' },
  batch: { type: 'string' },
  'max-len': { type: 'string' },
  seed: { type: 'string' },
  preset: { type: 'string' },
  prompt: { type: 'string' },
  chat: { type: 'boolean' },
  'max-new-tokens': { type: 'string' },
  help: { type: 'boolean' },
} as const;

/** One row's result, as its JSON line. */
export interface MethodResult {
  method: string;
  label: string;
  status: 'done' | 'skipped' | 'failed';
  /** Why it was skipped or failed. */
  reason?: string;
  lr: number;
  trainable_params?: number;
  trainable_pct?: number;
  final_loss?: number | null;
  final_eval_loss?: number | null;
  ms_per_step?: number;
  tokens_per_s?: number;
  peak_bytes?: number;
  /** The adapter's weights file, or the whole model's for full fine-tuning. */
  file_bytes?: number;
  generation?: string;
  out?: string;
}

export interface CompareMethodsDeps {
  io?: CliIo;
  engine?: Engine;
  tuningCache?: TuningCache;
  matmulOverride?: string;
}

export async function compareMethodsCommand(args: string[], deps: CompareMethodsDeps = {}): Promise<MethodResult[]> {
  const io = deps.io ?? processIo;
  const flags = parseFlags('compare-methods', args, FLAGS);
  if (flags.help) {
    io.stdout(`usage: ${COMPARE_METHODS_USAGE}`);
    return [];
  }
  const model = requiredString('compare-methods', flags, 'model');
  const data = requiredString('compare-methods', flags, 'data');
  const steps = requiredString('compare-methods', flags, 'steps');
  const out = requiredString('compare-methods', flags, 'out');
  const rows = selectRows(optionalString(flags, 'methods'));
  if (flags['eval-data'] !== undefined && flags['eval-split'] !== undefined) throw new UsageError('compare-methods: give --eval-data or --eval-split, not both');
  const baseLr = flags.lr !== undefined ? Number(flags.lr) : resolveConfig({}, presetBase(flags)).lr;
  if (!(baseLr > 0)) throw new UsageError(`compare-methods: --lr "${String(flags.lr)}" must be a positive number`);
  if (await stat(join(out, 'comparison.json')).catch(() => null)) throw new UsageError(`compare-methods: ${out} already holds a comparison: choose another --out`);
  await mkdir(out, { recursive: true });

  const common = ['--model', model, '--data', data, '--steps', steps];
  for (const flag of ['eval-data', 'eval-split', 'batch', 'max-len', 'seed', 'preset'] as const) {
    const v = flags[flag];
    if (typeof v === 'string') common.push(`--${flag}`, v);
  }
  const owned = deps.engine ? null : createEngine(await openNodeGpu());
  const e = deps.engine ?? owned!;
  const results: MethodResult[] = [];
  try {
    for (const row of rows) {
      const lr = baseLr * row.lrScale;
      const rowOut = join(out, row.id);
      const trainOut: string[] = [];
      const rowIo: CliIo = { stdout: (l) => void trainOut.push(l), stderr: () => {}, progress: () => {}, tty: false };
      // Each row's peak is its own: the pool's free buffers of the previous row go, and the peak restarts.
      e.buffers.trim();
      e.buffers.resetPeak();
      let result: MethodResult;
      try {
        await trainCommand([...common, ...rowFlags(row), '--lr', String(lr), '--out', rowOut], {
          io: rowIo,
          engine: e,
          tuningCache: deps.tuningCache,
          matmulOverride: deps.matmulOverride,
        });
        result = await summarise(row, lr, rowOut, trainOut);
      } catch (err) {
        // What the GPU cannot hold is a property of the row, not a failure of the comparison.
        const skipped = err instanceof FullModelTooLargeError || err instanceof GpuOutOfMemoryError;
        result = { method: row.id, label: row.label, status: skipped ? 'skipped' : 'failed', reason: (err as Error).message, lr };
      }
      if (result.status === 'done' && typeof flags.prompt === 'string') {
        result.generation = await generateWith(row, rowOut, model, flags.prompt, flags.chat === true, optionalString(flags, 'max-new-tokens') ?? '48', e, deps);
      }
      results.push(result);
      io.stdout(JSON.stringify(result));
    }
  } finally {
    owned?.gpu.destroy();
  }
  await writeFile(join(out, 'comparison.json'), `${JSON.stringify(results, null, 1)}\n`);
  await writeFile(join(out, 'comparison.csv'), comparisonCsv(results));
  for (const line of comparisonTable(results)) io.stderr(line);
  return results;
}

function selectRows(list: string | undefined): MethodRow[] {
  if (list === undefined) return [...METHOD_ROWS];
  const ids = list.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = ids.filter((id) => !METHOD_ROWS.some((r) => r.id === id));
  if (unknown.length || ids.length === 0) {
    throw new UsageError(`compare-methods: --methods ${JSON.stringify(list)}: ${unknown.length ? `unknown ${unknown.join(', ')}; ` : ''}choose from ${METHOD_ROWS.map((r) => r.id).join(', ')}`);
  }
  return ids.map((id) => METHOD_ROWS.find((r) => r.id === id)!);
}

/** A finished row's numbers: the summary line, the steps' metrics (the first step, which compiles the kernels, is left
 *  out of the speed) and the size of what it wrote. */
async function summarise(row: MethodRow, lr: number, rowOut: string, stdout: string[]): Promise<MethodResult> {
  const summary = JSON.parse(stdout[stdout.length - 1]) as TrainSummary;
  const metrics = (await readFile(join(rowOut, METRICS_FILE), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { ms: number; tokens_per_s: number; peak_bytes: number });
  const timed = metrics.length > 1 ? metrics.slice(1) : metrics;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const weights = methodFor(row.method).exports === 'model' ? 'model.safetensors' : 'adapter_model.safetensors';
  const fileBytes = (await stat(join(rowOut, weights))).size;
  return {
    method: row.id,
    label: row.label,
    status: 'done',
    lr,
    trainable_params: summary.trainable_params,
    trainable_pct: summary.trainable_pct,
    final_loss: summary.final_loss,
    final_eval_loss: summary.final_eval_loss,
    ms_per_step: round(mean(timed.map((m) => m.ms)), 2),
    tokens_per_s: round(mean(timed.map((m) => m.tokens_per_s)), 1),
    peak_bytes: Math.max(...metrics.map((m) => m.peak_bytes)),
    file_bytes: fileBytes,
    out: rowOut,
  };
}

/** The row's greedy continuation of the prompt: the adapter over the base, or the fully fine-tuned folder itself. */
async function generateWith(row: MethodRow, rowOut: string, model: string, prompt: string, chat: boolean, maxNew: string, e: Engine, deps: CompareMethodsDeps): Promise<string> {
  const where = methodFor(row.method).exports === 'model' ? ['--model', rowOut] : ['--model', model, '--adapter', rowOut];
  const quant = row.quant === 'nf4' ? ['--quant', 'nf4'] : [];
  let text = '';
  await generateCommand([...where, ...quant, '--prompt', prompt, '--temperature', '0', '--max-new-tokens', maxNew, ...(chat ? ['--chat'] : [])], {
    io: { write: (t) => void (text += t), stderr: () => {} },
    engine: e,
    tuningCache: deps.tuningCache,
    matmulOverride: deps.matmulOverride,
  });
  return text;
}

const COLUMNS: [keyof MethodResult, string][] = [
  ['label', 'method'],
  ['status', 'status'],
  ['trainable_params', 'trainable params'],
  ['trainable_pct', 'trainable %'],
  ['lr', 'lr'],
  ['final_loss', 'train loss'],
  ['final_eval_loss', 'eval loss'],
  ['ms_per_step', 'ms/step'],
  ['tokens_per_s', 'tokens/s'],
  ['peak_bytes', 'peak GPU MB'],
  ['file_bytes', 'file MB'],
];

function cell(r: MethodResult, key: keyof MethodResult): string {
  const v = r[key];
  if (v === undefined || v === null) return '';
  if (key === 'peak_bytes' || key === 'file_bytes') return ((v as number) / 2 ** 20).toFixed(2);
  if (key === 'final_loss' || key === 'final_eval_loss') return (v as number).toFixed(4);
  if (key === 'trainable_pct') return (v as number).toFixed(4);
  if (key === 'lr') return (v as number).toExponential(1);
  if (key === 'trainable_params') return (v as number).toLocaleString('en-US');
  return String(v);
}

/** The results as CSV (RFC 4180 quoting), with the reason and the generation last. */
export function comparisonCsv(results: readonly MethodResult[]): string {
  const quote = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const header = [...COLUMNS.map(([, h]) => h), 'reason', 'generation'];
  const lines = results.map((r) => [...COLUMNS.map(([k]) => cell(r, k)), r.reason ?? '', r.generation ?? ''].map(quote).join(','));
  return `${[header.join(','), ...lines].join('\n')}\n`;
}

/** The results as an aligned text table, the reasons of skipped or failed rows below it. */
export function comparisonTable(results: readonly MethodResult[]): string[] {
  const rows = [COLUMNS.map(([, h]) => h), ...results.map((r) => COLUMNS.map(([k]) => cell(r, k)))];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => r.map((c, i) => (i === 0 || i === 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of results) if (r.reason) lines.push(`${r.label}: ${r.status}: ${r.reason}`);
  for (const r of results) if (r.generation !== undefined) lines.push(`${r.label} → ${JSON.stringify(r.generation)}`);
  return lines;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
