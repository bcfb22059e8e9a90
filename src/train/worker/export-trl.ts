// "Export for a GPU cluster", written like the merged model (into a picked folder or a .zip):
//   Runs   a 'merge-model' request with trl: true: the saved run's config, target_modules from its adapter (exactly
//          the modules it trained), the rows of the loaded dataset it trained on
//   Train  an 'export-trl' request: the form's config over the loaded model and dataset, before any training,
//          target_modules by the method registry's resolver (as a run would have them)
// Rows are made as the training handler makes them (truncateRows, then splitEval with the run's seed) and written by
// src/export/trl.ts with the loaded model's id (its Hub repo, else its name: train.py --model then says where it is).
import { blobChunks, readableStreamChunks, readLines, splitEval, type ChunkSource, type DatasetRow } from '../../data/index.ts';
import { trlExportFiles } from '../../export/trl.ts';
import type { RunRecord } from '../../store/runs-db.ts';
import type { OutputFile } from '../merge.ts';
import type { LoraAdapter } from '../peft.ts';
import { ConfigError, validateConfig, type TrainConfig } from '../config.ts';
import { methodFor } from '../methods/registry.ts';
import { resolveTargets } from '../methods/targets.ts';
import type { EngineRequest } from '../protocol.ts';
import type { LoadedDataset, LoadedModel } from './state.ts';
import { requireDataset, requireModel, state, UserError } from './state.ts';
import { truncateRows } from './run-rows.ts';

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

/** `adapter`: the run's LoRA or DoRA adapter (its target_modules); null for a full fine-tuning run (no PEFT model, every
 *  weight trains: no targets). */
export async function trlOutputFiles(record: RunRecord, model: LoadedModel, adapter: Pick<LoraAdapter, 'config'> | null): Promise<OutputFile[]> {
  const targets = adapter ? adapter.config.target_modules : [];
  if (targets === null) throw new UserError(`"${record.name}": its adapter_config.json names no target_modules`);
  const source = { fileName: record.dataset.fileName, format: record.dataset.format };
  return filesFor(record.config, model, datasetOfRun(record, model), targets, record.name, source);
}

/** The Train screen's export: its config over the loaded model and dataset, checked as starting a run checks it. */
export async function trlConfigFiles(req: Extract<EngineRequest, { type: 'export-trl' }>): Promise<OutputFile[]> {
  const model = requireModel();
  const dataset = requireDataset(req.datasetId);
  if (dataset.modelId !== model.id) throw new UserError('the dataset was tokenized for another model: load it again on the Data screen');
  const errors = validateConfig(req.config);
  if (errors.length) throw new UserError(new ConfigError(errors).message);
  const config = req.config;
  if (config.maxLength > model.config.maxPositions) {
    throw new UserError(`maxLength = ${config.maxLength}: must be ≤ the model's ${model.config.maxPositions} positions`);
  }
  let targets: string | string[];
  try {
    targets = resolveTargets(model.config, config.targets, methodFor(config.method).defaultTargets).targetModules;
  } catch (e) {
    throw new UserError(`targets ${config.targets.join(', ') || '(default)'}: ${(e as Error).message}`);
  }
  const name = req.name.trim() || `${model.summary.name} · r${config.rank} · ${dataset.summary.fileName}`;
  return filesFor(config, model, dataset, targets, name, { fileName: dataset.summary.fileName, format: dataset.summary.format });
}

async function filesFor(
  config: TrainConfig,
  model: LoadedModel,
  dataset: LoadedDataset,
  targets: string | string[],
  name: string,
  source: { fileName: string; format: string | null },
): Promise<OutputFile[]> {
  // truncateRows row by row keeps each row's line number (it maps and filters, never reorders).
  const rows: DatasetRow[] = dataset.data.rows.flatMap((r) => truncateRows([r], config.maxLength).rows.map((t) => ({ ...t, line: r.line })));
  if (rows.length === 0) throw new UserError(`no row of ${source.fileName} keeps a trained token within ${config.maxLength} tokens`);
  let train = rows;
  let evalRows: DatasetRow[] = [];
  if (config.evalSplit > 0) {
    if (rows.length < 2) throw new UserError(`an eval split needs at least 2 usable rows; ${source.fileName} has ${rows.length}`);
    ({ train, eval: evalRows } = splitEval(rows, config.evalSplit, config.seed));
  }
  return trlExportFiles({
    modelId: model.source.kind === 'hub' ? model.source.repo : model.summary.name,
    modelNote: model.source.kind === 'hub'
      ? undefined
      : `The studio loaded ${model.summary.name} from ${model.source.kind === 'folder' ? 'a local folder' : 'its own bundle (public/models)'}, not the Hub: run train.py with --model PATH_TO_THAT_FOLDER.`,
    model: model.config,
    config,
    targetModules: targets,
    train,
    eval: evalRows,
    sourceLines: await sourceLines(dataset, rows),
    source,
    name,
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
