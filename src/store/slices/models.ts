// The model the studio works with: which load is in flight, its progress (bytes, rate, ETA), the loaded model's
// summary, and the memory budget the catalogue's fit check uses. The engine worker does the loading.
import type { StateCreator } from 'zustand';
import type { EngineEvent, ModelSource, ModelSummary } from '../../train/protocol.ts';
import { DEFAULT_HUB_URL } from '../../model/sources/hub.ts';
import { ProgressMeter, type ProgressStats } from '../progress-meter.ts';
import { requestId, sendToEngine } from '../engine-link.ts';

export type LoadStatus = 'idle' | 'loading' | 'loaded' | 'error';

export interface StageProgress extends ProgressStats {
  /** 'download' (Hub files), 'tuning' (kernel choice), 'weights' (checkpoint → GPU), 'dataset'. */
  stage: string;
}

export interface ModelsSlice {
  modelStatus: LoadStatus;
  modelRequest: string | null;
  /** What is being (or was last) loaded, in words: "demo-llama", a repo id, a folder name. */
  modelLabel: string;
  modelProgress: StageProgress | null;
  model: ModelSummary | null;
  /** How the loaded (or loading) model's linear layers are stored: 'nf4' for QLoRA. */
  modelQuant: 'none' | 'nf4';
  modelError: string;
  /** The user's GPU memory budget in bytes for fit checks; null: the default for this adapter. */
  memoryBudget: number | null;
  /** The Hub address models and adapters are downloaded from (a mirror or a local server; huggingface.co by default). */
  hubUrl: string;
  setHubUrl(url: string): void;
  loadModel(source: ModelSource, label: string, quant?: 'none' | 'nf4'): void;
  setMemoryBudget(bytes: number | null): void;
  /** Applies the engine events that answer this slice's requests. */
  onModelEvent(event: EngineEvent): void;
}

/** The Hub URL as a source's baseUrl: undefined for the default (so cache keys stay "org/name@main"). */
export function hubBaseUrl(hubUrl: string): string | undefined {
  const base = hubUrl.trim().replace(/\/+$/, '');
  return base && base !== DEFAULT_HUB_URL ? base : undefined;
}

/** A ModelSource without secrets, for labels and logs. */
export function describeSource(source: ModelSource): string {
  if (source.kind === 'bundled') return source.path.split('/').filter(Boolean).at(-1) ?? source.path;
  if (source.kind === 'hub') return source.revision ? `${source.repo}@${source.revision}` : source.repo;
  return source.files.find((f) => f.webkitRelativePath)?.webkitRelativePath.split('/')[0] ?? `${source.files.length} files`;
}

export const createModelsSlice: StateCreator<ModelsSlice, [], [], ModelsSlice> = (set, get) => {
  const meter = new ProgressMeter();
  let pendingQuant: 'none' | 'nf4' = 'none';
  return {
    modelStatus: 'idle',
    modelRequest: null,
    modelLabel: '',
    modelProgress: null,
    model: null,
    modelQuant: 'none',
    modelError: '',
    memoryBudget: null,
    hubUrl: DEFAULT_HUB_URL,

    setHubUrl(url) {
      set({ hubUrl: url });
    },

    loadModel(source, label, quant = 'none') {
      const id = requestId('model');
      meter.reset();
      pendingQuant = quant;
      set({ modelStatus: 'loading', modelRequest: id, modelLabel: label, modelProgress: null, modelError: '' });
      if (!sendToEngine({ type: 'load-model', id, source, quant })) {
        set({ modelStatus: 'error', modelError: 'The engine is not running: this browser has no WebGPU.' });
      }
    },

    setMemoryBudget(bytes) {
      set({ memoryBudget: bytes !== null && Number.isFinite(bytes) && bytes > 0 ? bytes : null });
    },

    onModelEvent(event) {
      if (event.type === 'gpu-lost') {
        // The weights went with the device.
        set({ model: null, modelStatus: 'idle', modelProgress: null, modelRequest: null });
        return;
      }
      const pending = get().modelRequest;
      if (!('id' in event) || event.id === undefined || event.id !== pending) return;
      switch (event.type) {
        case 'progress': {
          const previous = get().modelProgress;
          if (previous && previous.stage !== event.stage) meter.reset();
          const stats = meter.update(performance.now(), event.done, event.total);
          set({ modelProgress: { stage: event.stage, ...stats } });
          break;
        }
        case 'model-loaded':
          set({ modelStatus: 'loaded', model: event.model, modelQuant: pendingQuant, modelProgress: null, modelError: '' });
          break;
        case 'model-updated':
          // The same model held another way (a full fine-tuning run reloaded it in f32): the datasets still hold.
          if (get().modelStatus === 'loaded') set({ model: event.model });
          break;
        case 'error': {
          // The worker releases the previous model just before the 'weights' stage: a failure before it (a bad repo id,
          // a missing config) leaves that model loaded; a failure after it leaves none.
          const released = get().modelProgress?.stage === 'weights';
          set({ modelStatus: 'error', modelError: event.message, modelProgress: null, model: released ? null : get().model });
          break;
        }
      }
    },
  };
};
