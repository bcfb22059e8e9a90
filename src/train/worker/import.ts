// 'import-adapter': a PEFT LoRA adapter from a .zip, a folder or a Hugging Face repo → checked against the loaded
// model (importAdapter: every problem named by module and tensor, all at once) → saved in the runs store as a run with
// status 'imported', so the Runs screen, Compare and the Playground list it like a trained run, and "Continue
// training" can start from it. The two files are stored as they came (a later .zip download gives them back as is).
//
// Hub adapters go through hub.ts into the same browser cache as Hub models (a second import works offline).
import { DEFAULT_CONFIG, type TrainConfig } from '../config.ts';
import type { ModelFiles } from '../../model/checkpoint.ts';
import { BlobSource, blobFolder } from '../../model/sources/blob.ts';
import { hubModel } from '../../model/sources/hub.ts';
import { linearModules } from '../../model/weights.ts';
import { StorageFullError, type RunRecord, type StoredAdapter } from '../../store/runs-db.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, AdapterError, adapterFolder, adapterMethod, importAnyAdapter, type AnyAdapter } from '../peft.ts';
import type { AdapterSource, EngineRequest } from '../protocol.ts';
import { workerRunsDb } from './adapters.ts';
import { modelCache } from './models.ts';
import { requireModel, UserError, type LoadedModel, type Post } from './state.ts';
import { peftTargetModules } from '../methods/targets.ts';
import { continuationMethod, METHODS } from '../methods/registry.ts';

type ImportAdapter = Extract<EngineRequest, { type: 'import-adapter' }>;

// ---------------------------------------------------------------------------------------------------------------
// Pure parts

/** The training config an imported adapter stands for: its method, LoRA's r, lora_alpha, lora_dropout and
 *  use_rslora, and as targets the modules it has weights for (names when they select exactly those, else full paths);
 *  the rest the defaults. */
export function importedRunConfig(adapter: AnyAdapter, model: LoadedModel['config']): TrainConfig {
  // A P-tuning adapter (PEFT saves its encoder's output only) continues as prompt tuning; a prefix adapter as plain
  // prefix tuning (PEFT saves the projection's output only).
  const method = continuationMethod(adapterMethod(adapter));
  if (adapter.kind === 'prompt') return { ...DEFAULT_CONFIG, method, targets: [], numVirtualTokens: adapter.numVirtualTokens, ...(method === 'prefix-tuning' && { prefixProjection: false }) };
  const targets = peftTargetModules(adapter.modules.map((m) => m.module), linearModules(model));
  if (adapter.kind === 'bottleneck') {
    return { ...DEFAULT_CONFIG, method, targets, reductionFactor: adapter.reductionFactor, adapterActivation: adapter.activation };
  }
  if (adapter.kind === 'ia3') return { ...DEFAULT_CONFIG, method, targets };
  if (adapter.adalora) {
    // AdaLoRA continues as AdaLoRA: its init_r triplets (the dropped ones masked) and schedule; total_step left to the
    // new run's own steps (the importance EMAs are not in a PEFT file and start again from zero).
    const a = adapter.adalora;
    return {
      ...DEFAULT_CONFIG, method, targets, alpha: adapter.alpha, dropout: adapter.dropout, initR: a.initR, targetR: a.targetR,
      tinit: a.tinit, tfinal: a.tfinal, deltaT: a.deltaT, totalStep: null, adaloraBeta1: a.beta1, adaloraBeta2: a.beta2, orthRegWeight: a.orthRegWeight,
    };
  }
  return { ...DEFAULT_CONFIG, method, targets, rank: adapter.rank, alpha: adapter.alpha, dropout: adapter.dropout, rslora: adapter.rslora };
}

/** The run record of an imported adapter (its adapter pointer is set when the files are saved). */
export function importedRunRecord(o: {
  runId: string;
  name: string;
  from: string;
  adapter: AnyAdapter;
  model: Pick<LoadedModel, 'summary' | 'quant' | 'config'>;
  now: number;
}): RunRecord {
  const { adapter, model } = o;
  return {
    id: o.runId,
    name: o.name,
    created: o.now,
    updated: o.now,
    model: { name: model.summary.name, modelType: model.summary.modelType, quant: model.quant, dtype: model.summary.dtype, parameters: model.summary.parameters },
    dataset: { fileName: '', rows: 0, format: null, evalRows: 0 },
    config: importedRunConfig(adapter, model.config),
    status: 'imported',
    message: adapter.warnings.join(' '),
    totalSteps: 0,
    trainableParams: adapter.kind === 'prompt' ? adapter.embeddings.length : adapter.kind === 'bottleneck' ? adapter.modules.reduce((s, m) => s + m.D.length + m.bd.length + m.U.length + m.bu.length, 0) : adapter.kind === 'ia3' ? adapter.modules.reduce((s, m) => s + m.l.length, 0) : adapter.modules.reduce((s, m) => s + m.A.length + m.B.length + (m.magnitude?.length ?? 0) + (adapter.adalora?.initR ?? 0), 0),
    curves: [],
    samples: [],
    final: null,
    checkpoint: null,
    adapter: null,
    importedFrom: o.from,
  };
}

