// `lora-studio eval`: the loss of a model (optionally NF4-quantized) on a JSONL dataset, under the loss contract of
// the model issue: logits at t predict labels[t+1]; the loss is Σ cross-entropy over every position whose label is not
// −100, divided by the number of such positions, token-weighted over the whole file (never a mean of batch means).
//
//   config.json, tokenizer → rows (src/data: any format it accepts, pre-tokenized included; truncated to --max-len)
//   → [--adapter: a PEFT LoRA or IA³ adapter (folder or .zip, src/train/peft.ts) on the model's linears, dropout 0]
//   → micro-batches of whole rows packed along T (one segment per row, positions restarting, no padding)
//   → the GPU forward writes each batch's [loss sum, count] → summed here in float64 → {"loss", "tokens"} on stdout.
//
// stdout carries only the final JSON line; reports (format, truncated rows, bad lines) go to stderr, and progress
// too when stderr is a terminal.
import { readF32, writeBuffer } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { createEngine } from '../gpu/engine.ts';
import { openNodeGpu } from '../gpu/node.ts';
import { IGNORE_INDEX, type TokenizedRow } from '../data/index.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { recordForward, releaseBatch, uploadBatch, type HostBatch, type Transformer } from '../model/runtime/transformer.ts';
import { attachAdapter } from '../train/attach-adapter.ts';
import { withModelVirtualTokens } from '../model/runtime/virtual-tokens.ts';
import { optionalInt, optionalString, oneOf, parseFlags, requiredString, UsageError } from './args.ts';
import { openModelFolder, percent, processIo, readAnyAdapter, readRows, type CliIo } from './load.ts';
import { cliKernelChoice } from './tuning-cache.ts';

// Shared with the other commands (src/cli/load.ts); re-exported for the callers that import them from here.
export { processIo, readAdapter, readAnyAdapter, readChatTemplate, readTokenizer, requireFolder, type CliIo } from './load.ts';

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
  const folder = await openModelFolder(modelDir);
  const { files, config } = folder;
  const maxLength = maxLenFlag ?? Math.min(config.maxPositions, DEFAULT_MAX_LEN_CAP);
  if (config.positions.kind === 'learned' && maxLength > config.maxPositions) {
    throw new UsageError(`eval: --max-len ${maxLength} exceeds ${modelDir}'s ${config.maxPositions} learned positions`);
  }
  const { rows } = await readRows(dataPath, { command: 'eval', flag: 'data', model: folder, maxLength, io });
  const adapter = adapterPath === undefined ? null : await readAnyAdapter(adapterPath, config);
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
  // A prompt adapter's virtual tokens go ahead of every row (the budget grows by them, so a row of the full length fits).
  const virtual = tf.model.virtualTokens?.count ?? 0;
  rows = withModelVirtualTokens(tf.model, rows);
  const batches = planBatches(rows, o.batchTokens + virtual);
  let lossSum = 0;
  let tokens = 0;
  const total = e.buffers.acquire(2 * 4, undefined, 'eval.total');
  try {
    for (const [k, range] of batches.entries()) {
      // An attention prefix (prefix tuning) takes positions 0 … P − 1 ahead of every row.
      const host = packForEval(rows.slice(range.start, range.end), tf.model.attentionPrefix?.count ?? 0);
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

// Lives in src/train/attach-adapter.ts (browser-safe: the studio's worker uses it too); re-exported for old callers.
export { attachAdapter };

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
export function packForEval(rows: readonly TokenizedRow[], firstPosition = 0): HostBatch {
  const T = rows.reduce((s, r) => s + r.input_ids.length, 0);
  const b: HostBatch = { tokens: new Uint32Array(T), positions: new Uint32Array(T), segments: new Uint32Array(T), targets: new Int32Array(T), firstPosition };
  let t = 0;
  rows.forEach((row, seg) => {
    const n = row.input_ids.length;
    for (let p = 0; p < n; p++, t++) {
      b.tokens[t] = row.input_ids[p];
      b.positions[t] = firstPosition + p;
      b.segments[t] = seg;
      b.targets[t] = p + 1 < n ? row.labels[p + 1] : IGNORE_INDEX;
    }
  });
  return b;
}
