import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../train/config.ts';
import type { TrainerCheckpoint } from '../train/trainer.ts';
import type { StepMetrics } from '../train/protocol.ts';
import { metricsCsv, RunsDb, StorageFullError, type KeyValue, type RunRecord, type StorageInfo } from './runs-db.ts';

/** A Map behind the KeyValue interface, with a switch to make the next write fail as a full disk or a crash. */
class MemoryKv implements KeyValue {
  readonly map = new Map<string, unknown>();
  failNextSet: 'quota' | 'crash' | null = null;
  failUpdates = false;
  async get<T>(k: string) {
    return structuredClone(this.map.get(k)) as T | undefined;
  }
  async getMany<T>(ks: string[]) {
    return ks.map((k) => structuredClone(this.map.get(k)) as T | undefined);
  }
  async set(k: string, v: unknown) {
    const fail = this.failNextSet;
    this.failNextSet = null;
    if (fail === 'quota') throw new DOMException('quota', 'QuotaExceededError');
    if (fail === 'crash') throw new Error('tab closed mid-write');
    this.map.set(k, structuredClone(v));
  }
  async del(k: string) {
    this.map.delete(k);
  }
  async update<T>(k: string, fn: (old: T | undefined) => T) {
    if (this.failUpdates) throw new Error('crash before the pointer switch');
    const next = fn(structuredClone(this.map.get(k)) as T | undefined);
    this.map.set(k, structuredClone(next));
  }
  async keys() {
    return [...this.map.keys()];
  }
}

const roomy: StorageInfo = { estimate: async () => ({ usage: 1e6, quota: 1e9 }) };

function record(id: string, created = 1): RunRecord {
  return {
    id, name: `run ${id}`, created, updated: created,
    model: { name: 'demo-llama', modelType: 'llama', quant: 'none', dtype: 'f32', parameters: 1000 },
    dataset: { fileName: 'a.jsonl', rows: 10, format: 'text', evalRows: 0 },
    config: DEFAULT_CONFIG, status: 'running', message: '', totalSteps: 10, trainableParams: 64,
    curves: [], samples: [], final: null, checkpoint: null, adapter: null,
  };
}

function checkpoint(step: number, fill = step): TrainerCheckpoint {
  const arr = () => new Float32Array(16).fill(fill);
  return {
    version: 1, step, epoch: 0, batchIndex: step, config: DEFAULT_CONFIG, segments: ['a', 'b'],
    params: arr(), m: arr(), v: arr(), bestEvalLoss: null, bestStep: null, bestParams: null,
    evalsWithoutImprovement: 0, history: [],
  };
}

