// `lora-studio eval`: the loss of a model (optionally NF4-quantized) on a JSONL dataset, under the loss contract of
// the model issue: logits at t predict labels[t+1]; the loss is Σ cross-entropy over every position whose label is not
// −100, divided by the number of such positions, token-weighted over the whole file (never a mean of batch means).
//
//   config.json, tokenizer → rows (src/data: any format it accepts, pre-tokenized included; truncated to --max-len)
//   → [--adapter: a PEFT LoRA adapter (folder or .zip, src/train/peft.ts) on the model's linears, dropout 0]
//   → micro-batches of whole rows packed along T (one segment per row, positions restarting, no padding)
//   → the GPU forward writes each batch's [loss sum, count] → summed here in float64 → {"loss", "tokens"} on stdout.
//
// stdout carries only the final JSON line; reports (format, truncated rows, bad lines) go to stderr, and progress
// too when stderr is a terminal.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readF32, uploadBuffer, writeBuffer } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { createEngine } from '../gpu/engine.ts';
import { openNodeGpu } from '../gpu/node.ts';
import { DatasetError, FORMAT_LABELS, IGNORE_INDEX, loadJsonlDataset, type DatasetReport, type DatasetRow, type TokenizedRow } from '../data/index.ts';
import { ChatTemplate } from '../model/chat-template.ts';
import type { ModelFiles } from '../model/checkpoint.ts';
import type { ModelConfig } from '../model/config.ts';
import { readModelConfig } from '../model/load.ts';
import type { GpuModel } from '../model/runtime/gpu-model.ts';
import type { Linear } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { recordForward, releaseBatch, uploadBatch, type HostBatch, type Transformer } from '../model/runtime/transformer.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { HfTokenizer } from '../model/tokenizer.ts';
import { importAdapter, type LoraAdapter } from '../train/peft.ts';
import { optionalInt, optionalString, oneOf, parseFlags, requiredString, UsageError } from './args.ts';
import { cliKernelChoice } from './tuning-cache.ts';

/** Where a command writes: process.stdout/stderr for the CLI, captured lines in tests. */
export interface CliIo {
  stdout(line: string): void;
  stderr(line: string): void;
  /** Progress text that overwrites itself; only called when `tty` (a terminal on stderr). */
  progress(text: string): void;
  tty: boolean;
}

export const processIo: CliIo = {
  stdout: (line) => void process.stdout.write(`${line}\n`),
  stderr: (line) => void process.stderr.write(`${line}\n`),
  progress: (text) => void process.stderr.write(`\r\x1b[2K${text}`),
  get tty() {
    return !!process.stderr.isTTY;
  },
};

export interface EvalDeps {
  io?: CliIo;
  /** An engine to run on (tests share one); by default the command opens the GPU and closes it when done. */
  engine?: Engine;
  tuningCache?: TuningCache;
  /** A matmul variant to force (default: $LORA_STUDIO_MATMUL). */
  matmulOverride?: string;
}

export const EVAL_USAGE =
  'lora-studio eval --model DIR --data FILE.jsonl [--adapter DIR|FILE.zip] [--max-len N] [--quant none|nf4] [--dtype f32|f16] [--batch-tokens N]';

/** The context length eval uses when --max-len is not given, at most. */
export const DEFAULT_MAX_LEN_CAP = 2048;

const FLAGS = {
  model: { type: 'string' },
  data: { type: 'string' },
  'max-len': { type: 'string' },
  quant: { type: 'string' },
  dtype: { type: 'string' },
  'batch-tokens': { type: 'string' },
  adapter: { type: 'string' },
  help: { type: 'boolean' },
} as const;

