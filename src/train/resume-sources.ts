// Where a run's model and dataset came from, kept in IndexedDB so a run interrupted by a closed (or crashed) tab can
// be resumed in one click on the next visit: the page loads the same model and dataset again, then resumes the run
// from its last checkpoint (App.tsx's interrupted-run banner). Written by the engine worker when a run starts, read
// by the page, dropped when the run stops or finishes.
//
// Kept: a bundled or Hub model (the Hub's token is not: the files are in the browser's cache by then) and a sample
// dataset's URL or a dropped file up to MAX_KEPT_DATASET_BYTES (IndexedDB stores the File itself). Not kept: a local
// model folder (a whole model copied into storage) and larger files; the banner then says what to load by hand.
import { createStore, del, get, set, type UseStore } from 'idb-keyval';
import type { EngineRequest, ModelSource } from './protocol.ts';

/** A dropped dataset up to this size is stored with the run's sources. */
export const MAX_KEPT_DATASET_BYTES = 32 * 1024 * 1024;

type LoadDataset = Extract<EngineRequest, { type: 'load-dataset' }>;

export interface ResumeSources {
  runId: string;
  /** null: the model came from a local folder, which is not kept. */
  model: { source: ModelSource; quant: 'none' | 'nf4'; name: string } | null;
  /** null: the file was larger than MAX_KEPT_DATASET_BYTES. */
  dataset: { file: LoadDataset['file']; name: string; maxLength: number; trainOnPrompt: boolean; format?: string } | null;
}

/** What to keep of a run's model and dataset loads. */
export function resumeSourcesFor(
  runId: string,
  model: { source: ModelSource; quant: 'none' | 'nf4'; name: string },
  dataset: Pick<LoadDataset, 'file' | 'maxLength' | 'trainOnPrompt' | 'format'>,
): ResumeSources {
  const source = model.source;
  const kept: ModelSource | null =
    source.kind === 'folder' ? null : source.kind === 'hub' ? { kind: 'hub', repo: source.repo, revision: source.revision, baseUrl: source.baseUrl } : source;
  const file = dataset.file;
  const small = !(file instanceof Blob) || file.size <= MAX_KEPT_DATASET_BYTES;
  return {
    runId,
    model: kept ? { source: kept, quant: model.quant, name: model.name } : null,
    dataset: small
      ? { file, name: file instanceof Blob ? ((file as File).name ?? 'dataset.jsonl') : file.name, maxLength: dataset.maxLength, trainOnPrompt: dataset.trainOnPrompt, format: dataset.format }
      : null,
  };
}

let store: UseStore | null = null;
const kv = () => (store ??= createStore('lora-studio-resume', 'sources'));

export async function saveResumeSources(sources: ResumeSources): Promise<void> {
  await set(sources.runId, sources, kv());
}

export async function loadResumeSources(runId: string): Promise<ResumeSources | null> {
  return (await get<ResumeSources>(runId, kv())) ?? null;
}

export async function deleteResumeSources(runId: string): Promise<void> {
  await del(runId, kv());
}
