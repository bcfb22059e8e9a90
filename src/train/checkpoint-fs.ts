// Training checkpoints on disk (the Node CLI; the browser keeps its own in IndexedDB). One folder per checkpoint:
//
//   <out>/checkpoint-<step>/
//     adapter_config.json, adapter_model.safetensors   the adapter at that step, PEFT's layout (loads as is); none for
//                                                      full fine-tuning (the model folder is written at the end)
//     optimizer.safetensors                            flat F32 [n] tensors: params, m, v (AdamW's moments) and,
//                                                      once evaluated, best_params (the best adapter, early stopping)
//     trainer_state.json                               step, epoch, batchIndex, config, segments, best*, history, run
//
// A checkpoint is written into a hidden temporary folder (.tmp-checkpoint-<step>-<pid>), every file synced, then
// renamed to checkpoint-<step> in one step: a crash mid-write leaves a temporary folder that is never read, and the
// last complete checkpoint intact. Only folders named checkpoint-<integer> holding the optimizer file and the state
// (and both adapter files or neither) count.
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { CheckpointError, parseStoredCheckpoint } from './checkpoint-read.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, type AdapterFiles } from './peft.ts';
import type { TrainerCheckpoint } from './trainer.ts';

export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_STATE_FILE = 'trainer_state.json';
const CHECKPOINT_RE = /^checkpoint-(\d+)$/;
const TEMP_PREFIX = '.tmp-';
/** What every complete checkpoint holds; the adapter's two files come together or not at all (a full fine-tuning
 *  checkpoint has none: its weights are the optimizer file's params). */
const CHECKPOINT_FILES = [OPTIMIZER_FILE, TRAINER_STATE_FILE];
const ADAPTER_FILES = [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE];

export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

/** trainer_state.json: the checkpoint's scalars (its arrays go to optimizer.safetensors), plus what the caller wants
 *  to compare on resume (`run`). */
type TrainerStateJson = Omit<TrainerCheckpoint, 'params' | 'm' | 'v' | 'bestParams'> & { run: unknown };

export interface StoredCheckpoint {
  dir: string;
  step: number;
  checkpoint: TrainerCheckpoint;
  /** What writeCheckpoint was given as `run` (the model folder, a fingerprint of the data, …). */
  run: unknown;
}

/** Writes `bytes` to `path` through a temporary file in the same folder, synced, then renamed over it. */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeSynced(tmp, bytes);
  await rename(tmp, path);
}

