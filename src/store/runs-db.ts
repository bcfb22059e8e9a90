// Saved training runs in IndexedDB (idb-keyval), read and written by both the engine worker (which trains) and the
// page (which lists, renames, deletes and downloads). The storage is a plain key-value interface so the pointer logic
// is tested in Node with a Map.
//
//   run:<id>                  RunRecord: config, status, curves, samples, final numbers, pointers to the blobs below
//   ckpt:<id>:<step>:<nonce>  TrainerCheckpoint (adapter, AdamW moments, step, data position, history)
//   adapter:<id>:<nonce>      the exported PEFT files (adapter_config.json + adapter_model.safetensors)
//
// A blob is never overwritten in place: the new one is written under a new key, then the run's pointer is switched
// (one transaction), then the old key is deleted. A crash between any two of these leaves the last good blob
// reachable; at worst an orphan the next collectGarbage() removes. Which checkpoints are kept, and which are pruned
// when the storage is full: retention.ts.
import { createStore, del, get, getMany, keys, set, update, type UseStore } from 'idb-keyval';
import type { TrainConfig } from '../train/config.ts';
import { describeCheckpoints, formatBytes, keptCheckpoints, pickToPrune, prunableCheckpoints, prunedNote, type PruneCandidate } from './retention.ts';
import type { TrainerCheckpoint } from '../train/trainer.ts';
import { CheckpointError, checkTrainerCheckpoint } from '../train/checkpoint-read.ts';
import type { StepMetrics } from '../train/protocol.ts';

// ---------------------------------------------------------------------------------------------------------------
// Records

/** 'running' in a record nobody holds the lock of means the tab that ran it is gone: shown as interrupted.
 *  'imported': not trained here, a PEFT adapter imported from a file, a folder or the Hub (no curve, no checkpoint). */
export type RunStatus = 'running' | 'paused' | 'stopped' | 'finished' | 'failed' | 'imported';

export interface RunSample {
  step: number;
  prompt: string;
  text: string;
}

export interface RunFinal {
  steps: number;
  trainLoss: number | null;
  evalLoss: number | null;
  bestStep: number | null;
  /** Wall time spent training (pauses excluded). */
  seconds: number;
  tokensPerSecond: number;
  peakBytes: number;
  /** Which adapter was exported: the last one, or the best evaluated one (early stopping). */
  exported: 'current' | 'best';
}

export interface BlobPointer {
  key: string;
  step: number;
  bytes: number;
}

export interface RunRecord {
  id: string;
  name: string;
  created: number;
  updated: number;
  model: { name: string; modelType: string; quant: 'none' | 'nf4'; dtype: 'f32' | 'f16'; parameters: number };
  dataset: { fileName: string; rows: number; format: string | null; evalRows: number };
  config: TrainConfig;
  status: RunStatus;
  /** Why it stopped, failed or paused, in words; empty otherwise. */
  message: string;
  totalSteps: number;
  trainableParams: number;
  curves: StepMetrics[];
  samples: RunSample[];
  final: RunFinal | null;
  checkpoint: BlobPointer | null;
  adapter: BlobPointer | null;
  /** An imported adapter: where it came from ("org/repo on the Hub", a file or folder name). */
  importedFrom?: string;
  /** A run that continued another run's adapter: which one, and the step that adapter was saved at. */
  continuedFrom?: { runId: string; name: string; step: number };
}

export interface StoredAdapter {
  'adapter_config.json': Uint8Array;
  'adapter_model.safetensors': Uint8Array;
}

// ---------------------------------------------------------------------------------------------------------------
// Storage interfaces

