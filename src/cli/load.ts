// What the CLI commands (eval, train, generate) share before the GPU is opened: the command's output channels, a
// model folder's config, tokenizer and chat template, a JSONL file read into token rows with its report on stderr,
// and a PEFT adapter from disk. Every error names the file and the flag it came from.
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { DatasetError, FORMAT_LABELS, loadJsonlDataset, type DatasetReport, type DatasetRow, type TokenizedDataset } from '../data/index.ts';
import { ChatTemplate } from '../model/chat-template.ts';
import type { ModelFiles } from '../model/checkpoint.ts';
import type { ModelConfig } from '../model/config.ts';
import { readModelConfig } from '../model/load.ts';
import { NodeFileSource, nodeFolder } from '../model/sources/node-file.ts';
import { HfTokenizer } from '../model/tokenizer.ts';
import { optionalText } from '../model/tokenizer-files.ts';
import { importAdapter, importAnyAdapter, type AnyAdapter, type LoraAdapter } from '../train/peft.ts';
import { UsageError } from './args.ts';

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

/** A Hugging Face model folder as the CLI reads it before loading weights. */
export interface ModelFolder {
  dir: string;
  files: ModelFiles;
  config: ModelConfig;
  /** null when the folder has no tokenizer.json (only pre-tokenized rows can be read then). */
  tokenizer: HfTokenizer | null;
  template: ChatTemplate | null;
}

/** config.json, tokenizer and chat template of `dir` (--model). */
export async function openModelFolder(dir: string): Promise<ModelFolder> {
  await requireFolder(dir);
  const files = nodeFolder(dir);
  const config = await readModelConfig(files);
  const tokenizer = await readTokenizer(files, dir);
  const template = tokenizer ? await readChatTemplate(dir, tokenizer) : null;
  return { dir, files, config, tokenizer, template };
}

export async function requireFolder(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => null);
  if (!info) throw new UsageError(`${dir}: no such folder (--model takes a Hugging Face model folder)`);
  if (!info.isDirectory()) throw new UsageError(`${dir}: not a folder (--model takes a Hugging Face model folder)`);
}

/** tokenizer.json with tokenizer_config.json's special tokens, or null when the folder has no tokenizer.json (then
 *  only pre-tokenized rows can be evaluated). Errors name the folder. */
export async function readTokenizer(files: ModelFiles, dir: string): Promise<HfTokenizer | null> {
  // Size-checked before reading (tokenizer-files.ts), as the studio reads them.
  const text = (name: string) => optionalText(files, name);
  try {
    const json = await text('tokenizer.json');
    if (json === null) return null;
    return HfTokenizer.fromJson(json, await text('tokenizer_config.json'));
  } catch (e) {
    throw new Error(`${dir}/${(e as Error).message}`);
  }
}

/** chat_template.jinja when the folder has one, else tokenizer_config.json's template, else the documented fallback. */
export async function readChatTemplate(dir: string, tokenizer: HfTokenizer): Promise<ChatTemplate> {
  const jinjaFile = await optionalText(nodeFolder(dir), 'chat_template.jinja').catch((e: Error) => {
    throw new Error(`${dir}/${e.message}`);
  });
  return ChatTemplate.forTokenizer(tokenizer, { jinjaFile });
}

/** A PEFT LoRA adapter folder or .zip, checked against the model's config (shapes, module paths): what merging and
 *  the GGUF export take. */
export function readAdapter(path: string, config: ModelConfig): Promise<LoraAdapter> {
  return openAdapterPath(path, (source) => importAdapter(source, config, path));
}

/** An adapter of any method the engine runs (LoRA, IA³, DoRA; Houlsby and Pfeiffer bottleneck adapters), folder or
 *  .zip: what eval and generate take. */
export function readAnyAdapter(path: string, config: ModelConfig): Promise<AnyAdapter> {
  return openAdapterPath(path, (source) => importAnyAdapter(source, config, path));
}

async function openAdapterPath<T>(path: string, read: (source: ModelFiles | NodeFileSource) => Promise<T>): Promise<T> {
  const info = await stat(path).catch(() => null);
  if (!info) throw new UsageError(`${path}: no such file or folder (--adapter takes a PEFT adapter folder or .zip)`);
  if (info.isDirectory()) return read(nodeFolder(path));
  // A .zip: read through positioned reads and inflated within adapter-archive.ts's bounds, never read whole.
  const zip = await NodeFileSource.open(path);
  try {
    return await read(zip);
  } finally {
    await zip.close();
  }
}

