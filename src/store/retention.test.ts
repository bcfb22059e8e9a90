// The checkpoint-retention policy under a fake quota (issue 14 part 4): a key-value store that counts the bytes it
// holds and fails a write past its quota with the browser's QuotaExceededError, as IndexedDB does. In `chrome` mode a
// put is approved by its own size against what is free, as Chrome's IndexedDB does (BucketContext::CheckCanUseDiskSpace
// gets the transaction's put sizes, never what they replace or what it deletes): once usage has passed the quota
// every put is refused, however small, and only a delete makes room.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../train/config.ts';
import type { TrainerCheckpoint } from '../train/trainer.ts';
import { CHECKPOINTS_PER_RUN, prunableCheckpoints, prunedNotice } from './retention.ts';
import { checkpointBytes, RunsDb, StorageFullError, type KeyValue, type RunRecord, type RunStatus, type StorageInfo } from './runs-db.ts';

const sizeOf = (v: unknown): number =>
  v && typeof v === 'object' && 'params' in v ? checkpointBytes(v as TrainerCheckpoint)
  : v && typeof v === 'object' && 'adapter_model.safetensors' in v ? 4096
  : JSON.stringify(v).length;

/** IndexedDB with a quota: usage is the bytes held; a write that would pass the quota (`chrome`: a put bigger than
 *  what is free) throws and changes nothing. */
class QuotaKv implements KeyValue, StorageInfo {
  readonly map = new Map<string, unknown>();
  constructor(public quota: number, private readonly reportsEstimate = true, private readonly chrome = false) {}
  usage(): number {
    let n = 0;
    for (const v of this.map.values()) n += sizeOf(v);
    return n;
  }
  async estimate() {
    return this.reportsEstimate ? { usage: this.usage(), quota: this.quota } : null;
  }
  private put(k: string, v: unknown) {
    const next = this.usage() - (this.map.has(k) ? sizeOf(this.map.get(k)) : 0) + sizeOf(v);
    const refused = this.chrome ? sizeOf(v) > this.quota - this.usage() : next > this.quota;
    if (refused) throw new DOMException('quota exceeded', 'QuotaExceededError');
    this.map.set(k, structuredClone(v));
  }
  async get<T>(k: string) {
    return structuredClone(this.map.get(k)) as T | undefined;
  }
  async getMany<T>(ks: string[]) {
    return ks.map((k) => structuredClone(this.map.get(k)) as T | undefined);
  }
  async set(k: string, v: unknown) {
    this.put(k, v);
  }
  async del(k: string) {
    this.map.delete(k);
  }
  async update<T>(k: string, fn: (old: T | undefined) => T) {
    this.put(k, fn(structuredClone(this.map.get(k)) as T | undefined));
  }
  async keys() {
    return [...this.map.keys()];
  }
}

function record(id: string, status: RunStatus, updated: number): RunRecord {
  return {
    id, name: `run ${id}`, created: updated, updated,
    model: { name: 'demo-llama', modelType: 'llama', quant: 'none', dtype: 'f32', parameters: 1000 },
    dataset: { fileName: 'a.jsonl', rows: 10, format: 'text', evalRows: 0 },
    config: DEFAULT_CONFIG, status, message: '', totalSteps: 100, trainableParams: 256,
    curves: [], samples: [], final: null, checkpoint: null, adapter: null,
  };
}

/** 256 parameters: 3 KiB of params, m and v. */
function checkpoint(step: number): TrainerCheckpoint {
  const arr = () => new Float32Array(256).fill(step);
  return {
    version: 1, step, epoch: 0, batchIndex: step, config: DEFAULT_CONFIG, segments: ['a'],
    params: arr(), m: arr(), v: arr(), bestEvalLoss: null, bestStep: null, bestParams: null,
    evalsWithoutImprovement: 0, history: [],
  };
}
const CK = checkpointBytes(checkpoint(1));
const adapter = { 'adapter_config.json': new Uint8Array(2), 'adapter_model.safetensors': new Uint8Array(8) };

/** Finished runs f1 (oldest), f2 with adapters; f3 finished without its adapter; paused p, stopped s, failed x; the
 *  running run w, which saved step 10 and is about to save step 20. */
