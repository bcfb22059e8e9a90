// 'merge-model': the loaded base model with a saved run's adapter folded in (merge.ts mergeModel: W + s·B·A, f16 or
// f32, with config.json and the tokenizer files), streamed to where the page asked:
//   - a folder the user picked (File System Access API): each file written chunk by chunk through createWritable, so
//     memory holds one chunk (or one adapted weight matrix) at a time, never the model — a 0.5B model merges in a tab;
//   - one .zip (fflate's streaming Zip, stored, not deflated: f16 weights barely compress) for browsers without that
//     API. The .zip is assembled as a Blob, which the browser may keep in memory: refused above ZIP_LIMIT_BYTES with
//     what to do instead (a browser that has the API, or the CLI's `npx lora-studio merge`).
// The base model's files are the loaded model's (worker state keeps its ModelFiles), read again from their source.
// A full fine-tuning run has nothing to merge: the same request writes its model folder (methods/full/
// model-folder.ts: model.safetensors in the base checkpoint's dtype, config.json, the tokenizer files), the same ways.
import { Zip, ZipPassThrough } from 'fflate';
import { ggufOutputFiles } from '../../export/gguf-output.ts';
import { trlConfigFiles, trlOutputFiles } from './export-trl.ts';
import { mergeModel, type MergedModel, type OutputFile } from '../merge.ts';
import { adapterMethod } from '../peft.ts';
import { aMethodLabel } from '../methods/registry.ts';
import type { EngineRequest } from '../protocol.ts';
import { fullModelFolder } from '../methods/full/model-folder.ts';
import { loadAnyRunAdapter, loadFullRunTensors, workerRunsDb } from './adapters.ts';
import { requireModel, UserError, type Post } from './state.ts';
import { fullModelName, mergedModelName, trlExportName } from '../download-names.ts';

type MergeRequest = Extract<EngineRequest, { type: 'merge-model' }>;
type TrlExportRequest = Extract<EngineRequest, { type: 'export-trl' }>;

/** The largest merged model the .zip fallback builds (the sum of its files' sizes). */
export const ZIP_LIMIT_BYTES = 200 * 1024 * 1024;
/** Bytes read, merged and written at a time (one adapted matrix is merged whole whatever its size). */
const CHUNK_BYTES = 8 << 20;
const PROGRESS_INTERVAL_MS = 100;

export const CLI_MERGE_HINT = 'npx lora-studio merge --model MODEL_DIR --adapter ADAPTER_DIR --out MERGED_DIR';