export interface KeyValue {
  get<T>(key: string): Promise<T | undefined>;
  getMany<T>(keys: string[]): Promise<(T | undefined)[]>;
  set(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  /** Read-modify-write in one transaction. */
  update<T>(key: string, fn: (old: T | undefined) => T): Promise<void>;
  keys(): Promise<string[]>;
}

/** What navigator.storage reports; null when the browser does not say. */
export interface StorageInfo {
  estimate(): Promise<{ usage: number; quota: number } | null>;
}

export function idbKeyValue(dbName = 'lora-studio-runs'): KeyValue {
  let store: UseStore | null = null;
  const s = () => (store ??= createStore(dbName, 'kv'));
  return {
    get: (k) => get(k, s()),
    getMany: (ks) => getMany(ks, s()),
    set: (k, v) => set(k, v, s()),
    del: (k) => del(k, s()),
    update: (k, fn) => update(k, fn, s()),
    keys: async () => (await keys(s())).map(String),
  };
}

export const browserStorage: StorageInfo = {
  async estimate() {
    const storage = typeof navigator !== 'undefined' ? navigator.storage : undefined;
    if (!storage?.estimate) return null;
    const e = await storage.estimate();
    return e.quota ? { usage: e.usage ?? 0, quota: e.quota } : null;
  },
};

export class StorageFullError extends Error {
  override name = 'StorageFullError';
}

/** IndexedDB's quota failure, whichever way the browser spells it. */
export function isQuotaError(err: unknown): boolean {
  const name = (err as { name?: string } | null)?.name;
  return name === 'QuotaExceededError' || name === 'NS_ERROR_DOM_QUOTA_REACHED';
}

const mib = formatBytes;

// ---------------------------------------------------------------------------------------------------------------
// Sizes

/** Bytes a checkpoint takes (its Float32Arrays plus ~120 bytes per history step). */
export function checkpointBytes(ck: TrainerCheckpoint): number {
  return (ck.params.byteLength + ck.m.byteLength + ck.v.byteLength + (ck.bestParams?.byteLength ?? 0)) + ck.history.length * 120;
}

export function adapterBytes(a: StoredAdapter): number {
  return a['adapter_config.json'].byteLength + a['adapter_model.safetensors'].byteLength;
}

const runKey = (id: string) => `run:${id}`;

function nonce(): string {
  return Math.random().toString(36).slice(2, 10);
}

/** A new run id: sortable by time, unique across tabs. */
export function newRunId(now = Date.now()): string {
  return `${now.toString(36)}-${nonce()}`;
}

// ---------------------------------------------------------------------------------------------------------------
// The store

export class RunsDb {
  constructor(
    private readonly kv: KeyValue,
    private readonly storage: StorageInfo = browserStorage,
  ) {}

  async get(id: string): Promise<RunRecord | null> {
    return (await this.kv.get<RunRecord>(runKey(id))) ?? null;
  }

  /** Every run, newest first. */
  async list(): Promise<RunRecord[]> {
    const ids = (await this.kv.keys()).filter((k) => k.startsWith('run:'));
    const records = (await this.kv.getMany<RunRecord>(ids)).filter((r): r is RunRecord => !!r);
    return records.sort((a, b) => b.created - a.created);
  }

  async create(record: RunRecord): Promise<void> {
    await this.write(runKey(record.id), record, 'the new run');
  }

  /** Changes a run in one transaction; throws when it does not exist (deleted in another tab, say). */
  async patch(id: string, change: Partial<RunRecord> | ((r: RunRecord) => Partial<RunRecord>)): Promise<RunRecord> {
    let out: RunRecord | null = null;
    await this.guard('the run', () =>
      this.kv.update<RunRecord>(runKey(id), (old) => {
        // Throwing inside the transaction writes nothing (a put of undefined would create the key).
        if (!old) throw new Error(`run ${id} does not exist (deleted in another tab?)`);
        out = { ...old, ...(typeof change === 'function' ? change(old) : change), updated: Date.now() };
        return out;
      }),
    );
    return out!;
  }

  async rename(id: string, name: string): Promise<RunRecord> {
    const clean = name.trim();
    if (!clean) throw new Error('a run needs a name');
    return this.patch(id, { name: clean.slice(0, 200) });
  }

  /** Deletes a run with its checkpoint and adapter (and any orphan blob of it). */
  async delete(id: string): Promise<void> {
    await this.kv.del(runKey(id));
    const mine = (await this.kv.keys()).filter((k) => k.startsWith(`ckpt:${id}:`) || k.startsWith(`adapter:${id}:`));
    for (const k of mine) await this.kv.del(k);
  }

  /** `onPruned`: told which checkpoints were pruned to make room (retention.ts), when any were. */
  async saveCheckpoint(id: string, ck: TrainerCheckpoint, extra: Partial<RunRecord> = {}, onPruned?: (pruned: PruneCandidate[]) => void): Promise<BlobPointer> {
    return this.swap(id, 'checkpoint', `ckpt:${id}:${ck.step}:${nonce()}`, ck, { step: ck.step, bytes: checkpointBytes(ck) }, extra, onPruned);
  }

