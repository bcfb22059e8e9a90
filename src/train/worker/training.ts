// 'start-training', 'pause', 'resume' and 'stop': a Trainer over the loaded model and dataset, run
// one optimizer step at a time through the worker's GPU queue so other requests (and the control messages) get
// through between steps. Metrics go out in batches (METRICS_INTERVAL_MS), evaluations every evalEvery steps with
// early stopping, a greedy sample for a fixed prompt every sampleEvery steps, checkpoints to IndexedDB (runs-db.ts)
// every checkpointEvery steps, at pause and at stop; the adapter is saved with the run when it stops or finishes.
//
//   running ──pause──▶ paused ──resume──▶ running ──(done | early stop)──▶ finished
//      │                  │                  └──stop──▶ stopped
//      ├─ NaN/Inf loss ─▶ failed   (diagnosis; the last good checkpoint kept)
//      └─ device lost ──▶ abandoned here; recovery.ts restarts it from its last checkpoint on a new device
//                         (paused, resumable from the Runs screen, when no new device comes)
//
// The run's shared state is active-run.ts, its rows run-rows.ts, its adapter download run-export.ts.
import { splitEval, type TokenizedRow } from '../../data/index.ts';
import { generate } from '../../model/runtime/generate.ts';
import { StorageFullError, tryLockRun, type RunRecord } from '../../store/runs-db.ts';
import { prunedNotice, type PruneCandidate } from '../../store/retention.ts';
import { ConfigError, normalizeConfig, validateConfig, type TrainConfig } from '../config.ts';
import { deleteResumeSources, resumeSourcesFor, saveResumeSources } from '../resume-sources.ts';
import type { EngineRequest, StepMetrics } from '../protocol.ts';
import { Trainer, TrainingDivergedError, type TrainerCheckpoint } from '../trainer.ts';
import { activeRun, currentLostRun, db, forgetLostRun, setActiveRun, type ActiveRun, type Exclusive, type LostRun, type PostTransfer, type StartTraining } from './active-run.ts';
import { continuationFor } from './continue.ts';
import { prepareWeightsFor } from './full-weights.ts';
import { methodFor } from '../methods/registry.ts';
import { adapterFiles } from './run-export.ts';
import { promptFromRow, truncateRows } from './run-rows.ts';
import { errorMessage, requireDataset, requireEngine, requireModel, state, UserError } from './state.ts';

type RunControl = Extract<EngineRequest, { type: 'pause' | 'resume' | 'stop' }>;

export const METRICS_INTERVAL_MS = 250;
export const SAMPLE_NEW_TOKENS = 32;
const DEFAULT_SAMPLES_PER_RUN = 10;

// ---------------------------------------------------------------------------------------------------------------
// Start

/** Starts (or resumes) a run. `restart`: recovery starting a run again after a lost device, with the run's lock it
 *  kept and what the user last asked (a paused run comes back paused, before any step). */
