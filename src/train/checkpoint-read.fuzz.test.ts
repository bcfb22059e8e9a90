// Fuzzing the training-checkpoint reader (issue 14): a CLI checkpoint's trainer_state.json and optimizer.safetensors
// with fields removed or given hostile values and bytes flipped, cut and inserted, and checkpoints in the studio's
// IndexedDB with hostile fields. Each reads back within the contract (arrays of one length, finite, v ≥ 0, a valid
// config, counts that are integers) or ends in a CheckpointError naming the file or the run — never another
// exception, never a checkpoint the trainer would choke on. Seeds and case counts: src/model/testing-fuzz.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { writeSafetensors } from '../model/safetensors.ts';
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TEST_TIMEOUT, fuzzBanner, fuzzParams } from '../model/testing-fuzz.ts';
import { RunsDb, type RunRecord } from '../store/runs-db.ts';
import { CheckpointError, parseStoredCheckpoint } from './checkpoint-read.ts';
import { DEFAULT_CONFIG, validateConfig } from './config.ts';
import type { TrainerCheckpoint } from './trainer.ts';
import { MemoryKeyValue } from '../store/testing-kv.ts';

const N = 24;
const floats = (seed: number) => Float32Array.from({ length: N }, (_, i) => Math.sin(seed + i) * 0.1);
const metrics = (step: number) => ({ step, epoch: 0, loss: 2 - step / 10, lr: 2e-4, gradNorm: 0.5, tokensPerSecond: 900, ms: 12, memBytes: 1024, peakBytes: 2048, ...(step % 2 ? {} : { evalLoss: 2.1 }) });
const STATE = {
  version: 1, step: 3, epoch: 0, batchIndex: 6, config: DEFAULT_CONFIG, segments: ['layers.0.q_proj', 'layers.0.v_proj'],
  bestEvalLoss: 2.1, bestStep: 2, evalsWithoutImprovement: 0, history: [metrics(1), metrics(2), metrics(3)], run: { model: 'demo' },
};
const OPTIMIZER = writeSafetensors({
  params: { dtype: 'F32', shape: [N], data: floats(1) },
  m: { dtype: 'F32', shape: [N], data: floats(2) },
  v: { dtype: 'F32', shape: [N], data: floats(3).map(Math.abs) },
  best_params: { dtype: 'F32', shape: [N], data: floats(4) },
}, { format: 'lora-studio-optimizer' });
const PATHS = { state: 'out/checkpoint-3/trainer_state.json', optimizer: 'out/checkpoint-3/optimizer.safetensors' };

const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(-1, 0, 1, 0.5, 2 ** 53, 1e308, -0, '', '3', 'NaN', null, true, [], {}, [1, 'a'], { step: 1 }),
  fc.string({ maxLength: 6 }),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 3 }), fc.constant(null)), { maxLength: 3 }),
);
const FIELDS = ['version', 'step', 'epoch', 'batchIndex', 'config', 'segments', 'bestEvalLoss', 'bestStep', 'evalsWithoutImprovement', 'history',
  'config.rank', 'config.lr', 'config.targets', 'config.method', 'config.quant', 'history.0', 'history.1.loss', 'history.2.step', 'history.0.evalLoss', 'segments.1'];
const byteEdit = fc.record({ kind: fc.constantFrom('flip', 'cut', 'insert'), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });

function setPath(root: Record<string, unknown>, path: string, value: unknown, remove: boolean): void {
  const keys = path.split('.');
  let node = root as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) {
    if (typeof node[k] !== 'object' || node[k] === null) return;
    node = node[k] as Record<string, unknown>;
  }
  if (remove) delete node[keys.at(-1)!];
  else node[keys.at(-1)!] = value;
}

function mutate(bytes: Uint8Array, edits: { kind: string; at: number; value: number }[]): Uint8Array {
  let out = bytes.slice();
  for (const m of edits) {
    const at = m.at % Math.max(1, out.length);
    if (m.kind === 'flip') out[at] = m.value;
    else if (m.kind === 'cut') out = out.slice(0, at);
    else out = new Uint8Array([...out.subarray(0, at), m.value, ...out.subarray(at)]);
  }
  return out;
}