async function studio(kv: QuotaKv): Promise<RunsDb> {
  const db = new RunsDb(kv, kv);
  const runs: [string, RunStatus, boolean][] = [['f1', 'finished', true], ['f2', 'finished', true], ['f3', 'finished', false], ['p', 'paused', false], ['s', 'stopped', true], ['x', 'failed', false], ['w', 'running', false]];
  for (const [i, [id, status, withAdapter]] of runs.entries()) {
    await db.create(record(id, 'running', i + 1));
    await db.saveCheckpoint(id, checkpoint(id === 'w' ? 10 : 5));
    if (withAdapter) await db.saveAdapter(id, adapter, 5);
    await db.patch(id, { status });
    kv.map.set(`run:${id}`, { ...(kv.map.get(`run:${id}`) as RunRecord), updated: i + 1 });
  }
  return db;
}

/** Every pointer names a blob that is there, and no checkpoint blob is left without a pointer. */
async function consistent(kv: QuotaKv, db: RunsDb): Promise<void> {
  const runs = await db.list();
  for (const r of runs) if (r.checkpoint) expect((await db.loadCheckpoint(r.id))?.step, r.id).toBe(r.checkpoint.step);
  const live = new Set(runs.map((r) => r.checkpoint?.key));
  expect([...kv.map.keys()].filter((k) => k.startsWith('ckpt:') && !live.has(k))).toEqual([]);
}