export async function handleStartTraining(
  req: StartTraining,
  post: PostTransfer,
  exclusive: Exclusive,
  restart?: { releaseLock: () => void; control: LostRun['control'] },
): Promise<void> {
  const e = requireEngine();
  const model = requireModel();
  const busy = activeRun();
  if (busy) throw new UserError(`run "${busy.record.name}" is ${busy.control === 'pause' ? 'paused' : 'running'} in this tab: stop it first`);
  const dataset = requireDataset(req.datasetId);
  if (dataset.modelId !== model.id) throw new UserError('the dataset was tokenized for another model: load it again on the Data screen');

  const store = db();
  let record: RunRecord | null = null;
  let checkpoint: TrainerCheckpoint | null = null;
  let config: TrainConfig;
  if (req.resume) {
    record = await store.get(req.runId);
    if (!record) throw new UserError(`run ${req.runId} is not saved in this browser`);
    checkpoint = await store.loadCheckpoint(req.runId);
    if (!checkpoint) throw new UserError(`run "${record.name}" has no checkpoint to resume from`);
    if (record.model.name !== model.summary.name) {
      throw new UserError(`run "${record.name}" trained ${record.model.name}: load that model to resume it (loaded: ${model.summary.name})`);
    }
    if (record.dataset.fileName !== dataset.summary.fileName || record.dataset.rows !== dataset.summary.rows) {
      throw new UserError(
        `run "${record.name}" trained on ${record.dataset.fileName} (${record.dataset.rows} rows): load that dataset to resume it ` +
          `(loaded: ${dataset.summary.fileName}, ${dataset.summary.rows} rows)`,
      );
    }
    config = normalizeConfig(checkpoint.config);
  } else {
    const errors = validateConfig(normalizeConfig(req.config));
    if (errors.length) throw new UserError(new ConfigError(errors).message);
    config = normalizeConfig(req.config);
    // The method's own rules (full fine-tuning: no NF4 base, no target list).
    const methodErrors = methodFor(config.method).validate(config);
    if (methodErrors.length) throw new UserError(new ConfigError(methodErrors).message);
  }
  if (config.quant === 'nf4' && model.quant !== 'nf4') {
    throw new UserError('QLoRA trains over an NF4 base: load the model again with "Base weights: NF4" on the Models screen');
  }
  if (config.quant !== 'nf4' && model.quant === 'nf4') {
    throw new UserError('the model is loaded with NF4 weights: this run was set up for a full-precision base; load the model again in full precision');
  }
  if (config.maxLength > model.config.maxPositions) {
    throw new UserError(`maxLength = ${config.maxLength}: must be ≤ the model's ${model.config.maxPositions} positions`);
  }

  // Full fine-tuning trains f32 weights: an f16 model is loaded again in f32 first (progress on this request).
  if (await prepareWeightsFor(config, model, (done, total) => post({ type: 'progress', id: req.id, stage: 'f32-weights', done, total }))) {
    post({ type: 'model-updated', id: model.id, model: model.summary, message: `${model.summary.name} was loaded again in f32 for full fine-tuning` });
  }

  const { rows, dropped } = truncateRows(dataset.data.rows, config.maxLength);
  if (rows.length === 0) throw new UserError(`no row of ${dataset.summary.fileName} keeps a trained token within ${config.maxLength} tokens`);
  let train: TokenizedRow[] = rows;
  let evalRows: TokenizedRow[] = [];
  if (config.evalSplit > 0) {
    if (rows.length < 2) throw new UserError(`an eval split needs at least 2 usable rows; ${dataset.summary.fileName} has ${rows.length}`);
    ({ train, eval: evalRows } = splitEval(rows, config.evalSplit, config.seed));
  }

  // Continuing a saved adapter: the LoRA starts from its A and B (a resumed run's checkpoint holds its own).
  const from = req.initFromRunId && !req.resume ? await continuationFor(req.initFromRunId, config, model) : null;
  const release = restart?.releaseLock ?? (await tryLockRun(req.runId));
  if (!release) throw new UserError('this run is open in another tab: it can only be trained in one tab at a time');
  let trainer: Trainer;
  try {
    trainer = new Trainer({
      engine: e, transformer: model.transformer, config, train, eval: evalRows, padId: model.tokenizer?.padIdOrFallback ?? 0,
      initial: from?.initial,
      encode: model.tokenizer ? (text) => model.tokenizer!.encode(text) : undefined,
    });
  } catch (err) {
    release();
    throw new UserError(errorMessage(err));
  }
  try {
    if (checkpoint) trainer.restore(checkpoint);
    const now = Date.now();
    const name = record?.name ?? (req.name?.trim() || `${model.summary.name} · r${config.rank} · ${dataset.summary.fileName}`);
    if (record) {
      record = await store.patch(req.runId, { status: 'running', message: '' });
    } else {
      record = {
        id: req.runId,
        name,
        created: now,
        updated: now,
        model: { name: model.summary.name, modelType: model.summary.modelType, quant: model.quant, dtype: model.summary.dtype, parameters: model.summary.parameters },
        dataset: { fileName: dataset.summary.fileName, rows: dataset.summary.rows, format: dataset.summary.format, evalRows: evalRows.length },
        config,
        status: 'running',
        message: '',
        totalSteps: trainer.totalSteps,
        trainableParams: trainer.method.trainableParams,
        curves: [],
        samples: [],
        final: null,
        checkpoint: null,
        adapter: null,
        ...(from && { continuedFrom: from.parent }),
      };
      await store.create(record);
    }
  } catch (err) {
    trainer.dispose();
    release();
    throw err instanceof StorageFullError ? new UserError(err.message) : err;
  }

  const promptIds = req.samplePrompt?.trim() && model.tokenizer
    ? model.tokenizer.encode(req.samplePrompt.trim()).slice(0, Math.max(1, model.config.maxPositions - SAMPLE_NEW_TOKENS))
    : promptFromRow(evalRows[0] ?? train[0], model.config.maxPositions - SAMPLE_NEW_TOKENS);
  const run: ActiveRun = {
    id: req.runId,
    request: req,
    engine: e,
    lost: false,
    record,
    trainer,
    model,
    control: restart?.control ?? 'run',
    pauseMessage: '',
    wake: null,
    pending: [],
    lastFlush: performance.now(),
    promptIds,
    sampleEvery: req.sampleEvery && req.sampleEvery > 0 ? Math.floor(req.sampleEvery) : Math.max(1, Math.round(trainer.totalSteps / DEFAULT_SAMPLES_PER_RUN)),
    lastEvalStep: trainer.history.findLast((h) => h.evalLoss !== undefined)?.step ?? -1,
    lastSampleStep: record.samples.at(-1)?.step ?? -1,
    secondsBefore: record.final?.seconds ?? 0,
    stretchStart: performance.now(),
    releaseLock: release,
  };
  setActiveRun(run);
  if (restart) forgetLostRun(run.id);
  if (dataset.request) {
    // So a tab closed mid-run can load the same model and data again and resume in one click (App.tsx's banner).
    const sources = resumeSourcesFor(run.id, { source: model.source, quant: model.quant, name: model.summary.name }, dataset.request);
    void saveResumeSources(sources).catch((err) => console.warn(`run ${run.id}: its model and dataset sources were not saved`, err));
  }
  post({
    type: 'run-started',
    id: req.id,
    runId: run.id,
    name: record.name,
    totalSteps: trainer.totalSteps,
    trainable: trainer.trainableReport(),
    trainableParams: trainer.method.trainableParams,
    resumedFrom: checkpoint?.step ?? null,
    trainRows: train.length,
    evalRows: evalRows.length,
    config,
  });
  if (trainer.history.length) post({ type: 'metrics', runId: run.id, steps: trainer.history.map((h) => ({ ...h })), totalSteps: trainer.totalSteps });
  const note = dropped > 0 ? `${dropped} rows have no trained token within ${config.maxLength} tokens and are left out.` : undefined;
  post({ type: 'run-state', runId: run.id, state: 'running', message: note });
  void loop(run, post, exclusive);
}

