// Saved runs: the list read from IndexedDB (runs-db.ts), the storage used against the browser's quota, which runs
// another tab holds (Web Locks), and the actions of the Runs screen: rename, delete, download, CSV. The worker writes
// the records while it trains; this slice re-reads them when a run changes state.
import type { StateCreator } from 'zustand';
import type { TrainConfig } from '../../train/config.ts';
import type { AdapterSource, EngineEvent, EngineRequest, MergeTarget } from '../../train/protocol.ts';
import { ADAPTER_CONFIG_FILE, zipAdapter } from '../../train/peft.ts';
import { adapterFileName, metricsFileName } from '../../train/download-names.ts';
import { requestId, sendToEngine } from '../engine-link.ts';
import { saveBlob, saveFile } from '../downloads.ts';
import { idbKeyValue, lockedRunIds, metricsCsv, newRunId, RunsDb, type RunRecord } from '../runs-db.ts';
import type { ModelsSlice } from './models.ts';
import { isActive, type LiveRun, type TrainSlice } from './train.ts';

/** The adapter import of the Runs screen: one at a time. */
export interface ImportState {
  phase: 'idle' | 'importing' | 'done' | 'error';
  request: string | null;
  /** Bytes downloaded (Hub adapters). */
  done: number;
  total: number;
  /** What happened, in words (the worker's error as it is: every problem of the file). */
  message: string;
  warnings: string[];
}

/** A merge of one run's adapter into the base model. */
export interface MergeState {
  request: string;
  to: 'folder' | 'zip';
  phase: 'merging' | 'done' | 'error' | 'cancelled';
  done: number;
  total: number;
  message: string;
  /** The TRL + accelerate export (same plumbing, other files and words). */
  trl?: boolean;
}

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
  adapterImport: ImportState;
  /** Checks a PEFT adapter against the loaded model (in the worker) and saves it as an 'imported' run. */
  importAdapter(source: AdapterSource, name?: string): void;
  /** By run id. */
  merges: Record<string, MergeState>;
  /** The loaded base model with the run's adapter folded in: into a picked folder (streamed), or as one .zip. */
  /** `gguf`: model.gguf + an Ollama Modelfile of that type instead of a safetensors folder. `trl`: the run as a folder
   *  for TRL + accelerate (train.py, the rows, accelerate configs) instead of a model. */
  mergeRun(runId: string, dtype: 'f16' | 'f32', to: 'folder' | 'zip', gguf?: 'f32' | 'f16' | 'q8_0', trl?: boolean): Promise<void>;
  /** The Train screen's config over the loaded model and dataset as the TRL + accelerate folder, before training;
   *  its state is merges[TRAIN_EXPORT_KEY]. */
  exportTrainConfig(config: TrainConfig, name: string, datasetId: string | null, to: 'folder' | 'zip'): Promise<void>;
  cancelMerge(runId: string): void;
  onRunsEvent(event: EngineEvent): void;
}

/** merges[] key of the Train screen's "Export for a GPU cluster" (no run yet). */
export const TRAIN_EXPORT_KEY = 'train-screen';

/** Whether this browser can save into a folder the user picks (File System Access API: Chrome, Edge). */
export function canPickFolder(scope: object = globalThis): boolean {
  return typeof (scope as { showDirectoryPicker?: unknown }).showDirectoryPicker === 'function';
}

export const NO_FOLDER_PICKER =
  'This browser cannot save into a folder (no File System Access API) and cannot stream a multi-file download: use ' +
  '"Download .zip" for small models (up to 200 MiB), or merge on the command line: npx lora-studio merge --model MODEL_DIR --adapter ADAPTER_DIR --out MERGED_DIR';

/**
 * The adapter's files in a picked or dropped folder: the folder holding adapter_config.json (the shallowest one when
 * several do, e.g. a training output with checkpoint-N/ folders), only its own files — the worker gets names, not
 * paths. `path` is relative to the picked folder, or "picked/…" as webkitRelativePath gives it.
 */