describe('runs db', () => {
  it('lists newest first, renames, deletes with every blob of the run', async () => {
    const kv = new MemoryKv();
    const db = new RunsDb(kv, roomy);
    await db.create(record('a', 1));
    await db.create(record('b', 2));
    expect((await db.list()).map((r) => r.id)).toEqual(['b', 'a']);
    await db.rename('a', '  my run  ');
    expect((await db.get('a'))?.name).toBe('my run');
    await expect(db.rename('a', '   ')).rejects.toThrow(/needs a name/);
    await db.saveCheckpoint('a', checkpoint(5));
    await db.saveAdapter('a', { 'adapter_config.json': new Uint8Array(3), 'adapter_model.safetensors': new Uint8Array(9) }, 5);
    kv.map.set('ckpt:a:9:orphan', 1);
    await db.delete('a');
    expect([...kv.map.keys()]).toEqual(['run:b']);
  });

  it('switches the checkpoint pointer after the new blob is written, then drops the old one', async () => {
    const kv = new MemoryKv();
    const db = new RunsDb(kv, roomy);
    await db.create(record('r'));
    const first = await db.saveCheckpoint('r', checkpoint(10), { curves: [{ step: 10 } as StepMetrics] });
    expect((await db.get('r'))?.checkpoint).toEqual(first);
    expect((await db.get('r'))?.curves).toHaveLength(1);
    const second = await db.saveCheckpoint('r', checkpoint(20));
    expect(second.key).not.toBe(first.key);
    expect(kv.map.has(first.key)).toBe(false);
    expect((await db.loadCheckpoint('r'))?.step).toBe(20);
    expect(second.bytes).toBeGreaterThanOrEqual(3 * 64);
  });

  it('keeps the last good checkpoint when a write dies half way', async () => {
    const kv = new MemoryKv();
    const db = new RunsDb(kv, roomy);
    await db.create(record('r'));
    await db.saveCheckpoint('r', checkpoint(10));
    // The blob write fails: the pointer still names step 10.
    kv.failNextSet = 'crash';
    await expect(db.saveCheckpoint('r', checkpoint(20))).rejects.toThrow(/mid-write/);
    expect((await db.loadCheckpoint('r'))?.step).toBe(10);
    // The blob is written but the pointer switch dies: still step 10, and no orphan is left behind.
    kv.failUpdates = true;
    await expect(db.saveCheckpoint('r', checkpoint(30))).rejects.toThrow(/pointer switch/);
    kv.failUpdates = false;
    expect((await db.loadCheckpoint('r'))?.step).toBe(10);
    expect([...kv.map.keys()].filter((k) => k.startsWith('ckpt:'))).toHaveLength(1);
    // An orphan from a crash of the whole tab is collected.
    kv.map.set('ckpt:r:40:zzz', checkpoint(40));
    expect(await db.collectGarbage()).toEqual(['ckpt:r:40:zzz']);
    expect((await db.loadCheckpoint('r'))?.step).toBe(10);
  });

  it('says clearly when the quota is exceeded, before and during a write', async () => {
    const kv = new MemoryKv();
    const tight: StorageInfo = { estimate: async () => ({ usage: 1000, quota: 1100 }) };
    const db = new RunsDb(kv, tight);
    await db.create(record('r'));
    const err = await db.saveCheckpoint('r', checkpoint(1)).catch((e) => e);
    expect(err).toBeInstanceOf(StorageFullError);
    expect(err.message).toMatch(/checkpoint of step 1 needs .* free; delete old runs/);
    const roomyDb = new RunsDb(kv, roomy);
    await roomyDb.saveCheckpoint('r', checkpoint(1));
    kv.failNextSet = 'quota';
    const full = await roomyDb.saveCheckpoint('r', checkpoint(2)).catch((e) => e);
    expect(full).toBeInstanceOf(StorageFullError);
    expect(full.message).toMatch(/storage is full .*checkpoint of step 2 was not saved/);
    expect((await roomyDb.loadCheckpoint('r'))?.step).toBe(1);
  });

  it('refuses to patch a run deleted meanwhile, without recreating it', async () => {
    const kv = new MemoryKv();
    const db = new RunsDb(kv, roomy);
    await expect(db.patch('gone', { status: 'stopped' })).rejects.toThrow(/does not exist/);
    expect(kv.map.size).toBe(0);
    await expect(db.saveCheckpoint('gone', checkpoint(3))).rejects.toThrow(/does not exist/);
    expect(kv.map.size).toBe(0);
  });
});

describe('metrics csv', () => {
  it('writes one row per step with an empty eval cell where there was no evaluation', () => {
    const m = (step: number, evalLoss?: number): StepMetrics => ({
      step, epoch: step / 4, loss: 2.5 - step * 0.1, lr: 2e-4, gradNorm: 0.75, tokensPerSecond: 1200, ms: 12.5,
      memBytes: 1024, peakBytes: 2048, ...(evalLoss === undefined ? {} : { evalLoss }),
    });
    const csv = metricsCsv([m(1), m(2, 2.25)]);
    expect(csv.split('\n')).toEqual([
      'step,epoch,loss,eval_loss,lr,grad_norm,tokens_per_s,ms,mem_bytes,peak_bytes',
      '1,0.25,2.4,,0.0002,0.75,1200,12.5,1024,2048',
      '2,0.5,2.3,2.25,0.0002,0.75,1200,12.5,1024,2048',
      '',
    ]);
  });
});