// ---------------------------------------------------------------------------------------------------------------
// The loop

/** A macrotask boundary: queued messages (pause, stop, other requests) run here. */
const yieldToMessages = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

function flush(run: ActiveRun, post: PostTransfer): void {
  if (run.pending.length === 0 || run.lost) return; // a lost run's steps past its checkpoint are trained again
  post({ type: 'metrics', runId: run.id, steps: run.pending.map((m) => ({ ...m })), totalSteps: run.trainer.totalSteps });
  run.pending = [];
  run.lastFlush = performance.now();
}

/** What the user is told when a run's new status could not be stored (a full or failing IndexedDB): the record keeps
 *  its previous status, and a record left "running" is offered as interrupted after a reload — from its checkpoint. */
export function statusWriteFailure(runName: string, status: RunRecord['status'], err: unknown, checkpointStep: number | undefined): string {
  const from = checkpointStep === undefined ? 'from its start (no checkpoint was saved)' : `from its checkpoint at step ${checkpointStep}`;
  // Resuming from a pause: the record still says paused, which a reload shows as it is.
  const afterReload = status === 'running' ? 'is shown paused' : 'is offered as interrupted';
  return `run "${runName}": saving its ${status} state failed (${errorMessage(err)}); nothing else is lost — after a reload the run ${afterReload} and resumes ${from}`;
}

