// A lost GPU device, recovered without the user: what lives on the CPU (the tokenized datasets, where the model came
// from, the active run's request and id) survives the loss; a new adapter and device are asked for (a few tries,
// backing off: a driver reset takes a moment), the engine is rebuilt, the model is loaded again from its source (a
// Hub model from the browser's cache, so no network), and the run that was training starts again from its last
// checkpoint in IndexedDB, losing at most checkpointEvery steps.
//
//   device lost ─▶ 'gpu-recovering' ─▶ new device ─▶ model reloaded ─▶ run resumed ─▶ 'gpu-recovered' + run-state running
//                        │ no device after every try                  │ the model cannot be loaded again
//                        └─▶ 'gpu-lost' (reload the page)             └─▶ 'gpu-lost' then 'gpu-recovered' (load it again)
//
// A device this worker destroys on purpose is not recovered, except through 'debug-lose-device', which destroys it
// as a test of this path (honoured only after the page declared debug mode: its URL has ?debug=1).
import { openBrowserGpu } from '../../gpu/browser.ts';
import type { DeviceLostEvent, Gpu } from '../../gpu/device.ts';
import { createEngine } from '../../gpu/engine.ts';
import { idbKeyValue, RunsDb } from '../../store/runs-db.ts';
import type { EngineEvent, EngineRequest, GpuReport } from '../protocol.ts';
import { handleLoadModel } from './models.ts';
import { errorMessage, state, type LoadedModel } from './state.ts';
import { abandonActiveRun, forgetLostRun, type Exclusive, type LostRun, type PostTransfer } from './active-run.ts';
import { handleStartTraining } from './training.ts';

/** Waits between tries for a new device: ~15 s in all, long enough for a driver reset, short enough to give up. */
export const RETRY_DELAYS_MS: readonly number[] = [250, 1000, 2000, 4000, 8000];

export interface RecoveryHost {
  post: PostTransfer;
  /** The worker's GPU queue: recovery takes one turn, so no request runs on a half-rebuilt engine. */
  exclusive: Exclusive;
  /** Opens a new device (the browser's navigator.gpu by default). */
  openGpu?: () => Promise<Gpu>;
  retryDelaysMs?: readonly number[];
  /** Loads the lost model again on the new engine (handleLoadModel by default). */
  reloadModel?: (model: LoadedModel, post: PostTransfer) => Promise<void>;
  /** Starts the lost run again (handleStartTraining with its lock by default). */
  restartRun?: (run: LostRun, resume: boolean, host: RecoveryHost) => Promise<void>;
  /** Writes a run that could not be restarted as paused, with why (IndexedDB by default). */
  pauseRun?: (runId: string, message: string) => Promise<void>;
  sleep?: (ms: number) => Promise<void>;
}

export function gpuReport(gpu: Gpu): GpuReport {
  return { adapter: gpu.adapter, limits: gpu.limits, features: [...gpu.features] };
}

let debugMode = false;
/** The device 'debug-lose-device' destroyed: its 'destroyed' loss is recovered like a driver reset. */
let simulated: Gpu | null = null;

export function setDebugMode(enabled: boolean): void {
  debugMode = enabled;
}

/** 'debug-lose-device': destroys the device as a reset would lose it (only in debug mode). */
export function simulateDeviceLoss(post: PostTransfer): void {
  if (!debugMode) {
    post({ type: 'error', message: 'debug-lose-device is only honoured in debug mode (open the studio with ?debug=1)' });
    return;
  }
  const gpu = state.gpu;
  if (!gpu) {
    post({ type: 'error', message: 'debug-lose-device: there is no GPU device to lose' });
    return;
  }
  console.warn('engine: destroying the GPU device to simulate its loss (debug)');
  simulated = gpu;
  gpu.destroy();
}

