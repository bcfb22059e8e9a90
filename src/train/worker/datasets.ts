// 'load-dataset': a dropped/picked File or a same-origin URL (the sample datasets under public/) streamed through
// loadJsonlDataset with the loaded model's tokenizer and chat template → the TokenizedDataset kept in worker state
// for training → 'dataset-loaded' with its summary (counts, rejected lines, length histogram, a token preview).
import { blobChunks, DatasetError, isDatasetFormat, loadJsonlDataset, readableStreamChunks, type ChunkSource } from '../../data/index.ts';
import type { EngineRequest } from '../protocol.ts';
import { requireModel, state, UserError, type Post } from './state.ts';
import { datasetSummary, SUMMARY_ERRORS } from './summary.ts';

type LoadDataset = Extract<EngineRequest, { type: 'load-dataset' }>;

/** Progress events every this many lines (and at the end). */
const PROGRESS_EVERY_LINES = 200;
/** Tokenized datasets kept in memory at once. */
const KEEP_DATASETS = 4;

async function openSource(file: LoadDataset['file']): Promise<{ chunks: ChunkSource; name: string; totalBytes: number | undefined }> {
  if (file instanceof Blob) return { chunks: blobChunks(file), name: (file as File).name ?? 'dataset.jsonl', totalBytes: file.size };
  const url = new URL(file.url, self.location.href);
  if (url.origin !== self.location.origin) throw new UserError(`${file.name}: only datasets served by this app can be loaded by URL`);
  const response = await fetch(url, { headers: { Accept: 'application/x-ndjson, application/json, text/plain' } });
  if (!response.ok || !response.body) throw new UserError(`${file.name}: HTTP ${response.status} ${response.statusText} from ${url.pathname}`);
  if ((response.headers.get('Content-Type') ?? '').includes('text/html')) {
    await response.body.cancel();
    throw new UserError(`${file.name}: not found at ${url.pathname}`);
  }
  const length = response.headers.get('Content-Encoding') ? null : response.headers.get('Content-Length');
  return { chunks: readableStreamChunks(response.body), name: file.name, totalBytes: length ? Number(length) : undefined };
}

export async function handleLoadDataset(req: LoadDataset, post: Post): Promise<void> {
  const model = requireModel();
  if (req.format !== undefined && req.format !== 'auto' && !isDatasetFormat(req.format)) {
    throw new UserError(`unknown dataset format "${req.format}"`);
  }
  const { chunks, name, totalBytes } = await openSource(req.file);
  post({ type: 'progress', id: req.id, stage: 'dataset', done: 0, total: totalBytes ?? 0 });
  let data;
  try {
    data = await loadJsonlDataset(chunks, {
      tokenizer: model.tokenizer,
      template: model.template,
      format: req.format && isDatasetFormat(req.format) ? req.format : 'auto',
      maxLength: req.maxLength,
      trainOnPrompt: req.trainOnPrompt,
      vocabSize: model.config.vocabSize,
      fileName: name,
      totalBytes,
      progressEveryLines: PROGRESS_EVERY_LINES,
      maxReportedErrors: SUMMARY_ERRORS,
      onProgress: (p) => post({ type: 'progress', id: req.id, stage: 'dataset', done: p.bytes, total: p.totalBytes ?? 0 }),
    });
  } catch (e) {
    // A file with no usable row: the message already lists the first rejected lines.
    if (e instanceof DatasetError) throw new UserError(e.message);
    throw e;
  }
  const summary = datasetSummary(data, model.tokenizer);
  state.datasets.set(req.id, { id: req.id, modelId: model.id, data, summary });
  // Keep the few latest (a training file and an eval file, say); older ones only hold memory.
  for (const id of [...state.datasets.keys()].slice(0, -KEEP_DATASETS)) state.datasets.delete(id);
  post({ type: 'dataset-loaded', id: req.id, dataset: summary });
}