/** Stores the run's new status; a failed write is said, not swallowed (statusWriteFailure). */
async function patchStatus(run: ActiveRun, post: PostTransfer, patch: Partial<RunRecord> & Pick<RunRecord, 'status'>): Promise<void> {
  await db()
    .patch(run.id, patch)
    .catch((err) => post({ type: 'error', message: statusWriteFailure(run.record.name, patch.status, err, run.record.checkpoint?.step) }));
}

function trainingSeconds(run: ActiveRun): number {
  return run.secondsBefore + (performance.now() - run.stretchStart) / 1000;
}

async function loop(run: ActiveRun, post: PostTransfer, exclusive: Exclusive): Promise<void> {
  const t = run.trainer;
  let earlyStop = false;
  try {
    while (!t.done && !earlyStop) {
      if (run.lost) return;
      if (run.control === 'stop') break;
      if (run.control === 'pause') {
        flush(run, post);
        run.secondsBefore = trainingSeconds(run);
        const message = run.pauseMessage;
        // A checkpoint at pause: a closed tab loses nothing of a paused run.
        if (!message) await exclusive(() => saveCheckpoint(run)).catch((err) => run.lost || post({ type: 'error', message: `checkpoint at pause: ${errorMessage(err)}` }));
        if (run.lost) return;
        await patchStatus(run, post, { status: 'paused', message, curves: t.history });
        post({ type: 'run-state', runId: run.id, state: 'paused', message: message || undefined });
        await new Promise<void>((resolve) => (run.wake = resolve));
        run.wake = null;
        if (run.lost) return;
        run.pauseMessage = '';
        run.stretchStart = performance.now();
        if ((run.control as ActiveRun['control']) === 'run') {
          await patchStatus(run, post, { status: 'running', message: '' });
          post({ type: 'run-state', runId: run.id, state: 'running' });
        }
        continue;
      }
      // A step queued before the device went runs after recovery's turn: it must not touch the dead device.
      earlyStop = await exclusive(() => (run.lost ? Promise.resolve(false) : step(run, post)));
      if (performance.now() - run.lastFlush >= METRICS_INTERVAL_MS) flush(run, post);
      await yieldToMessages();
    }
    if (run.lost) return;
    const stopped = run.control === 'stop' && !t.done && !earlyStop;
    const message = earlyStop
      ? `early stopping: eval loss did not improve for ${t.config.earlyStoppingPatience} evaluations (best ${t.bestEvalLoss?.toFixed(4)} at step ${t.bestStep})`
      : stopped ? `stopped at step ${t.step} of ${t.totalSteps}` : '';
    await exclusive(() => finish(run, post, stopped ? 'stopped' : 'finished', message));
  } catch (err) {
    if (run.lost) return;
    await exclusive(() => fail(run, post, err)).catch((inner) => post({ type: 'error', message: errorMessage(inner) }));
  }
}

/** One optimizer step with what falls due after it; returns whether early stopping says to stop. */
async function step(run: ActiveRun, post: PostTransfer): Promise<boolean> {
  const t = run.trainer;
  const m = await t.trainStep();
  let stop = false;
  const every = t.config.evalEvery;
  if (t.evalBatcher && ((every > 0 && m.step % every === 0) || t.done)) {
    stop = (await t.evaluateAndTrack()).stop; // sets m.evalLoss (m is the history's last entry)
    run.lastEvalStep = m.step;
  }
  run.pending.push(m);
  if (m.step % run.sampleEvery === 0) {
    flush(run, post);
    await sample(run, post);
  }
  if (m.step % t.config.checkpointEvery === 0 && !t.done) {
    try {
      await saveCheckpoint(run, post);
    } catch (err) {
      if (!(err instanceof StorageFullError)) throw err;
      // Never a silent loss: the run waits, with the reason, until the user frees space and resumes.
      run.control = 'pause';
      run.pauseMessage = `${err.message}. The run is paused; its last saved checkpoint is ${run.record.checkpoint ? `step ${run.record.checkpoint.step}` : 'none'}.`;
    }
  }
  return stop;
}