describe('checkpoint retention', () => {
  it(`keeps ${CHECKPOINTS_PER_RUN} checkpoint per run, and prunes finished runs' checkpoints, oldest first, when the quota is full`, async () => {
    const kv = new QuotaKv(1e9);
    const db = await studio(kv);
    expect(prunableCheckpoints(await db.list(), 'w').map((c) => c.runId)).toEqual(['f1', 'f2']);
    await db.saveCheckpoint('w', checkpoint(15));
    expect([...kv.map.keys()].filter((k) => k.startsWith('ckpt:w:'))).toHaveLength(CHECKPOINTS_PER_RUN);

    // Room for half a checkpoint more: one pruned checkpoint (the oldest finished run's) is enough.
    kv.quota = kv.usage() + CK / 2;
    let pruned: string[] = [];
    let notice = '';
    await db.saveCheckpoint('w', checkpoint(20), {}, (p) => {
      pruned = p.map((c) => c.runId);
      notice = prunedNotice(p, 20);
    });
    expect(pruned).toEqual(['f1']);
    // What the run shows while it goes on (training.ts posts it).
    expect(notice).toBe('The browser\'s storage was full: to save the checkpoint of step 20, the retention policy pruned the checkpoint of finished run "run f1" (step 5, 3.0 KiB) (its adapter is kept). Delete runs you no longer need on the Runs screen to make room.');
    expect((await db.loadCheckpoint('w'))?.step).toBe(20);
    const f1 = (await db.get('f1'))!;
    expect(f1.checkpoint).toBeNull();
    expect(f1.adapter).not.toBeNull();
    expect(await db.loadAdapter('f1')).not.toBeNull();
    expect(f1.message).toMatch(/^Its checkpoint \(step 5\) was pruned on \d{4}-\d\d-\d\d \d\d:\d\d UTC when storage was full, to save run "run w"; the adapter is kept\.$/);
    for (const id of ['f2', 'f3', 'p', 's', 'x']) expect((await db.get(id))?.checkpoint?.step, id).toBe(5);
    await consistent(kv, db);
  });

  it('refuses, naming what was pruned and what the user could delete, and leaves the run at its last checkpoint', async () => {
    const kv = new QuotaKv(1e9);
    const db = await studio(kv);
    // Two prunable checkpoints free 2 CK: a checkpoint twice as big still does not fit.
    kv.quota = kv.usage() + 10;
    const big = { ...checkpoint(20), params: new Float32Array(1024), m: new Float32Array(1024), v: new Float32Array(1024) };
    const err = await db.saveCheckpoint('w', big).catch((e) => e);
    expect(err).toBeInstanceOf(StorageFullError);
    expect(err.message).toMatch(/^the browser's storage is full \(.* used\): the checkpoint of step 20 was not saved for run "run w"; /);
    expect(err.message).toContain('; pruned by the retention policy: the checkpoint of finished run "run f1" (step 5, 3.0 KiB), the checkpoint of finished run "run f2" (step 5, 3.0 KiB), still not enough room; ');
    expect(err.message).toMatch(/; checkpoints kept because their runs can still resume: the checkpoint of "run (f3|p|s|x)" .*\. Delete the runs you no longer need on the Runs screen$/);
    for (const id of ['f3', 'p', 's', 'x']) expect(err.message).toContain(`"run ${id}" (step 5`);
    // Nothing half-written: w still resumes from step 10; its record is whole.
    expect((await db.get('w'))?.checkpoint?.step).toBe(10);
    expect((await db.loadCheckpoint('w'))?.step).toBe(10);
    await consistent(kv, db);
    // Nothing left to prune: the same refusal without a pruned part, and nothing more deleted.
    const again = await db.saveCheckpoint('w', big).catch((e) => e);
    expect(again).toBeInstanceOf(StorageFullError);
    expect(again.message).not.toContain('pruned');
    expect(again.message).toMatch(/^saving the checkpoint of step 20 needs 12\.\d KiB but only .* free for run "run w"; checkpoints kept/);
    expect((await db.list()).filter((r) => r.checkpoint).map((r) => r.id).sort()).toEqual(['f3', 'p', 's', 'w', 'x']);
  });

  it("prunes on the write's own quota error when the browser gives no estimate", async () => {
    const kv = new QuotaKv(1e9, false);
    const db = await studio(kv);
    kv.quota = kv.usage() + CK / 2;
    let pruned: string[] = [];
    await db.saveCheckpoint('w', checkpoint(20), {}, (p) => (pruned = p.map((c) => c.runId)));
    // Without an estimate there is no shortfall to stop at: every prunable checkpoint goes.
    expect(pruned).toEqual(['f1', 'f2']);
    expect((await db.loadCheckpoint('w'))?.step).toBe(20);
    await consistent(kv, db);
  });

  it('prunes when usage has already passed the quota, where every put is refused until something is deleted (Chrome)', async () => {
    // How usage passes the quota in Chrome: IndexedDB approves writes from a cached grant ("quota − usage" when it
    // last asked, for up to 30 s), so writes approved just before the quota shrank land past it. Before, pruning
    // cleared the finished run's pointer first, a put that was refused too: nothing was pruned and the run paused.
    for (const reportsEstimate of [true, false]) {
      const kv = new QuotaKv(1e9, reportsEstimate, true);
      const db = await studio(kv);
      kv.quota = kv.usage() - 100;
      await expect(kv.set('probe', { small: true }), 'a small put past the quota').rejects.toThrow('quota exceeded');
      let pruned: string[] = [];
      await db.saveCheckpoint('w', checkpoint(20), {}, (p) => (pruned = p.map((c) => c.runId)));
      // 100 bytes past the quota and a checkpoint to write: one pruned checkpoint is not enough, two are.
      expect(pruned).toEqual(['f1', 'f2']);
      expect((await db.loadCheckpoint('w'))?.step).toBe(20);
      for (const id of ['f1', 'f2']) {
        const r = (await db.get(id))!;
        expect(r.checkpoint, id).toBeNull();
        expect(r.message, id).toMatch(/^Its checkpoint \(step 5\) was pruned on .* UTC when storage was full, to save run "run w"; the adapter is kept\.$/);
        expect(await db.loadAdapter(id), id).not.toBeNull();
      }
      for (const id of ['f3', 'p', 's', 'x']) expect((await db.get(id))?.checkpoint?.step, id).toBe(5);
      await consistent(kv, db);
      expect(kv.usage()).toBeLessThanOrEqual(kv.quota);
    }
  });

  it('far past the quota: the prunable blobs are freed, the written run and every adapter kept; a pointer left naming a freed blob is cleared by the next pruning (Chrome)', async () => {
    const kv = new QuotaKv(1e9, true, true);
    const db = await studio(kv);
    // Past the quota by more than both prunable checkpoints: even their records cannot be written after they go.
    kv.quota = kv.usage() - 3 * CK;
    const err = await db.saveCheckpoint('w', checkpoint(20)).catch((e) => e);
    expect(err).toBeInstanceOf(StorageFullError);
    expect(err.message).toContain('; pruned by the retention policy: the checkpoint of finished run "run f1" (step 5, 3.0 KiB), the checkpoint of finished run "run f2" (step 5, 3.0 KiB), still not enough room; ');
    expect((await db.loadCheckpoint('w'))?.step).toBe(10);
    for (const id of ['f3', 'p', 's', 'x']) expect((await db.loadCheckpoint(id))?.step, id).toBe(5);
    for (const id of ['f1', 'f2', 's']) expect(await db.loadAdapter(id), id).not.toBeNull();
    // f1's and f2's blobs are gone, their records (finished runs: nothing resumes from them) still name them.
    expect([...kv.map.keys()].filter((k) => k.startsWith('ckpt:f'))).toEqual([expect.stringMatching(/^ckpt:f3:/)]);
    expect((await db.get('f1'))?.checkpoint).not.toBeNull();
    // The user deletes a run; the next time storage is full (a byte short of the checkpoint), the pointers are
    // cleared first, with the note, and nothing more is pruned (nothing else may be).
    await db.delete('x');
    kv.quota = kv.usage() + CK - 1;
    const again = await db.saveCheckpoint('w', checkpoint(20)).catch((e) => e);
    expect(again).toBeInstanceOf(StorageFullError);
    expect(again.message).not.toContain('pruned');
    for (const id of ['f1', 'f2']) {
      const r = (await db.get(id))!;
      expect(r.checkpoint, id).toBeNull();
      expect(r.message, id).toMatch(/^Its checkpoint \(step 5\) was pruned on /);
    }
    await consistent(kv, db);
    kv.quota = 1e9;
    await db.saveCheckpoint('w', checkpoint(20));
    await consistent(kv, db);
  });

  it('prunes when the checkpoint fits but the pointer to it does not (Chrome)', async () => {
    // The blob's put is approved, then the run record's (the pointer, with the curves) finds too little left. Before,
    // the blob was taken back and the run paused without pruning anything.
    const kv = new QuotaKv(1e9, true, true);
    const db = await studio(kv);
    const recordBytes = JSON.stringify(kv.map.get('run:w')).length;
    kv.quota = kv.usage() + CK + recordBytes / 2;
    let pruned: string[] = [];
    await db.saveCheckpoint('w', checkpoint(20), {}, (p) => (pruned = p.map((c) => c.runId)));
    expect(pruned).toEqual(['f1']);
    expect((await db.loadCheckpoint('w'))?.step).toBe(20);
    await consistent(kv, db);
  });

  it('never leaves a half-written run at any quota, for checkpoints and adapters', async () => {
    // Chrome's puts (approved by their own size) from half a checkpoint past the quota; the net-size fake from 0.
    for (const [chrome, from] of [[false, 0], [true, -CK / 2]] as const) for (let extra = from; extra <= 4 * CK; extra += 97) {
      const kv = new QuotaKv(1e9, true, chrome);
      const db = await studio(kv);
      kv.quota = kv.usage() + extra;
      const start = kv.usage();
      const before = await db.list();
      const outcome = await db.saveCheckpoint('w', checkpoint(20)).then(() => 'saved', (e) => {
        expect(e, String(e)).toBeInstanceOf(StorageFullError);
        return 'refused';
      });
      const w = (await db.get('w'))!;
      expect(w.checkpoint?.step).toBe(outcome === 'saved' ? 20 : 10);
      await db.saveAdapter('w', adapter, 20).catch((e) => expect(e).toBeInstanceOf(StorageFullError));
      await consistent(kv, db);
      // Only finished runs with adapters ever lose a checkpoint, and never an adapter.
      for (const r of before) {
        const now = (await db.get(r.id))!;
        if (r.id !== 'w') expect(now.adapter?.key, r.id).toBe(r.adapter?.key);
        if (!now.checkpoint && r.checkpoint) expect(['f1', 'f2'], r.id).toContain(r.id);
      }
      expect(kv.usage(), `${chrome ? 'chrome' : 'net'} ${extra}`).toBeLessThanOrEqual(Math.max(kv.quota, start));
    }
  });
});