/** What a checkpoint that reads back must be: what the trainer's restore() takes as is. */
function expectUsable(ck: TrainerCheckpoint): void {
  for (const key of ['step', 'epoch', 'batchIndex', 'evalsWithoutImprovement'] as const) expect(Number.isSafeInteger(ck[key]) && ck[key] >= 0, key).toBe(true);
  expect(validateConfig(ck.config)).toEqual([]);
  expect(ck.segments.every((s) => typeof s === 'string')).toBe(true);
  for (const a of [ck.m, ck.v, ...(ck.bestParams ? [ck.bestParams] : [])]) expect(a.length).toBe(ck.params.length);
  for (const a of [ck.params, ck.m, ck.v]) expect(a.every(Number.isFinite)).toBe(true);
  expect(ck.v.every((x) => x >= 0)).toBe(true);
  for (const h of ck.history) {
    expect(Number.isSafeInteger(h.step) && h.step >= 1 && Number.isFinite(h.loss)).toBe(true);
    for (const v of Object.values(h)) expect(v === null || v === undefined || typeof v === 'number').toBe(true);
  }
}


describe(`training checkpoints, fuzzed (FUZZ_SEED=${FUZZ_SEED}, ${FUZZ_RUNS} cases each)`, () => {
  it('mutated trainer_state.json and optimizer.safetensors read back usable, or end in a CheckpointError naming the file', async () => {
    console.log(fuzzBanner('checkpoint files'));
    const valid = await parseStoredCheckpoint(JSON.stringify(STATE), OPTIMIZER, PATHS);
    expectUsable(valid.checkpoint);
    expect(valid.run).toEqual({ model: 'demo' });
    const fieldEdit = fc.record({ field: fc.constantFrom(...FIELDS), remove: fc.boolean(), value: hostile });
    await fc.assert(
      fc.asyncProperty(fc.array(fieldEdit, { maxLength: 3 }), fc.array(byteEdit, { maxLength: 2 }), fc.array(byteEdit, { maxLength: 4 }), async (fields, stateBytes, optBytes) => {
        const state = structuredClone(STATE) as Record<string, unknown>;
        for (const f of fields) setPath(state, f.field, f.value, f.remove);
        const stateText = new TextDecoder().decode(mutate(new TextEncoder().encode(JSON.stringify(state)), stateBytes));
        try {
          expectUsable((await parseStoredCheckpoint(stateText, mutate(OPTIMIZER, optBytes), PATHS)).checkpoint);
        } catch (e) {
          if (!(e instanceof CheckpointError)) throw new Error(`untyped failure: ${String(e)}`, { cause: e });
          expect(e.message.startsWith(`${PATHS.state}: `) || e.message.startsWith(`${PATHS.optimizer}: `), e.message).toBe(true);
        }
      }),
      fuzzParams(),
    );
  }, FUZZ_TEST_TIMEOUT);

  it('hostile checkpoints in IndexedDB are refused by loadCheckpoint naming the run and the field', async () => {
    const array = fc.oneof(
      fc.constant(floats(5)), fc.constant(new Float32Array(N - 1)), fc.constant(Float32Array.of(...floats(6).subarray(1), NaN)),
      fc.constant(new Float32Array(N).fill(-1)), fc.constant(new Float64Array(N)), fc.constant(Array.from(floats(7))), fc.constant(null), fc.constant(undefined),
    );
    const fieldEdit = fc.record({ field: fc.constantFrom(...FIELDS), remove: fc.boolean(), value: hostile });
    await fc.assert(
      fc.asyncProperty(fc.array(fieldEdit, { maxLength: 3 }), fc.record({ params: array, m: array, v: array, bestParams: array }), async (fields, arrays) => {
        const kv = new MemoryKeyValue();
        const db = new RunsDb(kv, { estimate: async () => null });
        const ck = { ...structuredClone(STATE), ...arrays } as Record<string, unknown>;
        for (const f of fields) setPath(ck, f.field, f.value, f.remove);
        kv.map.set('ckpt:r:3:x', ck);
        kv.map.set('run:r', { id: 'r', name: 'pirate r4', checkpoint: { key: 'ckpt:r:3:x', step: 3, bytes: 1 } } as Partial<RunRecord>);
        try {
          const loaded = await db.loadCheckpoint('r');
          expect(loaded).not.toBeNull();
          expectUsable(loaded!);
        } catch (e) {
          if (!(e instanceof CheckpointError)) throw new Error(`untyped failure: ${String(e)}`, { cause: e });
          expect(e.message).toMatch(/^the checkpoint of run "pirate r4" \(step 3\) in this browser's storage: (not a lora-studio|"\w+(\[\d+\])?(\.\w+)?")/);
        }
      }),
      fuzzParams(),
    );
  }, FUZZ_TEST_TIMEOUT);
});