async function sample(run: ActiveRun, post: PostTransfer): Promise<void> {
  const tok = run.model.tokenizer;
  if (!tok || run.promptIds.length === 0) return;
  const cfg = run.model.config;
  const maxNewTokens = Math.min(SAMPLE_NEW_TOKENS, cfg.maxPositions - run.promptIds.length);
  if (maxNewTokens < 1) return;
  const stops = [tok.eosId, tok.tokenToId('<|im_end|>')].filter((id): id is number => id !== null && id !== undefined);
  const result = await generate(requireEngine(), run.model.transformer, run.promptIds, {
    maxNewTokens, temperature: 0, stopTokenIds: stops, vocabLimit: Math.min(cfg.vocabSize, tok.vocabSize ?? cfg.vocabSize),
  });
  const s = { step: run.trainer.step, prompt: tok.decode(run.promptIds), text: tok.decode(result.tokens, { skipSpecialTokens: true }) };
  run.lastSampleStep = s.step;
  run.record = { ...run.record, samples: [...run.record.samples, s].slice(-50) };
  post({ type: 'sample', runId: run.id, ...s });
}

/** `post`: where to say that checkpoints of finished runs were pruned to make room (store/retention.ts). */
async function saveCheckpoint(run: ActiveRun, post?: PostTransfer): Promise<void> {
  const ck = await run.trainer.checkpoint();
  const onPruned = post && ((pruned: PruneCandidate[]) => post({ type: 'run-state', runId: run.id, state: 'running', message: prunedNotice(pruned, ck.step) }));
  const pointer = await db().saveCheckpoint(run.id, ck, { curves: ck.history, samples: run.record.samples }, onPruned);
  run.record = { ...run.record, checkpoint: pointer };
}

function lastLoss(history: readonly StepMetrics[], key: 'loss' | 'evalLoss'): number | null {
  for (let i = history.length - 1; i >= 0; i--) if (history[i][key] !== undefined) return history[i][key]!;
  return null;
}

async function finish(run: ActiveRun, post: PostTransfer, status: 'stopped' | 'finished', message: string): Promise<void> {
  const t = run.trainer;
  const store = db();
  try {
    // Evaluation "only at the end" (evalEvery 0) and a stop between evaluations both end with one.
    if (t.evalBatcher && run.lastEvalStep !== t.step && t.step > 0) {
      await t.evaluateAndTrack();
      run.lastEvalStep = t.step;
      const last = t.history.at(-1);
      if (last && !run.pending.includes(last)) run.pending.push(last);
    }
    flush(run, post);
    if (run.lastSampleStep !== t.step && t.step > 0) await sample(run, post).catch((err) => console.warn('sample failed', err));
    const seconds = trainingSeconds(run);
    const which = t.config.earlyStoppingPatience > 0 && t.bestParams ? 'best' : 'current';
    let problem = '';
    try {
      await saveCheckpoint(run);
    } catch (err) {
      problem = ` The checkpoint was not saved: ${errorMessage(err)}.`;
    }
    const processed = t.history.reduce((s, h) => s + (h.tokensPerSecond * h.ms) / 1000, 0);
    const final = {
      steps: t.step,
      trainLoss: lastLoss(t.history, 'loss'),
      evalLoss: which === 'best' ? t.bestEvalLoss : lastLoss(t.history, 'evalLoss'),
      bestStep: t.bestStep,
      seconds,
      tokensPerSecond: seconds > 0 ? processed / seconds : 0,
      peakBytes: t.history.reduce((p, h) => Math.max(p, h.peakBytes), 0),
      exported: which,
    } as const;
    const done = { status, message: message + problem, curves: t.history, samples: run.record.samples, final, totalSteps: t.totalSteps };
    if (t.step > 0) {
      try {
        await store.saveAdapter(run.id, await adapterFiles(run, which), which === 'best' ? (t.bestStep ?? t.step) : t.step, done);
      } catch (err) {
        done.message += ` The adapter was not saved: ${errorMessage(err)}.`;
        await store.patch(run.id, done);
      }
    } else {
      await store.patch(run.id, done);
    }
    post({ type: 'run-state', runId: run.id, state: status, message: done.message || undefined });
    void deleteResumeSources(run.id).catch(() => {}); // only an interrupted run needs them
  } finally {
    end(run);
  }
}