async function writeSynced(path: string, bytes: Uint8Array | string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename durable (the folder's entry); not every platform can sync a folder, and then it is skipped. */
async function syncFolder(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // e.g. Windows cannot open a folder for sync: the rename is still atomic, only its durability is the OS's.
  }
}

/** Writes <outDir>/checkpoint-<step>/ atomically (see the header); replaces an older folder of the same step. */
export async function writeCheckpoint(outDir: string, ck: TrainerCheckpoint, adapter: AdapterFiles | null, run: unknown): Promise<string> {
  const name = checkpointName(ck.step);
  const final = join(outDir, name);
  const tmp = join(outDir, `${TEMP_PREFIX}${name}-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });

  const tensors: Record<string, TensorToWrite> = {
    params: flat(ck.params),
    m: flat(ck.m),
    v: flat(ck.v),
  };
  if (ck.bestParams) tensors.best_params = flat(ck.bestParams);
  const state: TrainerStateJson = {
    version: 1,
    step: ck.step,
    epoch: ck.epoch,
    batchIndex: ck.batchIndex,
    config: ck.config,
    segments: ck.segments,
    bestEvalLoss: ck.bestEvalLoss,
    bestStep: ck.bestStep,
    evalsWithoutImprovement: ck.evalsWithoutImprovement,
    history: ck.history,
    run,
  };
  if (adapter) {
    await writeSynced(join(tmp, ADAPTER_CONFIG_FILE), adapter['adapter_config.json']);
    await writeSynced(join(tmp, ADAPTER_WEIGHTS_FILE), adapter['adapter_model.safetensors']);
  }
  await writeSynced(join(tmp, OPTIMIZER_FILE), writeSafetensors(tensors, { format: 'lora-studio-optimizer' }));
  // The state last: a folder with it is complete even where a rename is not atomic.
  await writeSynced(join(tmp, TRAINER_STATE_FILE), `${JSON.stringify(state, null, 1)}\n`);
  await syncFolder(tmp);

  // rename() cannot replace a non-empty folder: move an older one of the same step aside first.
  if (await exists(final)) {
    const old = join(outDir, `${TEMP_PREFIX}old-${name}-${process.pid}`);
    await rm(old, { recursive: true, force: true });
    await rename(final, old);
    await rename(tmp, final);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(tmp, final);
  }
  await syncFolder(outDir);
  return final;
}

function flat(a: Float32Array): TensorToWrite {
  return { dtype: 'F32', shape: [a.length], data: a };
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

/** The checkpoint-<step> folders of `outDir` holding every file, oldest first; `incomplete` lists the others. */
export async function listCheckpoints(outDir: string): Promise<{ complete: { step: number; dir: string }[]; incomplete: string[] }> {
  const entries = await readdir(outDir, { withFileTypes: true }).catch(() => []);
  const complete: { step: number; dir: string }[] = [];
  const incomplete: string[] = [];
  for (const entry of entries) {
    const match = CHECKPOINT_RE.exec(entry.name);
    if (!match || !entry.isDirectory()) continue;
    const dir = join(outDir, entry.name);
    const files = new Set(await readdir(dir).catch(() => [] as string[]));
    const adapterFiles = ADAPTER_FILES.filter((f) => files.has(f)).length;
    if (CHECKPOINT_FILES.every((f) => files.has(f)) && adapterFiles !== 1) complete.push({ step: Number(match[1]), dir });
    else incomplete.push(dir);
  }
  complete.sort((a, b) => a.step - b.step);
  return { complete, incomplete };
}

/** Leftover temporary folders and files of interrupted writes (never read; safe to delete). */
export async function leftoverTemporaries(outDir: string): Promise<string[]> {
  const entries = await readdir(outDir).catch(() => [] as string[]);
  return entries.filter((n) => n.startsWith(TEMP_PREFIX) || /\.tmp-\d+$/.test(n)).map((n) => join(outDir, n));
}

/** Reads one checkpoint folder; throws a CheckpointError naming the file and the field or tensor when something is
 *  missing, malformed or damaged (checkpoint-read.ts). */
export async function readCheckpoint(dir: string): Promise<StoredCheckpoint> {
  const paths = { state: join(dir, TRAINER_STATE_FILE), optimizer: join(dir, OPTIMIZER_FILE) };
  const unreadable = (path: string) => (e: Error): never => {
    throw new CheckpointError(`${path}: unreadable (${e.message})`);
  };
  const stateText = await readFile(paths.state, 'utf8').catch(unreadable(paths.state));
  const optimizer = new Uint8Array(await readFile(paths.optimizer).catch(unreadable(paths.optimizer)));
  const { checkpoint, run } = await parseStoredCheckpoint(stateText, optimizer, paths);
  return { dir, step: checkpoint.step, checkpoint, run };
}

/**
 * The newest checkpoint of `outDir` that reads back whole, or null. Folders that are incomplete or fail to read are
 * passed over, each reported through `warn` (a half-written checkpoint never stops a resume from the one before).
 */
export async function latestCheckpoint(outDir: string, warn: (message: string) => void = () => {}): Promise<StoredCheckpoint | null> {
  const { complete, incomplete } = await listCheckpoints(outDir);
  for (const dir of incomplete) warn(`${dir} is incomplete (missing files); ignored`);
  for (const { dir } of complete.reverse()) {
    try {
      return await readCheckpoint(dir);
    } catch (e) {
      warn(`${(e as Error).message}; ${dir} ignored`);
    }
  }
  return null;
}
