// A saved run's adapter on the loaded model for the length of one piece of work (a generation, an evaluation):
// read from the runs store (IndexedDB, which the worker shares with the page), checked against the model by
// importAdapter, attached, and taken off again afterwards — the base model comes back exactly as it was, whatever the
// work did (attach-adapter.ts).
import { attachAdapter } from '../attach-adapter.ts';
import { memoryFolder } from '../../model/sources/memory.ts';
import { importAdapter, importPeftAdapter, type LoraAdapter, type PeftAdapter } from '../peft.ts';
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

/** Run `runId`'s saved adapter of any method the engine runs (evaluation, generation, Compare, merging). */
export async function loadAnyRunAdapter(runId: string): Promise<PeftAdapter> {
  const { folder, name } = await runAdapterFolder(runId);
  return importPeftAdapter(folder, requireModel().config, name);
}

async function runAdapterFolder(runId: string) {
  const runs = workerRunsDb();
  const record = await runs.get(runId);
  if (!record) throw new UserError(`run ${runId} does not exist (deleted?)`);
  const files = await runs.loadAdapter(runId);
  if (!files) throw new UserError(`run "${record.name}" has no saved adapter yet (it saves one when it stops or finishes)`);
  const name = `run "${record.name}"`;
  return { folder: memoryFolder({ ...files }, name), name };
}

/** Runs `work` with run `runId`'s adapter on the model, or with none (the base model) when runId is undefined. */
export async function withRunAdapter<T>(runId: string | undefined, work: () => Promise<T>): Promise<T> {
  const e = requireEngine();
  const model = requireModel();
  const adapter = runId === undefined ? null : await loadAnyRunAdapter(runId);
  const detach = attachAdapter(e, model.transformer.model, adapter);
  try {
    return await work();
  } finally {
    detach();
  }
}