/** Makes `gpu` the engine's device and watches it: a loss that is not ours starts recovery. */
export function adoptGpu(gpu: Gpu, host: RecoveryHost): void {
  state.gpu = gpu;
  state.engine = createEngine(gpu);
  state.kernels = null; // chosen again for this adapter (cached per adapter, so quick)
  gpu.onLost((event) => onDeviceLost(gpu, event, host));
}

function onDeviceLost(gpu: Gpu, event: DeviceLostEvent, host: RecoveryHost): void {
  if (state.gpu !== gpu) return; // a device already replaced
  const isSimulated = simulated === gpu;
  simulated = null;
  const model = state.model;
  // The weights, the kernels' pipelines and every buffer went with the device; nothing may touch them now.
  state.gpu = null;
  state.engine = null;
  state.kernels = null;
  state.model = null;
  if (event.reason === 'destroyed' && !isSimulated) {
    state.datasets.clear();
    host.post({ type: 'gpu-lost', reason: event.reason, message: event.message });
    return;
  }
  // Synchronously, so a step failing on the dead device finds its run taken over (training.ts's fail()).
  const run = abandonActiveRun();
  const why = isSimulated ? 'simulated by the debug hook' : event.message || 'the driver reset it';
  // A warning, not an error: the loss is expected to be recovered.
  console.warn(`engine: GPU device lost (${why}); recovering${run ? ` run ${run.runId} from its last checkpoint` : ''}`);
  const reason = isSimulated ? 'simulated' : event.reason;
  host.post({ type: 'gpu-recovering', reason, message: `the device was lost (${why}); asking for a new one` });
  void host.exclusive(() => recover(model, run, why, reason, host)).catch((err) => {
    console.warn('engine: recovery failed', err);
    if (run) forgetLostRun(run.runId);
    run?.releaseLock();
    host.post({ type: 'gpu-lost', reason, message: `the GPU device was lost and could not be recovered: ${errorMessage(err)}. Reload the page.` });
  });
}

async function recover(model: LoadedModel | null, run: LostRun | null, why: string, reason: string, host: RecoveryHost): Promise<void> {
  const gpu = await openWithRetries(host, why, reason);
  if (!gpu) {
    state.datasets.clear();
    const message = `The GPU device was lost (${why}) and no new one came after ${(host.retryDelaysMs ?? RETRY_DELAYS_MS).length + 1} tries.`;
    if (run) await giveUpRun(run, `${message} ${resumeHint(run)}`, host);
    host.post({ type: 'gpu-lost', reason, message: `${message} Reload the page to try again.` });
    return;
  }
  adoptGpu(gpu, host);
  if (model) {
    host.post({ type: 'gpu-recovering', reason, message: `new device on ${gpu.adapter.name}; loading ${model.summary.name} again` });
    try {
      await (host.reloadModel ?? reloadModel)(model, host.post);
    } catch (err) {
      state.model = null;
      state.datasets.clear();
      const message = `${model.summary.name} could not be loaded again on the new device: ${errorMessage(err)}`;
      if (run) await giveUpRun(run, `The GPU device was lost; ${message}. ${resumeHint(run)}`, host);
      // 'gpu-lost' clears the UI's model and dataset; 'gpu-recovered' says the device itself is back.
      host.post({ type: 'gpu-lost', reason, message });
      host.post({ type: 'gpu-recovered', gpu: gpuReport(gpu), message: `A new GPU device is ready, but ${message}: load it again on the Models screen.` });
      return;
    }
  }
  if (!run) {
    host.post({ type: 'gpu-recovered', gpu: gpuReport(gpu), message: `GPU recovered on ${gpu.adapter.name}${model ? `: ${model.summary.name} is loaded again` : ''}.` });
    return;
  }
  const from = run.checkpointStep ?? 0;
  try {
    await (host.restartRun ?? restartRun)(run, run.checkpointStep !== null, host);
  } catch (err) {
    await giveUpRun(run, `The GPU device was lost and "${run.name}" could not be resumed: ${errorMessage(err)}. ${resumeHint(run)}`, host);
    host.post({ type: 'gpu-recovered', gpu: gpuReport(gpu), message: `GPU recovered on ${gpu.adapter.name}, but "${run.name}" could not be resumed: ${errorMessage(err)}` });
    return;
  }
  const redone = run.step > from ? ` (steps ${from + 1}–${run.step} are trained again)` : '';
  const resumed =
    run.checkpointStep === null ? 'restarted from step 0 (no checkpoint had been saved yet)'
    : run.control === 'pause' ? `is back at its checkpoint at step ${from}, paused`
    : run.control === 'stop' ? `stops at its checkpoint at step ${from}`
    : `resumed from step ${from}${redone}`;
  if (run.control === 'run') host.post({ type: 'run-state', runId: run.runId, state: 'running', message: `GPU recovered: ${resumed}.` });
  host.post({ type: 'gpu-recovered', gpu: gpuReport(gpu), message: `GPU recovered on ${gpu.adapter.name}: "${run.name}" ${resumed}.` });
}

