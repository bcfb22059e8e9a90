// `lora-studio export-trl`: the run `lora-studio train` would make, as a folder for TRL + accelerate on GPUs
// (src/export/trl.ts writes it; src/export/trl-train.py is its train.py).
//
//   --model ID_OR_DIR   a model folder, or a Hub repo id (its config and tokenizer files are fetched into the CLI's
//                       model cache, $LORA_STUDIO_CACHE; $HF_ENDPOINT and $HF_TOKEN as huggingface_hub reads them)
//   --data FILE --out DIR [every `train` flag that shapes the run: method, rank, targets, steps, lr, eval split, …]
//
// The rows are read by the same code as `train` (src/cli/load.ts readRows → src/data), truncated, masked and split
// the same way, so data/*.jsonl hold what the studio's trainer would train and evaluate on.
import { createReadStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { readLines, splitEval, type DatasetRow } from '../data/index.ts';
import { trlExportFiles, trlRunJson, type TrlExportInput } from '../export/trl.ts';
import { ChatTemplate } from '../model/chat-template.ts';
import type { ModelFiles } from '../model/checkpoint.ts';
import type { ModelConfig } from '../model/config.ts';
import { readModelConfig } from '../model/load.ts';
import { NodeModelCache } from '../model/sources/cache-node.ts';
import { DEFAULT_HUB_URL, hubModel } from '../model/sources/hub.ts';
import type { TrainConfig } from '../train/config.ts';
import { methodFor } from '../train/methods/registry.ts';
import { resolveTargets } from '../train/methods/targets.ts';
import { parseFlags, requiredString, optionalString, UsageError, type FlagSpec, type FlagValues } from './args.ts';
import { openModelFolder, processIo, readRows, readTokenizer, writeChunksAtomic, type CliIo, type ModelFolder } from './load.ts';
import { configFromFlags, TRAIN_USAGE } from './train.ts';

const COMMAND = 'export-trl';

/** `train`'s flags that only concern a run in progress here, so they are not taken. */
const TRAIN_ONLY = new Set(['resume', 'profile', 'out', 'model', 'data']);

/** The `train` flags this command takes: those TRAIN_USAGE lists, with their kind as it writes them
 *  (`[--rslora]` a switch, `[--rank 8]` a value), so the two commands never disagree on a flag. */
function trainFlags(): FlagSpec {
  const spec: FlagSpec = {};
  for (const m of TRAIN_USAGE.matchAll(/--([a-z][\w-]*)(\]|\s+[^\s|\]-][^\s\]]*)/g)) {
    if (!TRAIN_ONLY.has(m[1])) spec[m[1]] = { type: m[2] === ']' ? 'boolean' : 'string' };
  }
  return spec;
}