/** How long a failed step waits for the device's lost event: a lost device fails the step's read-back before (or
 *  just after) its lost promise settles, and a loss is recovered, not reported as a failure. */
const LOST_GRACE_MS = 1000;

async function fail(run: ActiveRun, post: PostTransfer, err: unknown): Promise<void> {
  const t = run.trainer;
  if (!(err instanceof TrainingDivergedError)) {
    await Promise.race([run.engine.gpu.lost, new Promise((resolve) => setTimeout(resolve, LOST_GRACE_MS))]);
  }
  if (run.lost) return; // recovery.ts took the run over (its onLost listener ran before the race settled)
  flush(run, post);
  const lost = state.gpu === null || state.gpu !== run.engine.gpu; // a device destroyed on purpose: no recovery
  const ck = run.record.checkpoint;
  const kept = ck ? `the last good checkpoint (step ${ck.step}) is kept` : 'no checkpoint had been saved yet';
  try {
    if (lost) {
      const message = `The GPU device was lost at step ${t.step}: ${errorMessage(err)}. ${ck ? `Resume continues from step ${ck.step}` : 'Nothing to resume from yet'}; load the model again first.`;
      await patchStatus(run, post, { status: 'paused', message, curves: t.history.slice(0, ck?.step ?? 0) });
      post({ type: 'run-state', runId: run.id, state: 'paused', message });
    } else {
      const diagnosis = err instanceof TrainingDivergedError ? err.message : `training failed at step ${t.step + 1}: ${errorMessage(err)}`;
      const message = `${diagnosis.replace(/;? ?the run is paused at its last good checkpoint\.?$/, '')}; ${kept}.`;
      await patchStatus(run, post, { status: 'failed', message, curves: t.history, samples: run.record.samples });
      post({ type: 'run-state', runId: run.id, state: 'failed', message });
    }
  } finally {
    end(run, !lost);
  }
}

/** Frees the run's GPU state (the base model is plain again) and its lock; a lost run's belong to recovery now. */
function end(run: ActiveRun, detach = true): void {
  if (run.lost) return;
  if (activeRun() === run) setActiveRun(null);
  if (detach && state.engine === run.engine) run.trainer.dispose();
  run.releaseLock();
}

// ---------------------------------------------------------------------------------------------------------------
// Control

/** pause / resume / stop: answered at once, not queued behind the steps they control. */
export function handleRunControl(req: RunControl, post: PostTransfer): void {
  const run = activeRun();
  const lostRun = currentLostRun();
  if ((!run || run.id !== req.runId) && lostRun?.runId === req.runId) {
    // The device is being replaced: the run restarts in the state asked for last.
    if (req.type === 'pause' && lostRun.control === 'run') lostRun.control = 'pause';
    if (req.type === 'resume') lostRun.control = 'run';
    if (req.type === 'stop') lostRun.control = 'stop';
    return;
  }
  if (!run || run.id !== req.runId) {
    post({ type: 'error', message: `run ${req.runId} is not training in this tab` });
    return;
  }
  if (req.type === 'pause' && run.control === 'run') run.control = 'pause';
  if (req.type === 'resume') run.control = 'run';
  if (req.type === 'stop') run.control = 'stop';
  if (req.type !== 'pause') run.wake?.();
}