export async function evalCommand(args: string[], deps: EvalDeps = {}): Promise<void> {
  const io = deps.io ?? processIo;
  const flags = parseFlags('eval', args, FLAGS);
  if (flags.help) {
    io.stdout(`usage: ${EVAL_USAGE}`);
    return;
  }
  const modelDir = requiredString('eval', flags, 'model');
  const dataPath = requiredString('eval', flags, 'data');
  const quant = oneOf('eval', flags, 'quant', ['none', 'nf4'] as const, 'none');
  const dtype = oneOf('eval', flags, 'dtype', ['f32', 'f16'] as const, 'f32');
  const maxLenFlag = optionalInt('eval', flags, 'max-len', 2);
  const batchTokensFlag = optionalInt('eval', flags, 'batch-tokens', 1);
  const adapterPath = optionalString(flags, 'adapter');

  // Everything that can be wrong with the inputs is checked before the GPU is opened.
  await requireFolder(modelDir);
  const files = nodeFolder(modelDir);
  const config = await readModelConfig(files);
  const maxLength = maxLenFlag ?? Math.min(config.maxPositions, DEFAULT_MAX_LEN_CAP);
  if (config.positions.kind === 'learned' && maxLength > config.maxPositions) {
    throw new UsageError(`eval: --max-len ${maxLength} exceeds ${modelDir}'s ${config.maxPositions} learned positions`);
  }
  const tokenizer = await readTokenizer(files, modelDir);
  const template = tokenizer ? await readChatTemplate(modelDir, tokenizer) : null;
  const noTokenizerIn = tokenizer === null ? modelDir : null;
  const { rows, report } = await readDataset(dataPath, { tokenizer, template, maxLength, config, io }).catch((e: unknown) => {
    // A file with no usable row: list its bad lines as a partly bad file would, then fail with DatasetError's line.
    if (e instanceof DatasetError) reportSkipped(io, e.report, noTokenizerIn);
    throw e;
  });
  reportDataset(io, report, noTokenizerIn);
  checkVocabulary(rows, config, dataPath);
  const adapter = adapterPath === undefined ? null : await readAdapter(adapterPath, config);
  for (const w of adapter?.warnings ?? []) io.stderr(`eval: ${adapterPath}: ${w}`);

  const owned = deps.engine ? null : createEngine(await openNodeGpu());
  const e = deps.engine ?? owned!;
  try {
    const { kernels, matmul } = await cliKernelChoice(e, deps.tuningCache, deps.matmulOverride);
    if (matmul.source === 'measured') io.stderr(`eval: matmul variant ${matmul.variant} (measured on ${e.gpu.adapter.name}, cached)`);
    const tf = await loadTransformer(e, files, kernels, {
      dtype,
      quant,
      onProgress: io.tty ? (done, total) => io.progress(`eval: loading weights ${percent(done, total)}`) : undefined,
    });
    if (adapter) attachAdapter(e, tf.model, adapter);
    const result = await evaluateRows(e, tf, rows, {
      batchTokens: batchTokensFlag ?? maxLength,
      onBatch: io.tty ? (k, n) => io.progress(`eval: batch ${k}/${n}`) : undefined,
    });
    if (io.tty) io.progress('');
    io.stdout(JSON.stringify({ loss: result.loss, tokens: result.tokens }));
  } finally {
    owned?.gpu.destroy();
  }
}

export interface EvalResult {
  /** Σ loss / tokens, the sum taken in float64 over the batches' f32 sums. */
  loss: number;
  /** Positions whose label is not −100 (t ≥ 1 within a row). */
  tokens: number;
  lossSum: number;
  batches: number;
}

/** Token-weighted mean next-token loss of `rows` on the GPU, `batchTokens` tokens (whole rows) per forward. */
export async function evaluateRows(
  e: Engine,
  tf: Transformer,
  rows: readonly TokenizedRow[],
  o: { batchTokens: number; onBatch?: (done: number, total: number) => void },
): Promise<EvalResult> {
  const batches = planBatches(rows, o.batchTokens);
  let lossSum = 0;
  let tokens = 0;
  const total = e.buffers.acquire(2 * 4, undefined, 'eval.total');
  try {
    for (const [k, range] of batches.entries()) {
      const host = packForEval(rows.slice(range.start, range.end));
      const batch = uploadBatch(e, host);
      try {
        // One [sum, count] per batch, zeroed and accumulated into, read back and summed here in float64: an f32
        // running sum over a large file would lose digits.
        writeBuffer(e.device, total, new Float32Array(2));
        const rec = e.record(`eval-${k}`);
        recordForward(rec, e, tf, batch, false, total);
        await rec.submit();
        const [sum, count] = await readF32(e.device, total, 2);
        if (count !== batch.counted) {
          throw new Error(`eval: batch ${k} counted ${count} tokens on the GPU, ${batch.counted} on the CPU`);
        }
        lossSum += sum;
        tokens += batch.counted;
      } finally {
        releaseBatch(e, batch);
      }
      o.onBatch?.(k + 1, batches.length);
    }
  } finally {
    e.buffers.release(total);
  }
  if (tokens === 0) throw new Error('eval: no position has a label other than -100');
  return { loss: lossSum / tokens, tokens, lossSum, batches: batches.length };
}

