// A saved run's adapter on the loaded model for the length of one piece of work (a generation, an evaluation):
// read from the runs store (IndexedDB, which the worker shares with the page), checked against the model by
// importAdapter, attached, and taken off again afterwards — the base model comes back exactly as it was, whatever the
// work did (attach-adapter.ts). A full fine-tuning run's saved weights (full-run.ts) go on the model in place of the
// loaded weights the same way, for the same length (methods/full/inference.ts).
import { attachAdapter } from '../attach-adapter.ts';
import { isFullRunFiles, readFullRunTensors } from '../full-run.ts';
import { attachTrainedModel } from '../methods/full/inference.ts';
import { memoryFolder } from '../../model/sources/memory.ts';
import { importAdapter, importAnyAdapter, importPeftAdapter, type AnyAdapter, type LoraAdapter, type PeftAdapter } from '../peft.ts';
import { idbKeyValue, RunsDb } from '../../store/runs-db.ts';
import { requireEngine, requireModel, UserError } from './state.ts';

let db: RunsDb | null = null;

/** The runs store the worker reads adapters from (replaced in tests). */
export function workerRunsDb(): RunsDb {
  db ??= new RunsDb(idbKeyValue());
  return db;
}

export function setWorkerRunsDb(replacement: RunsDb | null): void {
  db = replacement;
}

/** Run `runId`'s saved LoRA adapter, imported for the loaded model; its name for messages (merging, the exports and
 *  continuing take LoRA; an IA³ run is refused with a clear message). */
export async function loadRunAdapter(runId: string): Promise<{ adapter: LoraAdapter; name: string }> {
  const { folder, name } = await runAdapterFolder(runId);
  return { adapter: await importAdapter(folder, requireModel().config, name), name };
}

/** Run `runId`'s saved PEFT adapter of any method (merging and the exports, which refuse a bottleneck adapter by
 *  name). */
export async function loadAnyRunAdapter(runId: string): Promise<PeftAdapter> {
  const { folder, name } = await runAdapterFolder(runId);
  return importPeftAdapter(folder, requireModel().config, name);
}

/** Run `runId`'s saved adapter of any kind, bottleneck adapters included (continuing a run). */
export async function loadRunAdapterOfAnyKind(runId: string): Promise<AnyAdapter> {
  const { folder, name } = await runAdapterFolder(runId);
  return importAnyAdapter(folder, requireModel().config, name);
}

/** What run `runId` saved: its PEFT files, or a full fine-tuning run's trained weights (full-run.ts). */
export async function runSavedWeights(runId: string) {
  const runs = workerRunsDb();
  const record = await runs.get(runId);
  if (!record) throw new UserError(`run ${runId} does not exist (deleted?)`);
  const files = await runs.loadAdapter(runId);
  if (!files) throw new UserError(`run "${record.name}" has no saved ${isWholeModelRun(record) ? 'weights' : 'adapter'} yet (it saves them when it stops or finishes)`);
  return { record, files, name: `run "${record.name}"`, fullModel: isFullRunFiles(files) };
}

function isWholeModelRun(record: { config: { method: string } }): boolean {
  return record.config.method === 'full';
}

/** Run `runId`'s trained weights when it is a full fine-tuning run, else null. */
export async function loadFullRunTensors(runId: string): Promise<Map<string, Float32Array> | null> {
  const { files, name, fullModel } = await runSavedWeights(runId);
  return fullModel ? readFullRunTensors(files, name) : null;
}

async function runAdapterFolder(runId: string) {
  const { files, name, fullModel } = await runSavedWeights(runId);
  if (fullModel) throw new UserError(`${name} is a full fine-tuning run: it saved a whole model, not an adapter`);
  return { folder: memoryFolder({ ...files }, name), name };
}

/** Runs `work` with run `runId`'s adapter on the model (or, for a full fine-tuning run, its trained weights in place
 *  of the loaded ones), or with none (the base model) when runId is undefined. */
export async function withRunAdapter<T>(runId: string | undefined, work: () => Promise<T>): Promise<T> {
  const e = requireEngine();
  const model = requireModel();
  const gpuModel = model.transformer.model;
  // A full fine-tuning run in this tab (running or paused) has the trained weights in place of the loaded ones: the
  // base model and other runs are not there to run until it stops.
  if (gpuModel.tableGrads) {
    throw new UserError('a full fine-tuning run is training this model (running or paused): its weights are that run\'s until it stops; stop it on the Train screen, then generate or evaluate');
  }
  const saved = runId === undefined ? null : await runSavedWeights(runId);
  const full = saved?.fullModel ? await readFullRunTensors(saved.files, saved.name) : null;
  // Any adapter a run saves, bottleneck adapters (the studio's own layout) included: generation and evaluation take them.
  const adapter = saved && !full ? await importAnyAdapter(memoryFolder({ ...saved.files }, saved.name), model.config, saved.name) : null;
  // The base model first (no LoRA of a paused run on it), then the run's weights.
  const detach = attachAdapter(e, gpuModel, adapter);
  let detachFull: (() => void) | null = null;
  try {
    if (full) {
      try {
        detachFull = attachTrainedModel(e, gpuModel, full);
      } catch (err) {
        throw new UserError(`${saved!.name}: ${(err as Error).message}`);
      }
    }
    return await work();
  } finally {
    detachFull?.();
    detach();
  }
}