/** "org/name on the Hub", a file or folder name: where an adapter came from, in words (never the token). */
export function describeAdapterSource(source: AdapterSource): string {
  switch (source.kind) {
    case 'zip':
      return source.file.name;
    case 'folder':
      return source.name;
    case 'hub':
      return `${source.repo}${source.revision ? `@${source.revision}` : ''} on the Hub${source.baseUrl ? ` (${source.baseUrl})` : ''}`;
  }
}

/** The default run name: the repo's or file's name without ".zip". */
export function defaultImportName(source: AdapterSource): string {
  switch (source.kind) {
    case 'zip':
      return source.file.name.replace(/\.zip$/i, '') || 'imported adapter';
    case 'folder':
      return source.name || 'adapter folder';
    case 'hub':
      return source.repo.split('/').at(-1) || source.repo;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The handler

/** The adapter's files, wherever they are. */
async function openSource(source: AdapterSource, model: LoadedModel['config'], onProgress: (done: number, total: number) => void): Promise<ModelFiles> {
  switch (source.kind) {
    case 'zip':
      // Read through Blob.slice, inflated within the bounds of adapter-archive.ts: the archive is never held whole.
      return adapterFolder(new BlobSource(source.file, source.file.name), model, source.file.name);
    case 'folder':
      if (source.files.length === 0) throw new UserError(`the folder is empty: pick the adapter's folder (${ADAPTER_CONFIG_FILE}, ${ADAPTER_WEIGHTS_FILE})`);
      return blobFolder(source.files, source.name || 'adapter folder');
    case 'hub':
      return hubModel(source.repo.trim(), {
        baseUrl: source.baseUrl,
        revision: source.revision,
        token: source.token || null,
        cache: modelCache(),
        onProgress: (p) => onProgress(p.bytesDone, p.bytesTotal ?? 0),
      });
  }
}

async function readAll(folder: ModelFiles, path: string): Promise<Uint8Array> {
  const source = await folder.open(path);
  if (!source) throw new AdapterError(folder.name, [`no ${path}`]);
  try {
    return await source.read(0, source.size);
  } finally {
    await source.close?.();
  }
}

export async function handleImportAdapter(req: ImportAdapter, post: Post): Promise<void> {
  const model = requireModel();
  const from = describeAdapterSource(req.source);
  let folder: ModelFiles;
  let adapter: AnyAdapter;
  try {
    folder = await openSource(req.source, model.config, (done, total) => post({ type: 'progress', id: req.id, stage: 'download', done, total }));
    // Any adapter the engine runs: PEFT's, or a bottleneck adapter in the studio's own layout.
    adapter = await importAnyAdapter(folder, model.config, req.source.kind === 'hub' ? req.source.repo : folder.name);
  } catch (err) {
    // What is wrong with the file is the user's to fix: shown as it is, every problem listed.
    throw err instanceof AdapterError ? new UserError(`${err.message}\n(checked against ${model.summary.name})`) : err;
  }
  const files: StoredAdapter = {
    'adapter_config.json': await readAll(folder, ADAPTER_CONFIG_FILE),
    'adapter_model.safetensors': await readAll(folder, ADAPTER_WEIGHTS_FILE),
  };
  const name = req.name?.trim() || defaultImportName(req.source);
  const record = importedRunRecord({ runId: req.runId, name, from, adapter, model, now: Date.now() });
  const runs = workerRunsDb();
  try {
    await runs.create(record);
    try {
      await runs.saveAdapter(req.runId, files, 0);
    } catch (err) {
      await runs.delete(req.runId).catch(() => {}); // no record without its adapter
      throw err;
    }
  } catch (err) {
    throw err instanceof StorageFullError ? new UserError(err.message) : err;
  }
  post({ type: 'adapter-imported', id: req.id, runId: req.runId, name, modules: adapter.kind === 'prompt' ? adapter.numVirtualTokens : adapter.modules.length, warnings: adapter.warnings, method: METHODS[adapterMethod(adapter)].label });
}