/** A PEFT LoRA adapter folder or .zip, checked against the model's config (shapes, module paths). */
export async function readAdapter(path: string, config: ModelConfig): Promise<LoraAdapter> {
  const info = await stat(path).catch(() => null);
  if (!info) throw new UsageError(`${path}: no such file or folder (--adapter takes a PEFT adapter folder or .zip)`);
  if (info.isDirectory()) return importAdapter(nodeFolder(path), config, path);
  return importAdapter(new Uint8Array(await readFile(path)), config, path);
}

/**
 * Puts an imported adapter's A [r, in] and B [out, r] on the model's linears (evaluation: dropout 0). The gradient
 * buffers the LoRA layer type carries are allocated (zeros) but never written by a forward. Returns the undo.
 */
export function attachAdapter(e: Engine, model: GpuModel, adapter: LoraAdapter): () => void {
  const byPath = new Map(model.modules.map((m) => [m.module.peftPath, m.linear]));
  const buffers: GPUBuffer[] = [];
  const upload = (data: Float32Array, label: string) => {
    const b = uploadBuffer(e.buffers, e.device, data, label);
    buffers.push(b);
    return b;
  };
  const attached: Linear[] = [];
  for (const m of adapter.modules) {
    const linear = byPath.get(m.peftPath);
    if (!linear) throw new Error(`adapter module ${m.peftPath} is not a linear layer of the loaded model`);
    linear.lora = {
      rank: adapter.rank,
      scale: adapter.scale,
      dropout: 0,
      A: upload(m.A, `${m.peftPath}.lora_A`),
      B: upload(m.B, `${m.peftPath}.lora_B`),
      dA: upload(new Float32Array(m.A.length), `${m.peftPath}.lora_dA`),
      dB: upload(new Float32Array(m.B.length), `${m.peftPath}.lora_dB`),
      seed: 0,
    };
    attached.push(linear);
  }
  return () => {
    for (const linear of attached) delete linear.lora;
    for (const b of buffers) e.buffers.release(b);
  };
}

/** Consecutive runs of whole rows holding at most `budget` tokens each (a row longer than the budget goes alone). */
export function planBatches(rows: readonly TokenizedRow[], budget: number): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let start = 0;
  let tokens = 0;
  for (let i = 0; i < rows.length; i++) {
    const n = rows[i].input_ids.length;
    if (i > start && tokens + n > budget) {
      out.push({ start, end: i });
      start = i;
      tokens = 0;
    }
    tokens += n;
  }
  if (rows.length > start) out.push({ start, end: rows.length });
  return out;
}

/** Rows packed along T, one segment per row (attention stays inside it), positions restarting at 0;
 *  targets[t] = labels[t+1] within a row and −100 on each row's last position. No padding. */
export function packForEval(rows: readonly TokenizedRow[]): HostBatch {
  const T = rows.reduce((s, r) => s + r.input_ids.length, 0);
  const b: HostBatch = { tokens: new Uint32Array(T), positions: new Uint32Array(T), segments: new Uint32Array(T), targets: new Int32Array(T) };
  let t = 0;
  rows.forEach((row, seg) => {
    const n = row.input_ids.length;
    for (let p = 0; p < n; p++, t++) {
      b.tokens[t] = row.input_ids[p];
      b.positions[t] = p;
      b.segments[t] = seg;
      b.targets[t] = p + 1 < n ? row.labels[p + 1] : IGNORE_INDEX;
    }
  });
  return b;
}

export async function requireFolder(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => null);
  if (!info) throw new UsageError(`${dir}: no such folder (--model takes a Hugging Face model folder)`);
  if (!info.isDirectory()) throw new UsageError(`${dir}: not a folder (--model takes a Hugging Face model folder)`);
}

/** tokenizer.json with tokenizer_config.json's special tokens, or null when the folder has no tokenizer.json (then
 *  only pre-tokenized rows can be evaluated). Errors name the folder. */