export function adapterFolderFiles(picked: readonly { path: string; file: File }[], fallbackName = 'adapter folder'): { files: File[]; name: string } {
  const configs = picked.filter((p) => p.path === ADAPTER_CONFIG_FILE || p.path.endsWith(`/${ADAPTER_CONFIG_FILE}`));
  if (configs.length === 0) throw new Error(`no ${ADAPTER_CONFIG_FILE} in the folder: pick the folder PEFT saved the adapter into (adapter_config.json, adapter_model.safetensors)`);
  const depth = (p: string) => p.split('/').length;
  const config = configs.reduce((a, b) => (depth(b.path) < depth(a.path) ? b : a));
  const dir = config.path.slice(0, config.path.length - ADAPTER_CONFIG_FILE.length); // "" or "a/b/"
  const files = picked.filter((p) => p.path.startsWith(dir) && !p.path.slice(dir.length).includes('/')).map((p) => p.file);
  const name = dir.replace(/\/$/, '').split('/').at(-1) || fallbackName;
  return { files, name };
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

/**
 * Where a saved run is being trained: in this tab, in another tab, or nowhere. The worker reports a run's end before
 * it lets go of the run's lock, so the list read at that report still sees the lock: a lock on the run this tab last
 * trained whose record has ended is this tab's own, being released, not another tab's. (Its record says 'running' or
 * 'paused' again only once a tab resumes it.)
 */
export function runHolder(r: RunRecord, locked: readonly string[], live: Pick<LiveRun, 'runId' | 'phase'> | null): 'this-tab' | 'another-tab' | null {
  const mine = live?.runId === r.id;
  if (mine && isActive(live.phase)) return 'this-tab';
  if (!locked.includes(r.id)) return null;
  if (mine && r.status !== 'running' && r.status !== 'paused') return null;
  return 'another-tab';
}

const IDLE_IMPORT: ImportState = { phase: 'idle', request: null, done: 0, total: 0, message: '', warnings: [] };

type Deps = RunsSlice & Pick<TrainSlice, 'liveRun'> & Pick<ModelsSlice, 'model'>;

export const createRunsSlice: StateCreator<Deps, [], [], RunsSlice> = (set, get) => {
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
  const patchMerge = (runId: string, change: Partial<MergeState>) => {
    const m = get().merges[runId];
    if (m) set({ merges: { ...get().merges, [runId]: { ...m, ...change } } });
  };
  /** A merge or export into a picked folder (the picker first: it needs the user's gesture) or a .zip, tracked in
   *  merges[key]; `request` makes the engine request for the chosen target. */
  const beginWrite = async (key: string, to: 'folder' | 'zip', trl: boolean, request: (id: string, target: MergeTarget) => EngineRequest) => {
    if (get().merges[key]?.phase === 'merging') return;
    const id = requestId('merge');
    const start = (message = '') => set({ merges: { ...get().merges, [key]: { request: id, to, phase: message ? 'error' : 'merging', done: 0, total: 0, message, ...(trl ? { trl } : {}) } } });
    let target: MergeTarget = { kind: 'zip' };
    if (to === 'folder') {
      if (!canPickFolder()) return start(NO_FOLDER_PICKER);
      try {
        // First thing after the click: the picker needs the user's gesture.
        const pick = (globalThis as unknown as { showDirectoryPicker(o: object): Promise<FileSystemDirectoryHandle> }).showDirectoryPicker;
        target = { kind: 'directory', handle: await pick({ mode: 'readwrite', id: 'lora-studio-merge' }) };
      } catch (err) {
        if ((err as { name?: string })?.name === 'AbortError') return; // the user closed the picker
        return start(`The folder could not be opened: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    start();
    if (!sendToEngine(request(id, target))) {
      patchMerge(key, { phase: 'error', message: 'The engine is not running: this browser has no WebGPU.' });
    }
  };
  const mergeOf = (request: string | undefined) => Object.entries(get().merges).find(([, m]) => m.request === request && m.phase === 'merging')?.[0];
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
        const r = (await runsDb().get(id)) ?? record(id);
        if (runHolder(r, [...locked], live) === 'another-tab') throw new Error('this run is training in another tab: stop it there before deleting it');
        await runsDb().delete(id);
        set({ runs: get().runs.filter((r) => r.id !== id), storage: await runsDb().usage().catch(() => get().storage) });
      });
    },

    downloadRun(id, as) {
      return guard(async () => {
        const r = record(id);
        if (r.config.method === 'full') throw new Error(`"${r.name}" is a full fine-tuning run: it downloads as a whole model folder ("Download model"), not as an adapter`);
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

    adapterImport: IDLE_IMPORT,
    importAdapter(source, name) {
      if (get().adapterImport.phase === 'importing') return;
      if (!get().model) {
        set({ adapterImport: { ...IDLE_IMPORT, phase: 'error', message: 'Load the base model first (Models screen): the adapter is checked against it.' } });
        return;
      }
      const request = requestId('import');
      set({ adapterImport: { ...IDLE_IMPORT, phase: 'importing', request } });
      if (!sendToEngine({ type: 'import-adapter', id: request, runId: newRunId(), source, name })) {
        set({ adapterImport: { ...IDLE_IMPORT, phase: 'error', message: 'The engine is not running: this browser has no WebGPU.' } });
      }
    },

    merges: {},
    async mergeRun(runId, dtype, to, gguf, trl) {
      await beginWrite(runId, to, !!trl, (id, target) => ({ type: 'merge-model', id, runId, dtype, to: target, ...(gguf ? { gguf } : {}), ...(trl ? { trl } : {}) }));
    },
    async exportTrainConfig(config, name, datasetId, to) {
      await beginWrite(TRAIN_EXPORT_KEY, to, true, (id, target) => ({ type: 'export-trl', id, config, name, datasetId: datasetId ?? undefined, to: target }));
    },
    cancelMerge(runId) {
      const m = get().merges[runId];
      if (m?.phase === 'merging') sendToEngine({ type: 'abort-merge', id: m.request });
    },

    onRunsEvent(event) {
      const imp = get().adapterImport;
      switch (event.type) {
        case 'run-state':
          void get().refreshRuns();
          break;
        case 'progress': {
          if (event.id === imp.request && imp.phase === 'importing') set({ adapterImport: { ...imp, done: event.done, total: event.total } });
          const runId = mergeOf(event.id);
          if (runId) patchMerge(runId, { done: event.done, total: event.total });
          break;
        }
        case 'adapter-imported':
          if (event.id !== imp.request) break;
          set({
            adapterImport: {
              ...imp, phase: 'done', warnings: event.warnings,
              message: `Imported "${event.name}": ${importedWhat(event.method ?? 'LoRA', event.modules)}. It is listed below, in Compare and in the Playground.`,
            },
          });
          void get().refreshRuns();
          break;
        case 'merged': {
          const runId = mergeOf(event.id);
          if (!runId) break;
          const bytes = event.files.reduce((s, f) => s + f.size, 0);
          const size = bytes >= 1024 ** 2 ? `${(bytes / 1024 ** 2).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
          if (event.zip) saveBlob(event.zip.blob, event.zip.fileName);
          const full = get().runs.find((r) => r.id === runId)?.config.method === 'full';
          const done = get().merges[runId]?.trl ? 'Exported' : full ? 'Saved the fully fine-tuned model' : 'Merged';
          patchMerge(runId, {
            phase: 'done',
            message: event.zip
              ? `${done}: ${event.zip.fileName} (${event.files.length} files, ${size}) is downloading.`
              : `${done} into ${event.folder}/ in the folder you picked: ${event.files.map((f) => f.path).join(', ')} (${size}).`,
          });
          break;
        }
        case 'error': {
          if (event.id !== undefined && event.id === imp.request && imp.phase === 'importing') {
            set({ adapterImport: { ...imp, phase: 'error', message: event.message } });
          }
          const runId = mergeOf(event.id);
          if (runId) patchMerge(runId, { phase: event.message === 'the merge was cancelled' ? 'cancelled' : 'error', message: event.message });
          break;
        }
      }
    },
  };
};

/** What an imported adapter holds, in words: "a Prompt tuning adapter of 8 virtual tokens", "Houlsby adapters on 4
 *  modules", "14 LoRA modules". */
export function importedWhat(method: string, count: number): string {
  const s = count === 1 ? '' : 's';
  if (/tuning$/.test(method)) return `a ${method} adapter of ${count} virtual token${s}`;
  if (/adapters$/.test(method)) return `${method} on ${count} module${s}`;
  return `${count} ${method} module${s}`;
}
