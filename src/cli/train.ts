// `lora-studio train`: fine-tuning a model folder on a JSONL file with a method of the registry (LoRA, DoRA, AdaLoRA, IA³,
// full fine-tuning, Houlsby and Pfeiffer bottleneck adapters; QLoRA = LoRA over an NF4 base), written as a PEFT
// adapter (bottleneck adapters: the studio's documented layout, methods/bottleneck/format.ts).
//
//   flags → TrainConfig (config.ts validates; errors name the flag and the valid range)
//   → model folder, tokenizer, rows (src/cli/load.ts, as eval reads them), eval rows (--eval-data or --eval-split)
//   → [--resume: the newest complete checkpoint-<step>/ of --out, same config and data required]
//   → the GPU: the model (NF4 base for qlora, exactly as `eval --quant nf4`), the Trainer (src/train/trainer.ts)
//   → per step: one JSON line on stdout (or a progress bar on a terminal), appended to --out/metrics.jsonl;
//     evaluation every --eval-every steps and at the end; checkpoint-<step>/ every --checkpoint-every steps and at
//     the end (src/train/checkpoint-fs.ts: temporary folder, then rename)
//   → --out/adapter_config.json + adapter_model.safetensors (the best evaluated adapter with early stopping), or for
//     --method full the whole model: model.safetensors in the base's dtype, config.json, the tokenizer files
//   → a JSON summary line.
//
// stdout carries only JSON lines; the trainable-parameter report, the dataset report and skipped lines go to stderr.
// A NaN/Inf loss stops the run with an error naming the step; the checkpoints already written stay as they are.
import { appendFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { splitEval, type DatasetRow, type TokenizedRow } from '../data/index.ts';
import type { Engine } from '../gpu/engine.ts';
import { createEngine } from '../gpu/engine.ts';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { openNodeGpu } from '../gpu/node.ts';
import { formatProfile, StepProfiler, type StepProfile } from '../gpu/profiler.ts';
import type { ModelConfig } from '../model/config.ts';
import { loadTransformer, releaseTransformer } from '../model/runtime/load.ts';
import type { Transformer } from '../model/runtime/transformer.ts';
import { checkpointName, latestCheckpoint, leftoverTemporaries, listCheckpoints, writeCheckpoint, writeFileAtomic, type StoredCheckpoint } from '../train/checkpoint-fs.ts';
import { ConfigError, DEFAULT_CONFIG, resolveConfig, type TrainConfig } from '../train/config.ts';
import { METHOD_IDS } from '../train/methods/ids.ts';
import { fullModelFolder } from '../train/methods/full/model-folder.ts';
import { methodFor } from '../train/methods/registry.ts';
import { virtualTokenCount } from '../train/methods/prompt-tuning/config.ts';
import { resolveTargets } from '../train/methods/targets.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type AdapterFiles } from '../train/peft.ts';
import type { StepMetrics } from '../train/protocol.ts';
import { Trainer, TrainingDivergedError } from '../train/trainer.ts';
import { optionalString, parseFlags, requiredString, UsageError, type FlagValues } from './args.ts';
import { openModelFolder, percent, processIo, readRows, writeChunksAtomic, type CliIo, type ModelFolder } from './load.ts';
import { presetBase, PRESET_USAGE } from './preset.ts';
import { cliKernelChoice } from './tuning-cache.ts';

export interface TrainDeps {
  io?: CliIo;
  /** An engine to run on (tests share one); by default the command opens the GPU and closes it when done. */
  engine?: Engine;
  tuningCache?: TuningCache;
  /** A matmul variant to force (default: $LORA_STUDIO_MATMUL). */
  matmulOverride?: string;
  /** Called after every optimizer step, before its evaluation and checkpoint (tests inject faults here). */
  afterStep?: (trainer: Trainer) => void | Promise<void>;
}

export const TRAIN_USAGE =
  `lora-studio train --model DIR --data FILE.jsonl --out DIR ${PRESET_USAGE} [--method ${METHOD_IDS.join('|')}|qlora] [--quant none|nf4] [--rank 8] [--alpha 16] [--dropout 0] ` +
  '[--targets q_proj,v_proj|all-linear] [--steps N | --epochs N] [--lr 2e-4] [--batch N] [--grad-accum N] [--max-len N] ' +
  '[--warmup STEPS] [--schedule cosine|linear|constant] [--seed N] [--eval-data FILE | --eval-split FRACTION] [--eval-every N] ' +
  '[--early-stopping N] [--checkpoint-every N] [--double-quant] [--rslora] [--lora-plus RATIO] [--weight-decay W] ' +
  '[--train-on-prompt] [--packing] [--num-virtual-tokens 20] [--prompt-init random|text] [--prompt-init-text TEXT] [--encoder-hidden-size H] [--encoder-type mlp|lstm] [--encoder-num-layers 2] [--encoder-dropout 0] [--prefix-projection] ' +
  '[--reduction-factor 16] [--adapter-activation relu|gelu_new|silu] ' +
  '[--init-r 12] [--target-r 8] [--tinit 0] [--tfinal 0] [--delta-t 1] [--total-step N] [--adalora-beta1 0.85] [--adalora-beta2 0.85] [--orth-reg-weight 0.5] [--resume] [--profile] (explicit flags override the preset; --profile times every dispatch of ' +
  'each step: a {"profile": …} line after each step\'s line, or the tables at the end on a terminal)';

export const METRICS_FILE = 'metrics.jsonl';

/** The flags that set a TrainConfig field, and how the flag's text becomes the field's value. */
const CONFIG_FLAGS: Record<string, { field: keyof TrainConfig; kind: 'number' | 'string' | 'boolean' | 'list' }> = {
  method: { field: 'method', kind: 'string' },
  quant: { field: 'quant', kind: 'string' },
  rank: { field: 'rank', kind: 'number' },
  alpha: { field: 'alpha', kind: 'number' },
  dropout: { field: 'dropout', kind: 'number' },
  targets: { field: 'targets', kind: 'list' },
  steps: { field: 'maxSteps', kind: 'number' },
  epochs: { field: 'epochs', kind: 'number' },
  lr: { field: 'lr', kind: 'number' },
  batch: { field: 'batchSize', kind: 'number' },
  'grad-accum': { field: 'gradAccum', kind: 'number' },
  'max-len': { field: 'maxLength', kind: 'number' },
  warmup: { field: 'warmupSteps', kind: 'number' },
  schedule: { field: 'schedule', kind: 'string' },
  seed: { field: 'seed', kind: 'number' },
  'eval-split': { field: 'evalSplit', kind: 'number' },
  'eval-every': { field: 'evalEvery', kind: 'number' },
  'early-stopping': { field: 'earlyStoppingPatience', kind: 'number' },
  'checkpoint-every': { field: 'checkpointEvery', kind: 'number' },
  'double-quant': { field: 'doubleQuant', kind: 'boolean' },
  rslora: { field: 'rslora', kind: 'boolean' },
  'lora-plus': { field: 'loraPlusRatio', kind: 'number' },
  'weight-decay': { field: 'weightDecay', kind: 'number' },
  'train-on-prompt': { field: 'trainOnPrompt', kind: 'boolean' },
  packing: { field: 'packing', kind: 'boolean' },
  'num-virtual-tokens': { field: 'numVirtualTokens', kind: 'number' },
  'prompt-init': { field: 'promptInit', kind: 'string' },
  'prompt-init-text': { field: 'promptInitText', kind: 'string' },
  'encoder-hidden-size': { field: 'encoderHiddenSize', kind: 'number' },
  // P-tuning's encoder (PEFT's encoder_reparameterization_type, encoder_num_layers, encoder_dropout)
  'encoder-type': { field: 'encoderType', kind: 'string' },
  'encoder-num-layers': { field: 'encoderNumLayers', kind: 'number' },
  'encoder-dropout': { field: 'encoderDropout', kind: 'number' },
  'prefix-projection': { field: 'prefixProjection', kind: 'boolean' },
  'reduction-factor': { field: 'reductionFactor', kind: 'number' },
  'adapter-activation': { field: 'adapterActivation', kind: 'string' },
  // AdaLoRA (PEFT's AdaLoraConfig names; its beta1/beta2 are --adalora-beta1/2, as --beta1/2 would read as AdamW's)
  'init-r': { field: 'initR', kind: 'number' },
  'target-r': { field: 'targetR', kind: 'number' },
  tinit: { field: 'tinit', kind: 'number' },
  tfinal: { field: 'tfinal', kind: 'number' },
  'delta-t': { field: 'deltaT', kind: 'number' },
  'total-step': { field: 'totalStep', kind: 'number' },
  'adalora-beta1': { field: 'adaloraBeta1', kind: 'number' },
  'adalora-beta2': { field: 'adaloraBeta2', kind: 'number' },
  'orth-reg-weight': { field: 'orthRegWeight', kind: 'number' },
};

const FLAG_OF = new Map(Object.entries(CONFIG_FLAGS).map(([flag, { field }]) => [field, flag]));

const FLAGS = {
  model: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  'eval-data': { type: 'string' },
  resume: { type: 'boolean' },
  preset: { type: 'string' },
  profile: { type: 'boolean' },
  help: { type: 'boolean' },
  ...Object.fromEntries(Object.entries(CONFIG_FLAGS).map(([flag, f]) => [flag, { type: f.kind === 'boolean' ? 'boolean' : 'string' }])),
} as const;

/** A number as written on a command line ("2e-4", "0.05", "8"); anything else is NaN, which validation reports. */
function parseNumber(text: string): number {
  return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text.trim()) ? Number(text) : NaN;
}