  /** The run's checkpoint, checked (checkpoint-read.ts): a damaged one is a CheckpointError naming the run, the
   *  step and the field or element, never a resume from garbage. */
  async loadCheckpoint(id: string): Promise<TrainerCheckpoint | null> {
    const r = await this.get(id);
    if (!r?.checkpoint) return null;
    const ck = await this.kv.get<unknown>(r.checkpoint.key);
    const where = `the checkpoint of run "${r.name}" (step ${r.checkpoint.step}) in this browser's storage`;
    if (ck === undefined) throw new CheckpointError(`${where}: missing (the storage lost it, or another tab deleted it)`);
    return checkTrainerCheckpoint(ck, where);
  }

  async saveAdapter(id: string, files: StoredAdapter, step: number, extra: Partial<RunRecord> = {}): Promise<BlobPointer> {
    return this.swap(id, 'adapter', `adapter:${id}:${nonce()}`, files, { step, bytes: adapterBytes(files) }, extra);
  }

  async loadAdapter(id: string): Promise<StoredAdapter | null> {
    const r = await this.get(id);
    if (!r?.adapter) return null;
    return (await this.kv.get<StoredAdapter>(r.adapter.key)) ?? null;
  }

  /** Removes blobs no run points to (left by a crash between writing one and switching the pointer). */
  async collectGarbage(keep: ReadonlySet<string> = new Set()): Promise<string[]> {
    const all = await this.kv.keys();
    const runs = await this.list();
    const live = new Set(runs.flatMap((r) => [r.checkpoint?.key, r.adapter?.key]).filter((k): k is string => !!k));
    const orphans = all.filter((k) => (k.startsWith('ckpt:') || k.startsWith('adapter:')) && !live.has(k) && !keep.has(k));
    for (const k of orphans) await this.kv.del(k);
    return orphans;
  }

  /** Bytes this origin uses against its quota (all of the origin's storage, as the browser counts it). */
  async usage(): Promise<{ usage: number; quota: number } | null> {
    return this.storage.estimate();
  }

  /** Refuses, with what to do, a write of `bytes` that would not fit the quota. */
  async ensureRoom(bytes: number, what: string): Promise<void> {
    const e = await this.storage.estimate().catch(() => null);
    if (!e) return;
    const free = e.quota - e.usage;
    if (bytes > free) {
      throw new StorageFullError(
        `saving ${what} needs ${mib(bytes)} but only ${mib(Math.max(0, free))} of this browser's ${mib(e.quota)} storage quota is free; ` +
          'delete old runs on the Runs screen (or free disk space) and try again',
      );
    }
  }

  /** Write-new, switch-pointer, delete-old (see the file header). When the storage is full, checkpoints are pruned
   *  by the retention policy (retention.ts) and the write is tried once more; the pointer switches only after a
   *  complete write, so a refusal leaves the run as it was. */
  private async swap(
    id: string,
    field: 'checkpoint' | 'adapter',
    key: string,
    value: unknown,
    meta: { step: number; bytes: number },
    extra: Partial<RunRecord>,
    onPruned?: (pruned: PruneCandidate[]) => void,
  ): Promise<BlobPointer> {
    const what = field === 'checkpoint' ? `the checkpoint of step ${meta.step}` : 'the adapter';
    const pointer: BlobPointer = { key, ...meta };
    let previous: string | undefined;
    // The blob, then the pointer to it. The pointer's put can be refused for room too (Chrome approves a put by its
    // own size, and a record carries the run's curves): then the blob goes again, and the attempt counts as refused.
    const attempt = async () => {
      await this.write(key, value, what);
      try {
        await this.guard(what, () =>
          this.kv.update<RunRecord>(runKey(id), (old) => {
            // Throwing inside the transaction writes nothing (a put of undefined would create the key).
            if (!old) throw new Error(`run ${id} does not exist (deleted in another tab?)`);
            previous = old[field]?.key;
            return { ...old, ...extra, [field]: pointer, updated: Date.now() };
          }),
        );
      } catch (err) {
        await this.kv.del(key).catch(() => {}); // the run is gone, or the pointer could not be written: no orphan
        throw err;
      }
    };
    let pruned: PruneCandidate[] = [];
    try {
      await this.ensureRoom(meta.bytes, what);
      await attempt();
    } catch (err) {
      if (!(err instanceof StorageFullError)) throw err;
      pruned = await this.pruneForRoom(id, meta.bytes);
      const runs = await this.list();
      const name = runs.find((r) => r.id === id)?.name ?? id;
      const kept = keptCheckpoints(runs, id);
      // No final period: the trainer adds what happens to the run.
      const prunedText = pruned.length ? `; pruned by the retention policy: ${describeCheckpoints(pruned, 'finished run ')}, still not enough room` : '';
      const keptText = kept.length
        ? `; checkpoints kept because their runs can still resume: ${describeCheckpoints(kept, '')}. Delete the runs you no longer need on the Runs screen`
        : '. Delete old runs on the Runs screen (or free disk space) and try again';
      const base = (e: StorageFullError) => `${e.message.replace(/; delete old runs on the Runs screen.*$/, '')} for run "${name}"`;
      if (pruned.length === 0 && kept.length === 0) throw err;
      if (pruned.length === 0) throw new StorageFullError(`${base(err)}${keptText}`);
      try {
        await attempt();
      } catch (again) {
        if (!(again instanceof StorageFullError)) throw again;
        throw new StorageFullError(`${base(again)}${prunedText}${keptText}`);
      }
    }
    if (previous && previous !== key) await this.kv.del(previous).catch(() => {}); // an orphan at worst
    if (pruned.length) onPruned?.(pruned);
    return pointer;
  }

