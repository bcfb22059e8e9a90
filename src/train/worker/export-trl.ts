// The Runs screen's "Export for a GPU cluster" (a 'merge-model' request with trl: true, written like the merged
// model: into a picked folder or a .zip): the run's config, the loaded model's id and the rows the run trained on,
// made as the training handler makes them (the loaded dataset's rows, truncated by truncateRows, split by splitEval
// with the run's seed), as src/export/trl.ts's files. target_modules come from the run's saved adapter, which says
// exactly which modules it trained.
import { blobChunks, readableStreamChunks, readLines, splitEval, type ChunkSource, type DatasetRow } from '../../data/index.ts';
import { trlExportFiles } from '../../export/trl.ts';
import type { RunRecord } from '../../store/runs-db.ts';
import type { OutputFile } from '../merge.ts';
import type { LoraAdapter } from '../peft.ts';
import type { LoadedDataset, LoadedModel } from './state.ts';
import { state, UserError } from './state.ts';
import { truncateRows } from './training.ts';

/** The loaded dataset the run trained on (same file name and row count, tokenized for the loaded model). */
export function datasetOfRun(record: RunRecord, model: LoadedModel): LoadedDataset {
  const found = [...state.datasets.values()].reverse().find(
    (d) => d.modelId === model.id && d.summary.fileName === record.dataset.fileName && d.summary.rows === record.dataset.rows,
  );
  if (!found) {
    throw new UserError(
      `"${record.name}" trained on ${record.dataset.fileName} (${record.dataset.rows} rows): load that dataset on the Data screen ` +
        'to export the run (the export writes the rows as the run saw them)',
    );
  }
  return found;
}

export async function trlOutputFiles(record: RunRecord, model: LoadedModel, adapter: LoraAdapter): Promise<OutputFile[]> {
  const dataset = datasetOfRun(record, model);
  const config = record.config;
  // truncateRows row by row keeps each row's line number (it maps and filters, never reorders).
  const rows: DatasetRow[] = dataset.data.rows.flatMap((r) => truncateRows([r], config.maxLength).rows.map((t) => ({ ...t, line: r.line })));
  let train = rows;
  let evalRows: DatasetRow[] = [];
  if (config.evalSplit > 0 && rows.length >= 2) ({ train, eval: evalRows } = splitEval(rows, config.evalSplit, config.seed));
  const source = model.source;
  const targets = adapter.config.target_modules;
  if (targets === null) throw new UserError(`"${record.name}": its adapter_config.json names no target_modules`);
  return trlExportFiles({
    modelId: source.kind === 'hub' ? source.repo : model.summary.name,
    model: model.config,
    config,
    targetModules: targets,
    train,
    eval: evalRows,
    sourceLines: await sourceLines(dataset, rows),
    source: { fileName: record.dataset.fileName, format: record.dataset.format },
    name: record.name,
  });
}

/** The original lines of `rows`, read again from the dataset's file (or same-origin URL); null when it is gone. */
async function sourceLines(dataset: LoadedDataset, rows: readonly DatasetRow[]): Promise<{ train: Map<number, string>; eval: Map<number, string> } | null> {
  const file = dataset.request?.file;
  if (!file) return null;
  let chunks: ChunkSource;
  try {
    if (file instanceof Blob) chunks = blobChunks(file);
    else {
      const response = await fetch(file.url);
      if (!response.ok || !response.body) return null;
      chunks = readableStreamChunks(response.body);
    }
    const wanted = new Set(rows.map((r) => r.line));
    const lines = new Map<number, string>();
    for await (const { lineNumber, text } of readLines(chunks)) if (wanted.has(lineNumber)) lines.set(lineNumber, text);
    return { train: lines, eval: lines };
  } catch {
    return null; // a File the browser no longer lets us read: the export says the source lines are missing
  }
}