async function openWithRetries(host: RecoveryHost, why: string, reason: string): Promise<Gpu | null> {
  const delays = host.retryDelaysMs ?? RETRY_DELAYS_MS;
  const sleep = host.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const open = host.openGpu ?? (() => openBrowserGpu());
  for (let attempt = 0; ; attempt++) {
    try {
      return await open();
    } catch (err) {
      if (attempt >= delays.length) return null;
      const wait = delays[attempt];
      host.post({
        type: 'gpu-recovering',
        reason,
        message: `the device was lost (${why}); no new one yet (${errorMessage(err)}): trying again in ${(wait / 1000).toFixed(wait < 1000 ? 2 : 0)} s (try ${attempt + 2} of ${delays.length + 1})`,
      });
      await sleep(wait);
    }
  }
}

/** The model loaded again under its old request id, so the datasets tokenized for it still belong to it. Its load
 *  events are not forwarded: the UI still shows it loaded (a 'model-loaded' would make the Data screen re-tokenize). */
async function reloadModel(model: LoadedModel, post: PostTransfer): Promise<void> {
  const req: Extract<EngineRequest, { type: 'load-model' }> = { type: 'load-model', id: model.id, source: model.source, quant: model.quant };
  await handleLoadModel(req, (event: EngineEvent) => {
    if ('id' in event && event.id === model.id) return;
    post(event);
  });
}

/** What the user asked for last still holds: a paused run comes back paused, a stopping one stops (and saves). */
async function restartRun(run: LostRun, resume: boolean, host: RecoveryHost): Promise<void> {
  await handleStartTraining({ ...run.request, resume }, host.post, host.exclusive, { releaseLock: run.releaseLock, control: run.control });
}

function resumeHint(run: LostRun): string {
  return run.checkpointStep === null
    ? `No checkpoint had been saved: start "${run.name}" again.`
    : `"${run.name}" is saved at step ${run.checkpointStep}: load the model and the dataset again and resume it from the Runs screen.`;
}

/** A run that cannot go on here: saved as paused (resumable from its checkpoint), its lock released, and shown as
 *  stopped in this tab so its Resume button on the Runs screen is not blocked by a run that no longer trains. */
async function giveUpRun(run: LostRun, message: string, host: RecoveryHost): Promise<void> {
  forgetLostRun(run.runId);
  try {
    await (host.pauseRun ?? pauseInDb)(run.runId, message);
  } catch (err) {
    console.warn(`engine: run ${run.runId} could not be marked paused`, err);
  }
  run.releaseLock();
  host.post({ type: 'run-state', runId: run.runId, state: 'stopped', message });
}

let runsDb: RunsDb | null = null;
async function pauseInDb(runId: string, message: string): Promise<void> {
  runsDb ??= new RunsDb(idbKeyValue());
  await runsDb.patch(runId, { status: 'paused', message });
}