  /** Deletes checkpoints the retention policy lets go, oldest first, until `bytes` would fit (by the estimate; all
   *  of them when the browser gives none). Each run's pointer is cleared (with a note on its card) before its blob
   *  goes, in one transaction that checks the pointer still names that blob: a crash leaves an orphan at worst.
   *
   *  Past the quota that order cannot work: Chrome approves a put by its own size against what is free (not by what
   *  it replaces), so when usage has passed the quota every put is refused, however small, while a delete needs no
   *  room. Usage passes the quota whenever the quota shrinks while IndexedDB still holds a space grant (it caches
   *  "quota − usage" for up to 30 s and approves writes from it). Then the blobs whose pointers could not be cleared
   *  are deleted first, and their pointers cleared in the room that freed. Only if even that is refused (usage
   *  past the quota by more than those blobs) does a finished run's pointer name a freed blob: nothing resumes from a
   *  finished run, its adapter is kept, and the next pruning clears the pointer before choosing what to prune. */
  private async pruneForRoom(writing: string, bytes: number): Promise<PruneCandidate[]> {
    const runs = await this.list();
    const writer = runs.find((r) => r.id === writing)?.name ?? writing;
    const e = await this.storage.estimate().catch(() => null);
    const shortfall = e ? Math.max(1, bytes - (e.quota - e.usage)) : null;
    const candidates = prunableCheckpoints(runs, writing);
    const held = new Set(await this.kv.keys());
    // Pointers an earlier pruning far past the quota left naming a freed blob: cleared now (they free nothing).
    for (const c of candidates.filter((c) => !held.has(c.key))) await this.clearPrunedPointer(c, writer);
    const chosen = pickToPrune(candidates.filter((c) => held.has(c.key)), shortfall);
    const done: PruneCandidate[] = [];
    const refused: PruneCandidate[] = [];
    for (const c of chosen) {
      const outcome = await this.clearPrunedPointer(c, writer);
      if (outcome === 'moved') continue;
      if (outcome === 'refused') {
        refused.push(c);
        continue;
      }
      await this.kv.del(c.key).catch(() => {}); // an orphan at worst, collected later
      done.push(c);
    }
    if (refused.length === 0) return done;
    // Over the quota: the blobs first (a delete needs no room), for those whose pointer still names them.
    const freed: PruneCandidate[] = [];
    for (const c of refused) {
      const r = await this.kv.get<RunRecord>(runKey(c.runId)).catch(() => undefined);
      if (r?.checkpoint?.key !== c.key) continue;
      await this.kv.del(c.key);
      freed.push(c);
    }
    for (const c of freed) {
      await this.clearPrunedPointer(c, writer);
      done.push(c);
    }
    return done;
  }

