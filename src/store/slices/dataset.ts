// The training data: which file (a dropped or picked File, or a sample served by the app), the options it was
// tokenized with, the load in flight and the summary the engine reported. Tokens depend on the model, so a newly
// loaded model re-tokenizes the current file by itself.
import type { StateCreator } from 'zustand';
import type { DatasetSummary, EngineEvent } from '../../train/protocol.ts';
import { ProgressMeter } from '../progress-meter.ts';
import { requestId, sendToEngine } from '../engine-link.ts';
import type { LoadStatus, ModelsSlice, StageProgress } from './models.ts';

/** A sample dataset's held-out prompts (public/datasets/index.json's heldOut: no training row contains them), and
 *  whether they are asked as chat (one user turn through the template) or continued as plain text. */
export interface HeldOutPrompts {
  prompts: string[];
  chat: boolean;
}

export type DatasetSource = File | { url: string; name: string; heldOut?: HeldOutPrompts };

/** The held-out prompts the loaded dataset came with (the samples have them), or null. */
export function heldOutOf(source: DatasetSource | null): HeldOutPrompts | null {
  if (!source || source instanceof Blob || !source.heldOut || source.heldOut.prompts.length === 0) return null;
  return source.heldOut;
}

/** Max length when the user has not set one: the model's context, capped so a first look stays quick. */
export const DEFAULT_MAX_LENGTH_CAP = 1024;

export interface DatasetSlice {
  datasetStatus: LoadStatus;
  datasetRequest: string | null;
  datasetSource: DatasetSource | null;
  datasetProgress: StageProgress | null;
  dataset: DatasetSummary | null;
  /** The request id that produced `dataset`: the worker keeps the tokenized rows under it. */
  datasetId: string | null;
  datasetError: string;
  /** null: DEFAULT_MAX_LENGTH_CAP or the model's context, whichever is smaller. */
  maxLength: number | null;
  trainOnPrompt: boolean;
  loadDataset(source: DatasetSource): void;
  setDatasetOptions(o: { maxLength?: number | null; trainOnPrompt?: boolean }): void;
  onDatasetEvent(event: EngineEvent): void;
}

export function sourceName(source: DatasetSource): string {
  return source.name;
}

/** The max length a load uses: the user's, else the model's context capped. */
export function effectiveMaxLength(userMax: number | null, modelMax: number | null): number {
  if (userMax !== null) return userMax;
  return Math.min(modelMax ?? DEFAULT_MAX_LENGTH_CAP, DEFAULT_MAX_LENGTH_CAP);
}

export const createDatasetSlice: StateCreator<DatasetSlice & Pick<ModelsSlice, 'model'>, [], [], DatasetSlice> = (set, get) => {
  const meter = new ProgressMeter();
  const send = (source: DatasetSource) => {
    const id = requestId('dataset');
    meter.reset();
    const { maxLength, trainOnPrompt, model } = get();
    set({ datasetStatus: 'loading', datasetRequest: id, datasetSource: source, datasetProgress: null, datasetError: '' });
    const file = source instanceof Blob ? source : { url: source.url, name: source.name };
    const ok = sendToEngine({ type: 'load-dataset', id, file, maxLength: effectiveMaxLength(maxLength, model?.maxPositions ?? null), trainOnPrompt });
    if (!ok) set({ datasetStatus: 'error', datasetError: 'The engine is not running: this browser has no WebGPU.' });
  };
  return {
    datasetStatus: 'idle',
    datasetRequest: null,
    datasetSource: null,
    datasetProgress: null,
    dataset: null,
    datasetId: null,
    datasetError: '',
    maxLength: null,
    trainOnPrompt: false,

    loadDataset(source) {
      send(source);
    },

    setDatasetOptions(o) {
      const maxLength = o.maxLength === undefined ? get().maxLength : o.maxLength;
      if (maxLength !== null && (!Number.isInteger(maxLength) || maxLength < 2)) {
        set({ datasetError: `max length must be a whole number of at least 2, got ${maxLength}` });
        return;
      }
      set({ maxLength, trainOnPrompt: o.trainOnPrompt ?? get().trainOnPrompt });
      const source = get().datasetSource;
      if (source && get().model) send(source);
    },

    onDatasetEvent(event) {
      if (event.type === 'gpu-lost') {
        // The worker dropped its rows with the model; the file stays chosen and loads again with the next model.
        set({ dataset: null, datasetId: null, datasetStatus: 'idle', datasetProgress: null, datasetRequest: null });
        return;
      }
      // A new model means new token ids: tokenize the current file again (the worker dropped the old rows).
      if (event.type === 'model-loaded') {
        const source = get().datasetSource;
        set({ dataset: null, datasetId: null });
        if (source) send(source);
        return;
      }
      if (!('id' in event) || event.id === undefined || event.id !== get().datasetRequest) return;
      switch (event.type) {
        case 'progress': {
          const stats = meter.update(performance.now(), event.done, event.total);
          set({ datasetProgress: { stage: event.stage, ...stats } });
          break;
        }
        case 'dataset-loaded':
          set({ datasetStatus: 'loaded', dataset: event.dataset, datasetId: event.id, datasetProgress: null, datasetError: '' });
          break;
        case 'error':
          set({ datasetStatus: 'error', datasetError: event.message, datasetProgress: null, dataset: null, datasetId: null });
          break;
      }
    },
  };
};