export interface ReadRowsOptions {
  /** The command, prefixing every message ("eval"). */
  command: string;
  /** The flag that named the file ("data", "eval-data"), for messages. */
  flag: string;
  model: ModelFolder;
  maxLength: number;
  io: CliIo;
  /** How the report calls positions that count in the loss: "scored" (eval) or "trained". */
  countedAs?: string;
  trainOnPrompt?: boolean;
}

/**
 * A JSONL file (any format src/data accepts) as token rows truncated to maxLength. The dataset report and every
 * skipped line go to stderr; a file with no usable row lists its bad lines and then fails with DatasetError's
 * message; a text token id outside the model's vocabulary fails naming the line.
 */
export async function readRows(path: string, o: ReadRowsOptions): Promise<TokenizedDataset> {
  const info = await stat(path).catch(() => null);
  if (!info) throw new UsageError(`${path}: no such file (--${o.flag} takes a JSONL file)`);
  if (!info.isFile()) throw new UsageError(`${path}: not a file (--${o.flag} takes a JSONL file)`);
  const { config, tokenizer, template } = o.model;
  const noTokenizerIn = tokenizer === null ? o.model.dir : null;
  const dataset = await loadJsonlDataset(createReadStream(path), {
    tokenizer,
    template,
    maxLength: o.maxLength,
    trainOnPrompt: o.trainOnPrompt,
    // Ids are checked against the model's embedding rows, which is what a wrong id would silently read past.
    vocabSize: config.vocabSize,
    fileName: path,
    totalBytes: info.size,
    onProgress: o.io.tty ? (p) => o.io.progress(`${o.command}: reading ${path} ${percent(p.bytes, p.totalBytes ?? 0)} (${p.rows} rows)`) : undefined,
  }).catch((e: unknown) => {
    // A file with no usable row: list its bad lines as a partly bad file would, then fail with DatasetError's line.
    if (e instanceof DatasetError) reportSkipped(o.command, o.io, e.report, noTokenizerIn);
    throw e;
  });
  reportDataset(o.command, o.io, dataset.report, noTokenizerIn, o.countedAs ?? 'scored');
  checkVocabulary(dataset.rows, config, path);
  return dataset;
}

const MAX_LISTED_ERRORS = 20;

function reportDataset(command: string, io: CliIo, r: DatasetReport, noTokenizerIn: string | null, countedAs: string): void {
  if (io.tty) io.progress('');
  const format = r.format ? FORMAT_LABELS[r.format] : 'unknown';
  io.stderr(
    `${command}: ${r.fileName}: ${r.rows} rows (${format}${r.formatSource === 'override' ? ', forced' : ''}), ${r.trainedTokens} ${countedAs} tokens, ` +
      `max length ${r.maxLength}`,
  );
  if (r.truncated > 0) io.stderr(`${command}: ${r.truncated} row(s) longer than ${r.maxLength} tokens were truncated to ${r.maxLength}`);
  if (r.usedFallbackTemplate) io.stderr(`${command}: the model has no chat template; conversations were rendered with the ChatML fallback`);
  reportSkipped(command, io, r, noTokenizerIn);
}

function reportSkipped(command: string, io: CliIo, r: DatasetReport, noTokenizerIn: string | null): void {
  if (io.tty) io.progress('');
  if (r.skipped === 0) return;
  io.stderr(`${command}: ${r.skipped} line(s) skipped:`);
  for (const err of r.errors.slice(0, MAX_LISTED_ERRORS)) io.stderr(`  ${r.fileName}:${err.line}: ${err.reason}`);
  if (r.skipped > MAX_LISTED_ERRORS) io.stderr(`  … and ${r.skipped - MAX_LISTED_ERRORS} more`);
  if (noTokenizerIn) io.stderr(`${command}: ${noTokenizerIn} has no tokenizer.json, so only pre-tokenized rows can be read`);
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

export function percent(done: number, total: number): string {
  return total > 0 ? `${Math.min(100, Math.floor((100 * done) / total))}%` : `${done} bytes`;
}

/** Streams `chunks` into `temporary`, then renames it to `target`: a reader never sees half a file, and a failure
 *  leaves no temporary behind. `onChunk` gets the bytes written so far (progress). */
export async function writeChunksAtomic(
  chunks: AsyncIterable<Uint8Array>,
  temporary: string,
  target: string,
  onChunk?: (written: number) => void,
): Promise<void> {
  const stream = createWriteStream(temporary);
  let written = 0;
  try {
    for await (const chunk of chunks) {
      if (!stream.write(chunk)) await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
      written += chunk.length;
      onChunk?.(written);
    }
    stream.end();
    await finished(stream);
  } catch (err) {
    stream.destroy();
    await rm(temporary, { force: true });
    throw err;
  }
  await rename(temporary, target);
}