  /** Clears run `c.runId`'s checkpoint pointer if it still names `c`'s blob, with the pruned note on its card (without
   *  it when even that does not fit: the record shrinks then). 'moved': the pointer names another blob, or the run is
   *  gone; 'refused': no room for the record, with or without the note. */
  private async clearPrunedPointer(c: PruneCandidate, writer: string): Promise<'cleared' | 'moved' | 'refused'> {
    const note = prunedNote(c, writer, new Date());
    const moved = new Error('moved');
    for (const withNote of [true, false]) {
      try {
        await this.kv.update<RunRecord>(runKey(c.runId), (old) => {
          // Throwing inside the transaction writes nothing.
          if (!old || old.checkpoint?.key !== c.key) throw moved;
          const message = withNote ? (old.message ? `${old.message} ${note}` : note) : old.message;
          return { ...old, checkpoint: null, message, updated: Date.now() };
        });
        return 'cleared';
      } catch (err) {
        if (err === moved) return 'moved';
        if (!isQuotaError(err)) return 'moved'; // the record could not be read or written: leave this one be
      }
    }
    return 'refused';
  }

  private async write(key: string, value: unknown, what: string): Promise<void> {
    await this.guard(what, () => this.kv.set(key, value));
  }

  private async guard<T>(what: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (isQuotaError(err)) {
        const e = await this.storage.estimate().catch(() => null);
        const state = e ? ` (${mib(e.usage)} of ${mib(e.quota)} used)` : '';
        throw new StorageFullError(`the browser's storage is full${state}: ${what} was not saved; delete old runs on the Runs screen and try again`);
      }
      throw err;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// One tab per run (Web Locks)

export const runLockName = (id: string) => `lora-studio:run:${id}`;

/** Takes the run's lock if no other tab (or worker) holds it; returns its release, or null when it is held. */
export async function tryLockRun(id: string, locks: LockManager | undefined = globalThis.navigator?.locks): Promise<(() => void) | null> {
  if (!locks) return () => {}; // no Web Locks (very old browser): nothing to coordinate with
  return new Promise((resolve, reject) => {
    locks
      .request(runLockName(id), { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(null);
          return undefined;
        }
        // Held until the returned promise settles: until release() is called.
        return new Promise<void>((release) => resolve(() => release()));
      })
      .catch(reject);
  });
}

/** Ids of the runs whose lock some tab holds now. */
export async function lockedRunIds(locks: LockManager | undefined = globalThis.navigator?.locks): Promise<Set<string>> {
  if (!locks) return new Set();
  const snapshot = await locks.query();
  const prefix = runLockName('');
  return new Set((snapshot.held ?? []).map((l) => l.name ?? '').filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length)));
}

/** Asks the browser once per origin not to evict saved runs (a page-only API). */
export async function requestPersistenceOnce(flagStore: Pick<Storage, 'getItem' | 'setItem'> | undefined = globalThis.localStorage): Promise<boolean | null> {
  const storage = typeof navigator !== 'undefined' ? navigator.storage : undefined;
  if (!storage?.persist || !storage.persisted) return null;
  if (await storage.persisted()) return true;
  if (flagStore?.getItem('lora-studio:persist-asked')) return false;
  flagStore?.setItem('lora-studio:persist-asked', String(Date.now()));
  return storage.persist();
}

// ---------------------------------------------------------------------------------------------------------------
// CSV

const CSV_COLUMNS: [string, (m: StepMetrics) => number | undefined][] = [
  ['step', (m) => m.step],
  ['epoch', (m) => m.epoch],
  ['loss', (m) => m.loss],
  ['eval_loss', (m) => m.evalLoss],
  ['lr', (m) => m.lr],
  ['grad_norm', (m) => m.gradNorm],
  ['tokens_per_s', (m) => m.tokensPerSecond],
  ['ms', (m) => m.ms],
  ['mem_bytes', (m) => m.memBytes],
  ['peak_bytes', (m) => m.peakBytes],
];

/** One row per step, the CLI's metric names; an empty cell where a step has no eval loss. Full precision. */
export function metricsCsv(curves: readonly StepMetrics[]): string {
  const lines = [CSV_COLUMNS.map(([name]) => name).join(',')];
  for (const m of curves) {
    lines.push(CSV_COLUMNS.map(([, pick]) => {
      const v = pick(m);
      return v === undefined || v === null ? '' : String(v);
    }).join(','));
  }
  return `${lines.join('\n')}\n`;
}