/**
 * The run's TrainConfig: DEFAULT_CONFIG (issue 5's CLI defaults) with the flags given. Every invalid value is reported
 * at once, each as `--flag VALUE: must be …` (config.ts's range).
 */
export function configFromFlags(flags: FlagValues): TrainConfig {
  const overrides: Record<string, unknown> = {};
  for (const [flag, { field, kind }] of Object.entries(CONFIG_FLAGS)) {
    const v = flags[flag];
    if (v === undefined) continue;
    if (kind === 'boolean') overrides[field] = v === true;
    else if (kind === 'string') overrides[field] = v;
    else if (kind === 'list') overrides[field] = String(v).split(',').map((s) => s.trim()).filter(Boolean);
    else overrides[field] = parseNumber(String(v));
  }
  if (flags.steps !== undefined && flags.epochs !== undefined) throw new UsageError('train: give --steps or --epochs, not both');
  if (flags['eval-split'] !== undefined && flags['eval-data'] !== undefined) {
    throw new UsageError('train: give --eval-data or --eval-split, not both');
  }
  try {
    const config = resolveConfig(overrides as Partial<TrainConfig>, presetBase(flags));
    // A method that wraps no layer (prompt learning) takes no target list; the method's own rules (full fine-tuning:
    // no NF4 base), worded as config.ts words its own.
    const method = methodFor(config.method);
    if (typeof flags.targets === 'string' && flags.targets.trim() !== '' && Object.values(method.defaultTargets).every((t) => t.length === 0)) {
      throw new UsageError(`train: --targets: ${method.label} wraps no layer (its virtual tokens go ahead of the input); leave --targets out`);
    }
    const methodErrors = methodFor(config.method).validate(config);
    if (methodErrors.length) throw new ConfigError(methodErrors);
    return config;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const lines = e.errors.map(({ field, message }) => {
      const flag = FLAG_OF.get(field);
      if (!flag) return message;
      const given = flags[flag];
      // config.ts says "rank = 0: must be …"; on the command line that is "--rank 0: must be …".
      const why = message.slice(message.indexOf(': ') + 2);
      return `--${flag}${typeof given === 'string' ? ` ${JSON.stringify(given)}` : ''}: ${why}`;
    });
    throw new UsageError(`train: ${lines.join('; ')}`);
  }
}