export async function readTokenizer(files: ModelFiles, dir: string): Promise<HfTokenizer | null> {
  const text = async (name: string) => {
    const source = await files.open(name);
    if (!source) return null;
    try {
      return new TextDecoder().decode(await source.read(0, source.size));
    } finally {
      await source.close?.();
    }
  };
  const json = await text('tokenizer.json');
  if (json === null) return null;
  try {
    return HfTokenizer.fromJson(json, await text('tokenizer_config.json'));
  } catch (e) {
    throw new Error(`${dir}/${(e as Error).message}`);
  }
}

/** chat_template.jinja when the folder has one, else tokenizer_config.json's template, else the documented fallback. */
export async function readChatTemplate(dir: string, tokenizer: HfTokenizer): Promise<ChatTemplate> {
  const jinjaFile = await readFile(join(dir, 'chat_template.jinja'), 'utf8').catch(() => null);
  return ChatTemplate.forTokenizer(tokenizer, { jinjaFile });
}

async function readDataset(
  path: string,
  o: { tokenizer: HfTokenizer | null; template: ChatTemplate | null; maxLength: number; config: ModelConfig; io: CliIo },
) {
  const info = await stat(path).catch(() => null);
  if (!info) throw new UsageError(`${path}: no such file (--data takes a JSONL file)`);
  if (!info.isFile()) throw new UsageError(`${path}: not a file (--data takes a JSONL file)`);
  return loadJsonlDataset(createReadStream(path), {
    tokenizer: o.tokenizer,
    template: o.template,
    maxLength: o.maxLength,
    // Ids are checked against the model's embedding rows, which is what a wrong id would silently read past.
    vocabSize: o.config.vocabSize,
    fileName: path,
    totalBytes: info.size,
    onProgress: o.io.tty ? (p) => o.io.progress(`eval: reading ${path} ${percent(p.bytes, p.totalBytes ?? 0)} (${p.rows} rows)`) : undefined,
  });
}

const MAX_LISTED_ERRORS = 20;

function reportDataset(io: CliIo, r: DatasetReport, noTokenizerIn: string | null): void {
  if (io.tty) io.progress('');
  const format = r.format ? FORMAT_LABELS[r.format] : 'unknown';
  io.stderr(
    `eval: ${r.fileName}: ${r.rows} rows (${format}${r.formatSource === 'override' ? ', forced' : ''}), ${r.trainedTokens} scored tokens, ` +
      `max length ${r.maxLength}`,
  );
  if (r.truncated > 0) io.stderr(`eval: ${r.truncated} row(s) longer than ${r.maxLength} tokens were truncated to ${r.maxLength}`);
  if (r.usedFallbackTemplate) io.stderr('eval: the model has no chat template; conversations were rendered with the ChatML fallback');
  reportSkipped(io, r, noTokenizerIn);
}

function reportSkipped(io: CliIo, r: DatasetReport, noTokenizerIn: string | null): void {
  if (io.tty) io.progress('');
  if (r.skipped === 0) return;
  io.stderr(`eval: ${r.skipped} line(s) skipped:`);
  for (const err of r.errors.slice(0, MAX_LISTED_ERRORS)) io.stderr(`  ${r.fileName}:${err.line}: ${err.reason}`);
  if (r.skipped > MAX_LISTED_ERRORS) io.stderr(`  … and ${r.skipped - MAX_LISTED_ERRORS} more`);
  if (noTokenizerIn) io.stderr(`eval: ${noTokenizerIn} has no tokenizer.json, so only pre-tokenized rows can be read`);
}

/** Text rows are encoded by the folder's tokenizer, whose ids must fit the model's embedding (pre-tokenized rows were
 *  checked while reading). */
function checkVocabulary(rows: readonly DatasetRow[], config: ModelConfig, path: string): void {
  for (const row of rows) {
    const bad = row.input_ids.findIndex((id) => id < 0 || id >= config.vocabSize);
    if (bad >= 0) {
      throw new Error(
        `${path}:${row.line}: token ${bad} has id ${row.input_ids[bad]}, outside the model's vocabulary [0, ${config.vocabSize}) ` +
          '(does tokenizer.json belong to this model?)',
      );
    }
  }
}

function percent(done: number, total: number): string {
  return total > 0 ? `${Math.min(100, Math.floor((100 * done) / total))}%` : `${done} bytes`;
}
