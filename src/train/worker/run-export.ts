// 'export-adapter': a run's PEFT adapter as a download (.zip or the bare safetensors), from the training run itself
// (its tensors now, as its method saves them) or from the runs store. A full fine-tuning run saves its trained
// weights instead (full-run.ts), which download as a model folder through 'merge-model' (merge.ts), not from here.
import type { StoredAdapter } from '../../store/runs-db.ts';
import { adapterFileName } from '../download-names.ts';
import { methodFor } from '../methods/registry.ts';
import { fullRunFiles, isFullRunFiles } from '../full-run.ts';
import { zipAdapter } from '../peft.ts';
import type { EngineRequest } from '../protocol.ts';
import { activeRun, db, type ActiveRun, type PostTransfer } from './active-run.ts';
import { UserError } from './state.ts';

type ExportAdapter = Extract<EngineRequest, { type: 'export-adapter' }>;

/** The PEFT files of the run's adapter as it is now (or its best evaluated one), as its method saves them; a full
 *  fine-tuning run's trained weights as full-run.ts keeps them. */
export async function adapterFiles(run: ActiveRun, which: 'current' | 'best'): Promise<StoredAdapter> {
  const t = run.trainer;
  const method = methodFor(t.config.method);
  if (method.exports === 'model') return fullRunFiles(await t.trainedTensors(which), run.model.summary.name);
  return method.exportAdapter({
    tensors: await t.trainedTensors(which),
    modules: t.modules,
    targetModules: t.targetModules,
    config: t.config,
    model: run.model.config,
    baseModel: run.model.summary.name,
  });
}

export async function handleExportAdapter(req: ExportAdapter, post: PostTransfer): Promise<void> {
  const active = activeRun();
  let files: StoredAdapter | null;
  let name: string;
  const wholeModel = (runName: string) =>
    new UserError(`"${runName}" is a full fine-tuning run: it trains the whole model, not an adapter; download it as a model folder from the Runs screen once it stops or finishes`);
  if (active && active.id === req.runId) {
    if (methodFor(active.trainer.config.method).exports === 'model') throw wholeModel(active.record.name);
    if (active.trainer.step === 0) throw new UserError('the run has not trained a step yet: nothing to export');
    files = await adapterFiles(active, 'current');
    name = active.record.name;
  } else {
    const record = await db().get(req.runId);
    if (!record) throw new UserError(`run ${req.runId} is not saved in this browser`);
    files = await db().loadAdapter(req.runId);
    if (!files) throw new UserError(`run "${record.name}" has no saved adapter (it ${record.status === 'failed' ? 'failed' : 'did not finish'})`);
    name = record.name;
    if (isFullRunFiles(files)) throw wholeModel(name);
  }
  const bytes = req.as === 'zip' ? zipAdapter(files) : files['adapter_model.safetensors'].slice();
  post(
    { type: 'adapter', id: req.id, runId: req.runId, fileName: adapterFileName(name, req.as), bytes },
    [bytes.buffer as ArrayBuffer],
  );
}