/** The training rows and the eval rows (--eval-data, else an --eval-split of the training file, else none). */
interface RunData {
  train: DatasetRow[];
  eval: TokenizedRow[];
  /** Compared on --resume: the same rows in the same order, else the checkpoint's data position means nothing. */
  fingerprint: string;
}

interface RunInfo {
  model: string;
  data: string;
}

export async function trainCommand(args: string[], deps: TrainDeps = {}): Promise<void> {
  const io = deps.io ?? processIo;
  const started = performance.now();
  const flags = parseFlags('train', args, FLAGS);
  if (flags.help) {
    io.stdout(`usage: ${TRAIN_USAGE}`);
    return;
  }
  const modelDir = requiredString('train', flags, 'model');
  const dataPath = requiredString('train', flags, 'data');
  const outDir = requiredString('train', flags, 'out');
  const evalPath = optionalString(flags, 'eval-data');
  const resume = flags.resume === true;
  let config = configFromFlags(flags);
  const hasEval = evalPath !== undefined || config.evalSplit > 0;
  if (!hasEval && config.earlyStoppingPatience > 0) throw new UsageError('train: --early-stopping needs an eval set (--eval-data or --eval-split)');
  if (!hasEval && config.evalEvery > 0) throw new UsageError('train: --eval-every needs an eval set (--eval-data or --eval-split)');

  // Everything that can be wrong with the inputs is checked before the GPU is opened.
  const model = await openModelFolder(modelDir);
  config = fitToModel(config, model.config, modelDir, flags['max-len'] !== undefined, io);
  const targets = checkTargets(config, model.config);
  const data = await readRunData(model, dataPath, evalPath, config, io);
  const run: RunInfo = { model: modelDir, data: data.fingerprint };
  const resumeFrom = await prepareOut(outDir, resume, config, run, io);

  const owned = deps.engine ? null : createEngine(await openNodeGpu());
  const e = deps.engine ?? owned!;
  let trainer: Trainer | null = null;
  let tf: Transformer | null = null;
  let profiler: StepProfiler | null = null;
  try {
    const { kernels, matmul, nf4 } = await cliKernelChoice(e, deps.tuningCache, deps.matmulOverride);
    if (matmul.source === 'measured') io.stderr(`train: matmul variant ${matmul.variant} (measured on ${e.gpu.adapter.name}, cached)`);
    if (nf4.source === 'measured' && config.quant === 'nf4') io.stderr(`train: NF4 matmul variant ${nf4.variant} (measured, cached)`);
    tf = await loadTransformer(e, model.files, kernels, {
      dtype: 'f32',
      // QLoRA's base is the NF4 model `eval --quant nf4` evaluates.
      quant: config.quant,
      doubleQuant: config.doubleQuant,
      onProgress: io.tty ? (done, total) => io.progress(`train: loading weights ${percent(done, total)}`) : undefined,
    });
    const padId = model.tokenizer?.padIdOrFallback ?? 0;
    profiler = flags.profile === true ? new StepProfiler(e) : null;
    const tokenizer = model.tokenizer;
    trainer = new Trainer({ engine: e, transformer: tf, config, train: data.train, eval: data.eval, padId, profiler: profiler ?? undefined, encode: tokenizer ? (t) => tokenizer.encode(t) : undefined });
    if (io.tty) io.progress('');
    io.stderr(`train: ${trainer.trainableReport()}`);
    io.stderr(
      `train: ${data.train.length} training rows${data.eval.length ? `, ${data.eval.length} eval rows` : ''}; ${trainer.totalSteps} steps ` +
        `(batch ${config.batchSize} × grad-accum ${config.gradAccum}, ${trainer.batcher.batchesPerEpoch} batches per epoch), warmup ${trainer.warmupSteps}`,
    );
    const method = methodFor(config.method);
    // A checkpoint carries the adapter at its step; full fine-tuning's has none (its weights are the optimizer file's
    // params), and its export is the model folder written at the end.
    const checkpointAdapter = async (): Promise<AdapterFiles | null> => (method.exports === 'adapter' ? adapterFiles('current') : null);
    const adapterFiles = async (which: 'current' | 'best'): Promise<AdapterFiles> =>
      method.exportAdapter({
        tensors: await trainer!.trainedTensors(which),
        modules: trainer!.modules,
        targetModules: targets,
        config: trainer!.config, // with what the method resolved from the run (AdaLoRA's total_step)
        model: model.config,
        baseModel: modelDir,
      });

    const metricsPath = join(outDir, METRICS_FILE);
    let lastCheckpoint: string | null = null;
    if (resumeFrom) {
      trainer.restore(resumeFrom.checkpoint);
      lastCheckpoint = resumeFrom.dir;
      io.stderr(`train: resuming from ${resumeFrom.dir} (step ${resumeFrom.step} of ${trainer.totalSteps})`);
    }
    // The curve so far (empty, or the checkpoint's): steps a crashed run logged after its last checkpoint are redone.
    await writeFileAtomic(metricsPath, trainer.history.map((h) => `${metricsLine(h)}\n`).join(''));

    const checkpoint = async () => {
      const ck = await trainer!.checkpoint();
      lastCheckpoint = await writeCheckpoint(outDir, ck, await checkpointAdapter(), run);
    };
    let stoppedEarly = false;
    let lastProfile: StepProfile | undefined;
    while (!trainer.done) {
      let profile: StepProfile | undefined;
      try {
        profile = (await trainer.trainStep()).profile;
      } catch (err) {
        if (!(err instanceof TrainingDivergedError)) throw err;
        // The adapter on the GPU is now NaN: nothing more is written; the checkpoints on disk are the good ones.
        const message = err.message.replace(/;? ?the run is paused at its last good checkpoint\.?$/, '.');
        throw new Error(
          `train: ${message} ${lastCheckpoint ? `The last good checkpoint is ${lastCheckpoint}.` : 'No checkpoint was written before it.'}`,
        );
      }
      await deps.afterStep?.(trainer);
      const step = trainer.step;
      if (trainer.evalBatcher && ((config.evalEvery > 0 && step % config.evalEvery === 0) || trainer.done)) {
        stoppedEarly = (await trainer.evaluateAndTrack()).stop;
      }
      const metrics = trainer.history[trainer.history.length - 1];
      const line = metricsLine(metrics);
      await appendFile(metricsPath, `${line}\n`);
      if (io.tty) io.progress(progressBar(metrics, trainer.totalSteps, started));
      else io.stdout(line);
      if (profile) {
        lastProfile = profile;
        if (!io.tty) io.stdout(JSON.stringify({ profile }));
      }
      if (step % config.checkpointEvery === 0 || trainer.done || stoppedEarly) {
        await checkpoint();
      }
      if (stoppedEarly) {
        io.stderr(`train: early stopping at step ${step}: no eval improvement in ${config.earlyStoppingPatience} evaluations (best step ${trainer.bestStep})`);
        break;
      }
    }
    if (io.tty) io.progress('');
    if (io.tty && lastProfile) io.stdout(formatProfile(lastProfile));

    // With early stopping the best evaluated adapter is the one exported; otherwise the last.
    const which = config.earlyStoppingPatience > 0 && trainer.bestParams ? 'best' : 'current';
    if (method.exports === 'model') {
      const folder = await fullModelFolder(model.files, await trainer.trainedTensors(which), model.config);
      try {
        for (const file of folder.files) await writeChunksAtomic(file.chunks(), join(outDir, `${file.path}.partial`), join(outDir, file.path));
      } finally {
        await folder.close();
      }
      io.stderr(`train: wrote the fully fine-tuned model to ${outDir} (${folder.files.map((f) => f.path).join(', ')})`);
    } else {
      const files = await adapterFiles(which);
      await writeFileAtomic(join(outDir, ADAPTER_WEIGHTS_FILE), files['adapter_model.safetensors']);
      await writeFileAtomic(join(outDir, ADAPTER_CONFIG_FILE), files['adapter_config.json']);
    }
    await writeFileAtomic(metricsPath, trainer.history.map((h) => `${metricsLine(h)}\n`).join(''));

    const last = trainer.history[trainer.history.length - 1];
    const lastEval = [...trainer.history].reverse().find((h) => h.evalLoss !== undefined);
    const summary: TrainSummary = {
      final_loss: last?.loss ?? null,
      final_eval_loss: lastEval?.evalLoss ?? null,
      steps: trainer.step,
      time_s: round((performance.now() - started) / 1000, 3),
      trainable_params: trainer.method.trainableParams,
      trainable_pct: round(trainer.parameterCounts().percent, 4),
      ...(config.earlyStoppingPatience > 0 ? { best_step: trainer.bestStep, best_eval_loss: trainer.bestEvalLoss, stopped_early: stoppedEarly } : {}),
      out: outDir,
    };
    io.stdout(JSON.stringify(summary));
  } finally {
    if (io.tty) io.progress('');
    // On a shared engine (compare-methods, tests) the model's weights go back too, so the next run starts clean.
    if (trainer && deps.engine) trainer.dispose();
    if (tf && deps.engine) releaseTransformer(e, tf);
    profiler?.dispose();
    owned?.gpu.destroy();
  }
}

