// Saved runs: the list read from IndexedDB (runs-db.ts), the storage used against the browser's quota, which runs
// another tab holds (Web Locks), and the actions of the Runs screen: rename, delete, download, CSV. The worker writes
// the records while it trains; this slice re-reads them when a run changes state.
import type { StateCreator } from 'zustand';
import type { EngineEvent } from '../../train/protocol.ts';
import { zipAdapter } from '../../train/peft.ts';
import { adapterFileName, metricsFileName } from '../../train/worker/training-names.ts';
import { saveFile } from '../downloads.ts';
import { idbKeyValue, lockedRunIds, metricsCsv, RunsDb, type RunRecord } from '../runs-db.ts';
import { isActive, type TrainSlice } from './train.ts';

export interface RunsSlice {
  runs: RunRecord[];
  runsLoaded: boolean;
  runsError: string;
  storage: { usage: number; quota: number } | null;
  /** Runs some tab (this one included) holds the lock of. */
  lockedRuns: string[];
  refreshRuns(): Promise<void>;
  renameRun(id: string, name: string): Promise<void>;
  deleteRun(id: string): Promise<void>;
  downloadRun(id: string, as: 'zip' | 'safetensors'): Promise<void>;
  exportRunCsv(id: string): Promise<void>;
  onRunsEvent(event: EngineEvent): void;
}

let db: RunsDb | null = null;
/** Tests link a RunsDb over a Map; the page uses IndexedDB. */
export function linkRunsDb(runs: RunsDb | null): void {
  db = runs;
}
function runsDb(): RunsDb {
  db ??= new RunsDb(idbKeyValue());
  return db;
}

/** What the list shows: a 'running' record nobody holds the lock of belongs to a closed tab. */
export function shownStatus(r: RunRecord, locked: readonly string[]): RunRecord['status'] | 'interrupted' {
  return (r.status === 'running' || r.status === 'paused') && !locked.includes(r.id) ? (r.status === 'running' ? 'interrupted' : 'paused') : r.status;
}

export const createRunsSlice: StateCreator<RunsSlice & Pick<TrainSlice, 'liveRun'>, [], [], RunsSlice> = (set, get) => {
  const guard = async (work: () => Promise<void>) => {
    try {
      await work();
      set({ runsError: '' });
    } catch (err) {
      set({ runsError: err instanceof Error ? err.message : String(err) });
    }
  };
  const record = (id: string) => {
    const r = get().runs.find((x) => x.id === id);
    if (!r) throw new Error(`run ${id} is not in the list any more`);
    return r;
  };
  let refreshing: Promise<void> | null = null;
  return {
    runs: [],
    runsLoaded: false,
    runsError: '',
    storage: null,
    lockedRuns: [],

    refreshRuns() {
      refreshing ??= guard(async () => {
        const [runs, storage, locked] = await Promise.all([
          runsDb().list(),
          runsDb().usage().catch(() => null),
          lockedRunIds().catch(() => new Set<string>()),
        ]);
        set({ runs, storage, lockedRuns: [...locked], runsLoaded: true });
      }).finally(() => (refreshing = null));
      return refreshing;
    },

    renameRun(id, name) {
      return guard(async () => {
        const updated = await runsDb().rename(id, name);
        set({ runs: get().runs.map((r) => (r.id === id ? updated : r)) });
      });
    },

    deleteRun(id) {
      return guard(async () => {
        const live = get().liveRun;
        if (live && live.runId === id && isActive(live.phase)) throw new Error('this run is training in this tab: stop it before deleting it');
        const locked = await lockedRunIds().catch(() => new Set<string>());
        if (locked.has(id)) throw new Error('this run is training in another tab: stop it there before deleting it');
        await runsDb().delete(id);
        set({ runs: get().runs.filter((r) => r.id !== id), storage: await runsDb().usage().catch(() => get().storage) });
      });
    },

    downloadRun(id, as) {
      return guard(async () => {
        const r = record(id);
        const files = await runsDb().loadAdapter(id);
        if (!files) throw new Error(`"${r.name}" has no saved adapter: ${r.status === 'failed' ? 'it failed before saving one' : 'it has not stopped or finished yet'}`);
        if (as === 'zip') saveFile(zipAdapter(files), adapterFileName(r.name, 'zip'), 'application/zip');
        else saveFile(files['adapter_model.safetensors'], adapterFileName(r.name, 'safetensors'), 'application/octet-stream');
      });
    },

    exportRunCsv(id) {
      return guard(async () => {
        const r = (await runsDb().get(id)) ?? record(id);
        saveFile(metricsCsv(r.curves), metricsFileName(r.name), 'text/csv');
      });
    },

    onRunsEvent(event) {
      if (event.type === 'run-state') void get().refreshRuns();
    },
  };
};