const FLAGS: FlagSpec = {
  model: { type: 'string' },
  data: { type: 'string' },
  out: { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean' },
  ...trainFlags(),
};

export const EXPORT_TRL_USAGE =
  'lora-studio export-trl --model ID_OR_DIR --data FILE.jsonl --out DIR [--force] [the train flags: --method, --rank, --alpha, ' +
  '--targets, --steps | --epochs, --lr, --batch, --grad-accum, --max-len, --warmup, --schedule, --seed, --eval-data | ' +
  '--eval-split, --eval-every, --early-stopping, --rslora, --lora-plus, --packing, --preset, …] (a folder for TRL + accelerate: ' +
  'train.py, the tokenized rows, accelerate configs, README.md)';

export async function exportTrlCommand(args: string[], io: CliIo = processIo): Promise<void> {
  const flags = parseFlags(COMMAND, args, FLAGS);
  if (flags.help) {
    io.stdout(`usage: ${EXPORT_TRL_USAGE}`);
    return;
  }
  const modelArg = requiredString(COMMAND, flags, 'model');
  const dataPath = requiredString(COMMAND, flags, 'data');
  const out = requiredString(COMMAND, flags, 'out');
  const evalPath = optionalString(flags, 'eval-data');
  let config = trainConfig(flags);
  const hasEval = evalPath !== undefined || config.evalSplit > 0;
  if (!hasEval && config.earlyStoppingPatience > 0) throw new UsageError(`${COMMAND}: --early-stopping needs an eval set (--eval-data or --eval-split)`);
  if (!hasEval && config.evalEvery > 0) throw new UsageError(`${COMMAND}: --eval-every needs an eval set (--eval-data or --eval-split)`);
  const existing = await readdir(out).catch(() => null);
  if (existing && existing.length > 0 && !flags.force) throw new UsageError(`${COMMAND}: --out ${out} is not empty (--force writes into it)`);

  const { folder, modelId } = await openModel(modelArg, io);
  config = fitToModel(config, folder.config, modelArg, flags['max-len'] !== undefined, io);
  const targetModules = targetModulesFor(config, folder.config);
  const common = { command: COMMAND, model: folder, maxLength: config.maxLength, io, countedAs: 'trained', trainOnPrompt: config.trainOnPrompt };
  const data = await readRows(dataPath, { ...common, flag: 'data' });
  let train: DatasetRow[] = data.rows;
  let evalRows: DatasetRow[] = [];
  const sourceFiles = { train: dataPath, eval: dataPath };
  if (evalPath !== undefined) {
    evalRows = (await readRows(evalPath, { ...common, flag: 'eval-data' })).rows;
    sourceFiles.eval = evalPath;
  } else if (config.evalSplit > 0) {
    if (train.length < 2) throw new UsageError(`${COMMAND}: --eval-split needs at least 2 usable rows in ${dataPath}, it has ${train.length}`);
    ({ train, eval: evalRows } = splitEval(train, config.evalSplit, config.seed));
    io.stderr(`${COMMAND}: --eval-split ${config.evalSplit}: ${evalRows.length} of ${data.rows.length} rows held out for evaluation`);
  }

  const input: TrlExportInput = {
    modelId,
    model: folder.config,
    config,
    targetModules,
    train,
    eval: evalRows,
    sourceLines: {
      train: await sourceLines(sourceFiles.train, train),
      eval: await sourceLines(sourceFiles.eval, evalRows),
    },
    source: { fileName: basename(dataPath), format: data.report.format },
    name: basename(resolve(out)),
  };
  const files = trlExportFiles(input);
  for (const file of files) {
    const target = join(out, file.path);
    await mkdir(dirname(target), { recursive: true });
    await writeChunksAtomic(file.chunks(), join(dirname(target), `.${basename(target)}.partial`), target);
  }
  const run = trlRunJson(input);
  io.stderr(`${COMMAND}: wrote ${files.length} files into ${out}: python ${join(out, 'train.py')}, or accelerate launch --config_file ${join(out, 'accelerate', 'ddp.yaml')} ${join(out, 'train.py')}`);
  io.stdout(
    JSON.stringify({
      out,
      model: modelId,
      method: run.method.method,
      train_rows: run.data.train_rows,
      eval_rows: run.data.eval_rows,
      steps_one_process: run.steps_one_process,
      files: files.map((f) => f.path),
    }),
  );
}

/** `train`'s TrainConfig from the flags, its messages said as this command's. */
function trainConfig(flags: FlagValues): TrainConfig {
  try {
    return configFromFlags(flags);
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(e.message.replace(/^train: /, `${COMMAND}: `));
    throw e;
  }
}

/** A model folder, or a Hub repo id whose small files (config, tokenizer, chat template) are fetched: no weights
 *  are needed to tokenize the data. modelId is what train.py loads: the folder's absolute path, or the repo id. */
async function openModel(arg: string, io: CliIo): Promise<{ folder: ModelFolder; modelId: string }> {
  const info = await stat(arg).catch(() => null);
  if (info || arg.startsWith('.') || arg.startsWith('/') || !/^[\w.-]+\/[\w.-]+$/.test(arg)) {
    return { folder: await openModelFolder(arg), modelId: resolve(arg) };
  }
  const baseUrl = process.env.HF_ENDPOINT || DEFAULT_HUB_URL;
  const files = hubModel(arg, { baseUrl, token: process.env.HF_TOKEN ?? null, cache: new NodeModelCache(), connectSrc: null });
  io.stderr(`${COMMAND}: ${arg} is not a folder here: reading its config and tokenizer from ${baseUrl}`);
  return { folder: await hubFolder(files, arg), modelId: arg };
}

async function hubFolder(files: ModelFiles, repo: string): Promise<ModelFolder> {
  const config = await readModelConfig(files);
  const tokenizer = await readTokenizer(files, repo);
  let template: ChatTemplate | null = null;
  if (tokenizer) {
    const jinja = await files.open('chat_template.jinja');
    const jinjaFile = jinja ? new TextDecoder().decode(await jinja.read(0, jinja.size)) : null;
    await jinja?.close?.();
    template = ChatTemplate.forTokenizer(tokenizer, { jinjaFile });
  }
  return { dir: repo, files, config, tokenizer, template };
}

/** As `train` fits the run to the model: learned positions cap the length; the default is lowered, a given one not. */
function fitToModel(config: TrainConfig, model: ModelConfig, where: string, maxLenGiven: boolean, io: CliIo): TrainConfig {
  if (model.positions.kind !== 'learned' || config.maxLength <= model.maxPositions) return config;
  if (maxLenGiven) throw new UsageError(`${COMMAND}: --max-len ${config.maxLength} exceeds ${where}'s ${model.maxPositions} learned positions`);
  io.stderr(`${COMMAND}: max length ${config.maxLength} lowered to ${where}'s ${model.maxPositions} learned positions`);
  return { ...config, maxLength: model.maxPositions };
}

/** adapter_config.json's target_modules for the run, by the one resolver `train` uses (src/train/methods/targets.ts). */
function targetModulesFor(config: TrainConfig, model: ModelConfig): string | string[] {
  try {
    return resolveTargets(model, config.targets, methodFor(config.method).defaultTargets).targetModules;
  } catch (e) {
    throw new UsageError(`${COMMAND}: --targets ${config.targets.join(',') || '(default)'}: ${(e as Error).message}`);
  }
}

/** The source lines `rows` came from (by line number, read with the loader's own line splitter). */
async function sourceLines(path: string, rows: readonly DatasetRow[]): Promise<Map<number, string>> {
  const wanted = new Set(rows.map((r) => r.line));
  const lines = new Map<number, string>();
  if (wanted.size === 0) return lines;
  for await (const { lineNumber, text } of readLines(createReadStream(path))) {
    if (wanted.has(lineNumber) && text !== undefined) lines.set(lineNumber, text);
  }
  return lines;
}
