// 'evaluate': the loss of the base model, or of the model with a saved run's adapter, on a dataset's eval split —
// the rows training holds out (cut to the run's max length as training cuts them, then splitEval with the run's
// fraction and seed), batched and padded as the trainer batches its eval set, and measured by the trainer's own evaluateLoss (the loss contract: token-weighted over the whole set).
// Compare's first row, the base model, gets its eval loss from here, so it is comparable with the runs' eval losses.
import { Batcher } from '../../data/batcher.ts';
import { splitEval } from '../../data/rng.ts';
import type { EngineRequest } from '../protocol.ts';
import { evaluateLoss } from '../trainer.ts';
import { withRunAdapter } from './adapters.ts';
import { truncateRows } from './run-rows.ts';
import { requireDataset, requireEngine, requireModel, UserError, type Post } from './state.ts';

type Evaluate = Extract<EngineRequest, { type: 'evaluate' }>;

export async function handleEvaluate(req: Evaluate, post: Post): Promise<void> {
  const e = requireEngine();
  const model = requireModel();
  const dataset = requireDataset(req.datasetId);
  if (!(Number.isInteger(req.batchSize) && req.batchSize >= 1)) throw new UserError(`batch size must be an integer ≥ 1, got ${req.batchSize}`);
  if (dataset.modelId !== model.id) throw new UserError('the dataset was tokenized for another model: load it again on the Data screen');
  const { rows: all } = truncateRows(dataset.data.rows, req.maxLength);
  let rows = all;
  if (req.evalSplit > 0) {
    try {
      rows = splitEval(all, req.evalSplit, req.seed).eval;
    } catch (err) {
      throw new UserError(`${dataset.summary.fileName}: ${(err as Error).message}`);
    }
  }
  if (rows.length === 0) throw new UserError(`${dataset.summary.fileName} has no rows to evaluate`);
  const padId = model.tokenizer?.padIdOrFallback ?? 0;
  const batcher = new Batcher(rows, { batchSize: req.batchSize, padId, seed: null });
  const { loss, tokens } = await withRunAdapter(req.adapterRunId, () => evaluateLoss(e, model.transformer, batcher));
  if (!(tokens > 0)) throw new UserError(`${dataset.summary.fileName}: no trained token in the evaluated rows`);
  post({ type: 'evaluated', id: req.id, adapterRunId: req.adapterRunId, loss, tokens, rows: rows.length });
}