/** The run's last stdout line. */
export interface TrainSummary {
  final_loss: number | null;
  final_eval_loss: number | null;
  steps: number;
  time_s: number;
  trainable_params: number;
  /** 100 · trainable / all parameters, as PEFT's print_trainable_parameters (4 decimals). */
  trainable_pct: number;
  /** With --early-stopping only. */
  best_step?: number | null;
  best_eval_loss?: number | null;
  stopped_early?: boolean;
  out: string;
}

/** A step's JSON line (stdout and metrics.jsonl). */
export function metricsLine(m: StepMetrics): string {
  return JSON.stringify({
    step: m.step,
    loss: m.loss,
    lr: m.lr,
    grad_norm: m.gradNorm,
    tokens_per_s: round(m.tokensPerSecond, 1),
    ms: round(m.ms, 2),
    mem_bytes: m.memBytes,
    peak_bytes: m.peakBytes,
    ...(m.evalLoss !== undefined ? { eval_loss: m.evalLoss } : {}),
  });
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function progressBar(m: StepMetrics, total: number, started: number): string {
  const width = 24;
  const filled = Math.round((width * m.step) / Math.max(1, total));
  const elapsed = (performance.now() - started) / 1000;
  const eval_ = m.evalLoss !== undefined ? ` eval ${m.evalLoss.toFixed(4)}` : '';
  return (
    `train: [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${m.step}/${total} loss ${m.loss.toFixed(4)}${eval_} ` +
    `lr ${m.lr.toExponential(2)} ${Math.round(m.tokensPerSecond)} tok/s ${elapsed.toFixed(0)}s`
  );
}

/** --max-len against the model: learned positions cap it; the default (512) is lowered to fit, a given value is not. */
function fitToModel(config: TrainConfig, model: ModelConfig, dir: string, maxLenGiven: boolean, io: CliIo): TrainConfig {
  // A prompt method's virtual tokens take positions ahead of every row.
  const virtual = virtualTokenCount(config);
  const room = model.maxPositions - virtual;
  if (model.positions.kind !== 'learned' || config.maxLength <= room) return config;
  const ahead = virtual ? ` less the ${virtual} virtual tokens` : '';
  if (maxLenGiven || room < 8) throw new UsageError(`train: --max-len ${config.maxLength} exceeds ${dir}'s ${model.maxPositions} learned positions${ahead}`);
  io.stderr(`train: max length ${config.maxLength} lowered to ${dir}'s ${model.maxPositions} learned positions${ahead}`);
  return { ...config, maxLength: room };
}

/** The modules --targets selects on this model for the method (errors list what exists), as adapter_config.json's
 *  target_modules (targets.ts). */
function checkTargets(config: TrainConfig, model: ModelConfig): string | string[] {
  try {
    return resolveTargets(model, config.targets, methodFor(config.method).defaultTargets).targetModules;
  } catch (e) {
    throw new UsageError(`train: --targets ${config.targets.join(',') || '(default)'}: ${(e as Error).message}`);
  }
}

async function readRunData(model: ModelFolder, dataPath: string, evalPath: string | undefined, config: TrainConfig, io: CliIo): Promise<RunData> {
  const common = { command: 'train', model, maxLength: config.maxLength, io, countedAs: 'trained', trainOnPrompt: config.trainOnPrompt };
  const { rows } = await readRows(dataPath, { ...common, flag: 'data' });
  let train: DatasetRow[] = rows;
  let evalRows: TokenizedRow[] = [];
  if (evalPath !== undefined) {
    evalRows = (await readRows(evalPath, { ...common, flag: 'eval-data' })).rows;
  } else if (config.evalSplit > 0) {
    if (rows.length < 2) throw new UsageError(`train: --eval-split needs at least 2 usable rows in ${dataPath}, it has ${rows.length}`);
    const split = splitEval(rows, config.evalSplit, config.seed);
    train = split.train;
    evalRows = split.eval;
    io.stderr(`train: --eval-split ${config.evalSplit}: ${evalRows.length} of ${rows.length} rows held out for evaluation`);
  }
  return { train, eval: evalRows, fingerprint: `train ${train.length} rows ${hashRows(train)}; eval ${evalRows.length} rows ${hashRows(evalRows)}` };
}

/** FNV-1a over every row's ids and labels: equal rows in equal order give equal hashes. */
function hashRows(rows: readonly TokenizedRow[]): string {
  let h = 0x811c9dc5;
  const mix = (x: number) => {
    h ^= x & 0xffff;
    h = Math.imul(h, 0x01000193);
    h ^= x >>> 16;
    h = Math.imul(h, 0x01000193);
  };
  for (const row of rows) {
    mix(row.input_ids.length);
    for (let i = 0; i < row.input_ids.length; i++) {
      mix(row.input_ids[i]);
      mix(row.labels[i]);
    }
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/**
 * Makes --out ready: without --resume it must not already hold a run (refused rather than mixing two runs' files);
 * with --resume, the newest complete checkpoint, which must have been written with this config and these rows.
 */
async function prepareOut(outDir: string, resume: boolean, config: TrainConfig, run: RunInfo, io: CliIo): Promise<StoredCheckpoint | null> {
  await mkdir(outDir, { recursive: true }).catch((e: Error) => {
    throw new UsageError(`train: --out ${outDir}: cannot create the folder (${e.message})`);
  });
  const leftovers = await leftoverTemporaries(outDir);
  if (leftovers.length) io.stderr(`train: ignoring ${leftovers.length} unfinished write(s) of an interrupted run: ${leftovers.join(', ')}`);
  if (!resume) {
    const { complete } = await listCheckpoints(outDir);
    const entries = new Set(await readdir(outDir));
    const finished = [ADAPTER_WEIGHTS_FILE, 'model.safetensors'].find((f) => entries.has(f)) ?? null;
    const existing = complete.length ? checkpointName(complete[complete.length - 1].step) : finished;
    if (existing) {
      throw new UsageError(`train: --out ${outDir} already holds a run (${existing}); pass --resume to continue it, or choose another --out`);
    }
    return null;
  }
  const stored = await latestCheckpoint(outDir, (m) => io.stderr(`train: ${m}`));
  if (!stored) throw new UsageError(`train: --resume: ${outDir} holds no complete checkpoint-<step> folder to resume from`);
  const differences = configDifferences(stored.checkpoint.config, config);
  if (differences.length) {
    throw new UsageError(
      `train: --resume: ${stored.dir} was written with another configuration (${differences.join('; ')}); ` +
        'resume with the same flags, or start a new run in another --out',
    );
  }
  const before = stored.run as Partial<RunInfo> | undefined;
  if (before?.data !== undefined && before.data !== run.data) {
    throw new UsageError(`train: --resume: the data differ from the run in ${stored.dir} (then: ${before.data}; now: ${run.data})`);
  }
  return stored;
}

/** "--lr 0.001 (checkpoint: 0.0002)" for every field that differs. */
function configDifferences(saved: TrainConfig, now: TrainConfig): string[] {
  const keys = new Set([...Object.keys(DEFAULT_CONFIG), ...Object.keys(saved), ...Object.keys(now)] as (keyof TrainConfig)[]);
  const out: string[] = [];
  for (const k of keys) {
    // AdaLoRA's total_step left to the run's own step count is saved resolved (Trainer.config): the same steps and
    // data resolve it the same way.
    if (k === 'totalStep' && now.totalStep === null) continue;
    const a = JSON.stringify(saved[k]);
    const b = JSON.stringify(now[k]);
    if (a !== b) out.push(`${FLAG_OF.has(k) ? `--${FLAG_OF.get(k)}` : k} ${b ?? 'unset'} (checkpoint: ${a ?? 'unset'})`);
  }
  return out;
}