/** A merge stopped by the user. */
export class MergeCancelled extends UserError {
  constructor() {
    super('the merge was cancelled');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writers (host-agnostic: the tests give them in-memory folders)

/** What the merge needs of a FileSystemWritableFileStream. */
export interface WritableLike {
  write(data: Uint8Array<ArrayBuffer>): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}

/** What the merge needs of a FileSystemDirectoryHandle. */
export interface DirectoryLike {
  getDirectoryHandle(name: string, options: { create: boolean }): Promise<DirectoryLike>;
  getFileHandle(name: string, options: { create: boolean }): Promise<{ createWritable(): Promise<WritableLike> }>;
}

/** Counts the bytes produced and reports them now and then (the last report always comes). */
export function progressCounter(total: number, report: (done: number, total: number) => void, now = () => performance.now()) {
  let done = 0;
  let last = -Infinity;
  return {
    add(bytes: number) {
      done += bytes;
      const t = now();
      if (t - last >= PROGRESS_INTERVAL_MS || done >= total) {
        last = t;
        report(done, total);
      }
    },
    get done() {
      return done;
    },
  };
}

function checkAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new MergeCancelled();
}

/**
 * Writes every file into `dir/<folder>/`, one chunk at a time. A file's writable is committed on close (the browser
 * writes to a swap file until then), so a failed or cancelled file leaves no half-written file behind.
 */
export async function writeToDirectory(
  files: readonly OutputFile[],
  dir: DirectoryLike,
  folder: string,
  onBytes: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  const target = await dir.getDirectoryHandle(folder, { create: true });
  for (const file of files) {
    checkAborted(signal);
    // "data/train.jsonl" (the TRL export): the folders on the way, then the file.
    const parts = file.path.split('/');
    let parent = target;
    for (const part of parts.slice(0, -1)) parent = await parent.getDirectoryHandle(part, { create: true });
    const writable = await (await parent.getFileHandle(parts[parts.length - 1], { create: true })).createWritable();
    let written = 0;
    try {
      for await (const chunk of file.chunks()) {
        checkAborted(signal);
        await writable.write(chunk as Uint8Array<ArrayBuffer>);
        written += chunk.length;
        onBytes(chunk.length);
      }
      if (written !== file.size) throw new Error(`${file.path}: produced ${written} bytes, declared ${file.size}`);
    } catch (err) {
      await writable.abort(err).catch(() => {});
      throw err;
    }
    await writable.close();
  }
}

/** The files in one .zip, under `folder/`, stored uncompressed; built chunk by chunk into a Blob. */
export async function zipFiles(
  files: readonly OutputFile[],
  folder: string,
  onBytes: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<Blob> {
  const parts: Blob[] = [];
  let failure: Error | null = null;
  let ended = false;
  const zip = new Zip((err, data, final) => {
    if (err) failure = err;
    else parts.push(new Blob([data as Uint8Array<ArrayBuffer>])); // a copy: fflate may reuse `data`
    if (final) ended = true;
  });
  for (const file of files) {
    checkAborted(signal);
    const entry = new ZipPassThrough(`${folder}/${file.path}`);
    zip.add(entry);
    let written = 0;
    for await (const chunk of file.chunks()) {
      checkAborted(signal);
      entry.push(chunk, false);
      written += chunk.length;
      onBytes(chunk.length);
      if (failure) throw failure;
    }
    entry.push(new Uint8Array(0), true);
    if (written !== file.size) throw new Error(`${file.path}: produced ${written} bytes, declared ${file.size}`);
  }
  zip.end();
  if (failure) throw failure;
  if (!ended) throw new Error('the .zip was not finished');
  return new Blob(parts, { type: 'application/zip' });
}

/** Why the .zip fallback refuses a model this size, with what to do instead; empty when it builds it. */
export function zipRefusal(totalBytes: number, limit = ZIP_LIMIT_BYTES): string {
  if (totalBytes <= limit) return '';
  const mib = (b: number) => `${(b / 1024 ** 2).toFixed(0)} MiB`;
  return (
    `the merged model is ${mib(totalBytes)}, more than the ${mib(limit)} a single .zip download is built for here: this ` +
    'browser cannot stream a multi-file download. Save it into a folder in a browser with the File System Access API ' +
    `(Chrome, Edge), or merge on the command line: ${CLI_MERGE_HINT}`
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The handler

const running = new Map<string, AbortController>();

export function abortMerge(id: string): void {
  running.get(id)?.abort();
}

/** Handles 'merge-model' and the Train screen's 'export-trl' (written the same way). */
export async function handleMerge(req: MergeRequest | TrlExportRequest, post: Post): Promise<void> {
  if (running.size > 0) throw new UserError('a merge is already running: wait for it, or cancel it');
  const controller = new AbortController();
  running.set(req.id, controller);
  try {
    const { merged, name, runId } = req.type === 'export-trl'
      ? { merged: { files: await trlConfigFiles(req), close: async () => {} }, name: trlExportName(req.name), runId: '' }
      : await runOutput(req);
    try {
      const total = merged.files.reduce((s, f) => s + f.size, 0);
      const counter = progressCounter(total, (done, all) => post({ type: 'progress', id: req.id, stage: 'merge', done, total: all }));
      const files = merged.files.map((f) => ({ path: f.path, size: f.size }));
      if (req.to.kind === 'zip') {
        const refusal = zipRefusal(total);
        if (refusal) throw new UserError(refusal);
        const blob = await zipFiles(merged.files, name, (n) => counter.add(n), controller.signal);
        post({ type: 'merged', id: req.id, runId, files, zip: { fileName: `${name}.zip`, blob } });
      } else {
        await writeToDirectory(merged.files, req.to.handle as unknown as DirectoryLike, name, (n) => counter.add(n), controller.signal);
        post({ type: 'merged', id: req.id, runId, files, folder: name });
      }
    } finally {
      await merged.close();
    }
  } finally {
    running.delete(req.id);
  }
}

/** The adapter a cluster export reads its target_modules from: LoRA's or DoRA's (PEFT's LoraConfig either way). */
async function trlAdapter(runId: string, name: string) {
  const adapter = await loadAnyRunAdapter(runId);
  if (adapter.kind === 'ia3' || adapter.kind === 'prompt') {
    throw new UserError(`"${name}" is ${aMethodLabel(adapterMethod(adapter))} run: the cluster export takes LoRA, DoRA and full fine-tuning runs only (for now)`);
  }
  return adapter;
}

/** A saved run's merged model, GGUF or TRL export, and the folder name it is written under. */
async function runOutput(req: MergeRequest): Promise<{ merged: MergedModel; name: string; runId: string }> {
  const model = requireModel();
  const record = await workerRunsDb().get(req.runId);
  if (!record) throw new UserError(`run ${req.runId} does not exist (deleted?)`);
  if (record.model.name !== model.summary.name) {
    throw new UserError(`"${record.name}" is an adapter of ${record.model.name}: load that model to merge it (loaded: ${model.summary.name})`);
  }
  const full = await loadFullRunTensors(req.runId);
  if (full) {
    // The cluster export of a full run: train.py without PEFT (SFTTrainer trains every weight), the run's rows.
    if (req.trl) return { merged: { files: await trlOutputFiles(record, model, null), close: async () => {} }, name: trlExportName(record.name), runId: req.runId };
    if (req.gguf) throw new UserError(`"${record.name}" is a full fine-tuning run: download it as a model folder (model.safetensors, config.json, tokenizer), then convert that folder with llama.cpp's convert_hf_to_gguf.py`);
    return { merged: await fullModelFolder(model.files, full, model.config), name: fullModelName(record.name), runId: req.runId };
  }
  const merged = req.trl
    ? { files: await trlOutputFiles(record, model, await trlAdapter(req.runId, record.name)), close: async () => {} }
    : req.gguf
      ? await ggufOutputFiles(model.files, await loadAnyRunAdapter(req.runId), req.gguf, record.name, CHUNK_BYTES)
      : await mergeModel(model.files, await loadAnyRunAdapter(req.runId), CHUNK_BYTES, req.dtype);
  const name = req.trl ? trlExportName(record.name) : req.gguf ? `${mergedModelName(record.name)}-gguf` : mergedModelName(record.name);
  return { merged, name, runId: req.runId };
}
