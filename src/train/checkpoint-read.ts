// Reading a training checkpoint back (issue 14): the CLI's trainer_state.json + optimizer.safetensors
// (checkpoint-fs.ts) and the studio's checkpoints in IndexedDB (store/runs-db.ts) are checked here before a run
// resumes from them. A damaged or hostile checkpoint is refused with a CheckpointError naming the file (or the run)
// and the field, tensor or element that is wrong, instead of reaching the trainer: a NaN moment or a negative second
// moment would poison every later step, a wrong type would fail somewhere far from its cause.
import { SafetensorsError, SafetensorsFile } from '../model/safetensors.ts';
import { MemorySource } from '../model/sources/memory.ts';
import { normalizeConfig, validateConfig, type TrainConfig } from './config.ts';
import type { StepMetrics } from './protocol.ts';
import type { TrainerCheckpoint } from './trainer.ts';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const METRIC_KEYS = ['step', 'epoch', 'loss', 'lr', 'gradNorm', 'tokensPerSecond', 'ms', 'memBytes', 'peakBytes', 'evalLoss'] as const;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const shown = (v: unknown): string => {
  const text = typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/** The scalar part of a checkpoint (trainer_state.json, or the IndexedDB record without its arrays), checked. */
export function checkCheckpointState(state: unknown, where: string): Omit<TrainerCheckpoint, 'params' | 'm' | 'v' | 'bestParams'> {
  const fail = (field: string, why: string): never => {
    throw new CheckpointError(`${where}: "${field}" ${why}`);
  };
  if (typeof state !== 'object' || state === null || Array.isArray(state)) throw new CheckpointError(`${where}: not a lora-studio trainer state (a JSON object)`);
  const s = state as Record<string, unknown>;
  if (s.version !== 1) fail('version', `must be 1 (a lora-studio trainer state), got ${shown(s.version)}`);
  for (const key of ['step', 'epoch', 'batchIndex', 'evalsWithoutImprovement'] as const) {
    if (!isCount(s[key])) fail(key, `must be a non-negative integer, got ${shown(s[key])}`);
  }
  if (s.bestEvalLoss !== null && !(typeof s.bestEvalLoss === 'number' && Number.isFinite(s.bestEvalLoss))) fail('bestEvalLoss', `must be a finite number or null, got ${shown(s.bestEvalLoss)}`);
  if (s.bestStep !== null && !isCount(s.bestStep)) fail('bestStep', `must be a non-negative integer or null, got ${shown(s.bestStep)}`);
  if (!Array.isArray(s.segments) || s.segments.some((x) => typeof x !== 'string')) fail('segments', `must be a list of names, got ${shown(s.segments)}`);
  if (!Array.isArray(s.history)) fail('history', `must be a list of steps, got ${shown(s.history)}`);
  (s.history as unknown[]).forEach((h, i) => {
    if (typeof h !== 'object' || h === null || Array.isArray(h)) fail(`history[${i}]`, `must be an object, got ${shown(h)}`);
    const m = h as Record<string, unknown>;
    // The step and its loss are what resume and the charts stand on; the rest is shown as it is (a number, or none).
    if (!Number.isSafeInteger(m.step) || (m.step as number) < 1) fail(`history[${i}].step`, `must be a positive integer, got ${shown(m.step)}`);
    if (!(typeof m.loss === 'number' && Number.isFinite(m.loss))) fail(`history[${i}].loss`, `must be a finite number, got ${shown(m.loss)}`);
    for (const key of METRIC_KEYS) {
      const v = m[key];
      if (v !== undefined && v !== null && typeof v !== 'number') fail(`history[${i}].${key}`, `must be a number, got ${shown(v)}`);
    }
  });
  if (typeof s.config !== 'object' || s.config === null || Array.isArray(s.config)) fail('config', `must be an object, got ${shown(s.config)}`);
  let config: TrainConfig;
  try {
    config = normalizeConfig(s.config as TrainConfig);
    const errors = validateConfig(config);
    if (errors.length) fail('config', `is not a valid training configuration: ${errors.map((e) => e.message).join('; ')}`);
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    return fail('config', `is not a valid training configuration (${(e as Error)?.message ?? String(e)})`);
  }
  return {
    version: 1,
    step: s.step as number,
    epoch: s.epoch as number,
    batchIndex: s.batchIndex as number,
    config: config!,
    segments: s.segments as string[],
    bestEvalLoss: s.bestEvalLoss as number | null,
    bestStep: s.bestStep as number | null,
    evalsWithoutImprovement: s.evalsWithoutImprovement as number,
    history: s.history as StepMetrics[],
  };
}

/** params, m, v (and the best params, named as the caller stores them): Float32Arrays of one length, every element
 *  finite, v ≥ 0. A null best is none. */
export function checkCheckpointArrays(arrays: { params: unknown; m: unknown; v: unknown } & Record<string, unknown>, where: string): void {
  const n = (arrays.params as { length?: unknown } | null)?.length;
  for (const [name, a] of Object.entries(arrays)) {
    if (name !== 'params' && name !== 'm' && name !== 'v' && (a === null || a === undefined)) continue;
    if (!(a instanceof Float32Array)) throw new CheckpointError(`${where}: "${name}" must be f32 numbers, got ${shown(Object.prototype.toString.call(a))}`);
    if (a.length !== n) throw new CheckpointError(`${where}: "${name}" has ${a.length} numbers but "params" has ${String(n)}`);
    for (let i = 0; i < a.length; i++) {
      const x = a[i];
      if (!Number.isFinite(x) || (name === 'v' && x < 0)) {
        throw new CheckpointError(`${where}: "${name}"[${i}] is ${x}${name === 'v' ? ', not a finite second moment ≥ 0' : ', not finite'} (a damaged checkpoint)`);
      }
    }
  }
}

/** A checkpoint object as read from IndexedDB: everything checked, or a CheckpointError naming `where`. */
export function checkTrainerCheckpoint(ck: unknown, where: string): TrainerCheckpoint {
  const state = checkCheckpointState(ck, where);
  const c = ck as Record<string, unknown>;
  checkCheckpointArrays({ params: c.params, m: c.m, v: c.v, bestParams: c.bestParams ?? null }, where);
  return { ...state, params: c.params as Float32Array, m: c.m as Float32Array, v: c.v as Float32Array, bestParams: (c.bestParams as Float32Array | null) ?? null };
}

/** trainer_state.json's text and optimizer.safetensors' bytes → the checkpoint and what the writer gave as `run`. */
export async function parseStoredCheckpoint(
  stateText: string,
  optimizer: Uint8Array,
  paths: { state: string; optimizer: string },
): Promise<{ checkpoint: TrainerCheckpoint; run: unknown }> {
  let json: unknown;
  try {
    json = JSON.parse(stateText);
  } catch (e) {
    throw new CheckpointError(`${paths.state}: not valid JSON (${(e as Error).message})`);
  }
  const state = checkCheckpointState(json, paths.state);
  let file: SafetensorsFile;
  try {
    file = await SafetensorsFile.open(new MemorySource(paths.optimizer, optimizer));
  } catch (e) {
    if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
    throw e;
  }
  try {
    const names = new Set(file.names());
    for (const n of ['params', 'm', 'v']) if (!names.has(n)) throw new CheckpointError(`${paths.optimizer}: no "${n}" tensor`);
    const read = async (n: string): Promise<Float32Array> => {
      const info = file.info(n);
      if (info.dtype !== 'F32' || info.shape.length !== 1) {
        throw new CheckpointError(`${paths.optimizer}: "${n}" must be a flat F32 tensor, got ${info.dtype} ${JSON.stringify(info.shape)}`);
      }
      try {
        return (await file.readTensor(n, 'f32')).slice();
      } catch (e) {
        if (e instanceof SafetensorsError) throw new CheckpointError(e.message);
        throw e;
      }
    };
    const arrays = { params: await read('params'), m: await read('m'), v: await read('v'), best_params: names.has('best_params') ? await read('best_params') : null };
    checkCheckpointArrays(arrays, paths.optimizer);
    const { best_params: bestParams, ...rest } = arrays;
    return { checkpoint: { ...state, ...rest, bestParams }, run: (json as { run?: unknown }).run };
  } finally {
    await file.close();
  }
}
