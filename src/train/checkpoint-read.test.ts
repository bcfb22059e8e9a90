// Training checkpoints read back (checkpoint-read.ts): the cases that reached the trainer before the reader checked
// them, each now a CheckpointError naming the file (or the run) and the field, tensor or element.
import { describe, expect, it } from 'vitest';
import { writeSafetensors } from '../model/safetensors.ts';
import { RunsDb, type KeyValue, type RunRecord } from '../store/runs-db.ts';
import { CheckpointError, parseStoredCheckpoint } from './checkpoint-read.ts';
import { DEFAULT_CONFIG } from './config.ts';

const PATHS = { state: 'out/checkpoint-2/trainer_state.json', optimizer: 'out/checkpoint-2/optimizer.safetensors' };
const STATE = {
  version: 1, step: 2, epoch: 0, batchIndex: 4, config: DEFAULT_CONFIG, segments: ['a'], bestEvalLoss: null, bestStep: null,
  evalsWithoutImprovement: 0, history: [{ step: 1, epoch: 0, loss: 2, lr: 1e-4, gradNorm: 1, tokensPerSecond: 10, ms: 5, memBytes: 1, peakBytes: 1 }], run: null,
};
const f32 = (...xs: number[]) => ({ dtype: 'F32' as const, shape: [xs.length], data: Float32Array.from(xs) });
const optimizer = (over: Record<string, ReturnType<typeof f32> | { dtype: 'F16'; shape: number[]; data: Uint16Array }> = {}) =>
  writeSafetensors({ params: f32(0.1, 0.2), m: f32(0, 0.01), v: f32(0, 1e-4), ...over });
const read = (state: object, opt = optimizer()) => parseStoredCheckpoint(JSON.stringify(state), opt, PATHS);

describe('reading a training checkpoint back', () => {
  it('reads what the trainer wrote', async () => {
    const { checkpoint } = await read(STATE);
    expect(checkpoint.step).toBe(2);
    expect(Array.from(checkpoint.v)).toEqual([0, Math.fround(1e-4)]);
  });

  it('refuses damaged optimizer state, naming the tensor and the element', async () => {
    const cases: [Parameters<typeof optimizer>[0], string][] = [
      [{ m: f32(0, NaN) }, `${PATHS.optimizer}: "m"[1] is NaN, not finite (a damaged checkpoint)`],
      [{ v: f32(-1e-3, 0) }, `${PATHS.optimizer}: "v"[0] is -0.0010000000474974513, not a finite second moment ≥ 0 (a damaged checkpoint)`],
      [{ params: f32(Infinity, 0) }, `${PATHS.optimizer}: "params"[0] is Infinity, not finite (a damaged checkpoint)`],
      [{ v: f32(0) }, `${PATHS.optimizer}: "v" has 1 numbers but "params" has 2`],
      [{ best_params: f32(1, 2, 3) }, `${PATHS.optimizer}: "best_params" has 3 numbers but "params" has 2`],
      [{ m: { dtype: 'F16', shape: [2], data: new Uint16Array(2) } }, `${PATHS.optimizer}: "m" must be a flat F32 tensor, got F16 [2]`],
    ];
    for (const [over, message] of cases) {
      const err = await read(STATE, optimizer(over)).catch((e: Error) => e);
      expect(err, message).toBeInstanceOf(CheckpointError);
      expect((err as Error).message).toBe(message);
    }
  });

  it('refuses a trainer_state.json of the wrong shape, naming the field', async () => {
    const cases: [object, string][] = [
      [{ ...STATE, epoch: '0' }, '"epoch" must be a non-negative integer, got "0"'],
      [{ ...STATE, step: 2.5 }, '"step" must be a non-negative integer, got 2.5'],
      [{ ...STATE, bestEvalLoss: 'x' }, '"bestEvalLoss" must be a finite number or null, got "x"'],
      [{ ...STATE, segments: ['a', 3] }, '"segments" must be a list of names, got ["a",3]'],
      [{ ...STATE, history: [null] }, '"history[0]" must be an object, got null'],
      [{ ...STATE, history: [{ ...STATE.history[0], loss: null }] }, '"history[0].loss" must be a finite number, got null'],
      [{ ...STATE, config: 5 }, '"config" must be an object, got 5'],
      [{ ...STATE, config: { ...DEFAULT_CONFIG, rank: 0 } }, '"config" is not a valid training configuration: rank = 0'],
    ];
    for (const [state, message] of cases) {
      const err = await read(state).catch((e: Error) => e);
      expect(err, message).toBeInstanceOf(CheckpointError);
      expect((err as Error).message.startsWith(`${PATHS.state}: ${message}`), (err as Error).message).toBe(true);
    }
    const notJson = await parseStoredCheckpoint('{"version": 1,', optimizer(), PATHS).catch((e: Error) => e);
    expect((notJson as Error).message).toMatch(/^out\/checkpoint-2\/trainer_state\.json: not valid JSON/);
  });

  it('refuses a damaged checkpoint in IndexedDB, naming the run and the step', async () => {
    const map = new Map<string, unknown>();
    const kv: KeyValue = {
      get: async <T>(k: string) => map.get(k) as T, getMany: async <T>(ks: string[]) => ks.map((k) => map.get(k) as T),
      set: async (k, v) => void map.set(k, v), del: async (k) => void map.delete(k),
      update: async <T>(k: string, fn: (o: T | undefined) => T) => void map.set(k, fn(map.get(k) as T)), keys: async () => [...map.keys()],
    };
    map.set('run:r', { id: 'r', name: 'pirate r4', checkpoint: { key: 'ckpt:r:2:x', step: 2, bytes: 1 } } as Partial<RunRecord>);
    map.set('ckpt:r:2:x', { ...STATE, params: Float32Array.of(1, 2), m: Float32Array.of(0, 0), v: Float32Array.of(0, NaN), bestParams: null });
    const db = new RunsDb(kv, { estimate: async () => null });
    await expect(db.loadCheckpoint('r')).rejects.toThrow('the checkpoint of run "pirate r4" (step 2) in this browser\'s storage: "v"[1] is NaN, not a finite second moment ≥ 0 (a damaged checkpoint)');
    map.delete('ckpt:r:2:x');
    await expect(db.loadCheckpoint('r')).rejects.toThrow('the checkpoint of run "pirate r4" (step 2) in this browser\'s storage: missing (the storage lost it, or another tab deleted it)');
  });
});
