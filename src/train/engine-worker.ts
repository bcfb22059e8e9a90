/// <reference lib="webworker" />
// The engine worker: opens the GPU device and reports it, then serves the UI's requests (protocol.ts). Training,
// evaluation and generation run here too, so the UI thread never touches the GPU. Handlers live in ./worker/*; the
// state they share (engine, model, datasets) in ./worker/state.ts. A lost device is replaced by ./worker/recovery.ts.
import { openBrowserGpu } from '../gpu/browser.ts';
import { GpuUnavailableError } from '../gpu/device.ts';
import type { EngineEvent, EngineRequest } from './protocol.ts';
import { handleLoadDataset } from './worker/datasets.ts';
import { handleEvaluate } from './worker/evaluation.ts';
import { handleImportAdapter } from './worker/import.ts';
import { abortMerge, handleMerge } from './worker/merge.ts';
import { abortGeneration, handleGenerate } from './worker/generation.ts';
import { handleLoadModel } from './worker/models.ts';
import { adoptGpu, gpuReport, setDebugMode, simulateDeviceLoss, type RecoveryHost } from './worker/recovery.ts';
import { activeRunId } from './worker/active-run.ts';
import { handleExportAdapter } from './worker/run-export.ts';
import { handleRunControl, handleStartTraining } from './worker/training.ts';
import { errorMessage, state } from './worker/state.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

function post(event: EngineEvent, transfer: Transferable[] = []): void {
  scope.postMessage(event, transfer);
}

const recoveryHost: RecoveryHost = { post, exclusive: (work) => exclusive(work) };

async function init(): Promise<void> {
  try {
    if (!state.gpu) adoptGpu(await openBrowserGpu(), recoveryHost);
    post({ type: 'gpu-ready', gpu: gpuReport(state.gpu!) });
  } catch (err) {
    const message = errorMessage(err);
    post(err instanceof GpuUnavailableError ? { type: 'gpu-unavailable', message } : { type: 'error', message });
  }
}

// Requests that use the GPU or the loaded model run one after another, in arrival order: a dataset dropped while the
// model loads waits for its tokenizer.
let queue: Promise<void> = Promise.resolve();
function serial(id: string, work: () => Promise<void>): void {
  queue = queue.then(work).catch((err) => {
    console.warn(`engine: request ${id} failed`, err); // the stack, for developers; the user sees the message
    post({ type: 'error', id, message: errorMessage(err) });
  });
}
// A training run queues each step here, so requests sent during a run take their turn between steps.
function exclusive<T>(work: () => Promise<T>): Promise<T> {
  const result = queue.then(work);
  queue = result.then(() => {}, () => {});
  return result;
}
/** Loading another model or dataset would pull them from under a run. */
function refuseDuringRun(id: string): boolean {
  const run = activeRunId();
  if (run) post({ type: 'error', id, message: 'a training run is using the model and dataset: stop it (Train screen) before loading another' });
  return run !== null;
}

scope.onmessage = (msg: MessageEvent<EngineRequest>) => {
  const req = msg.data;
  switch (req.type) {
    case 'init':
      void init();
      break;
    case 'load-model':
      if (!refuseDuringRun(req.id)) serial(req.id, () => handleLoadModel(req, post));
      break;
    case 'load-dataset':
      if (!refuseDuringRun(req.id)) {
        serial(req.id, async () => {
          await handleLoadDataset(req, post);
          const loaded = state.datasets.get(req.id);
          if (loaded) loaded.request = req; // for the run's resume sources
        });
      }
      break;
    case 'start-training':
      serial(req.id, () => handleStartTraining(req, post, exclusive));
      break;
    case 'pause':
    case 'resume':
    case 'stop':
      handleRunControl(req, post);
      break;
    case 'export-adapter':
      serial(req.id, () => handleExportAdapter(req, post));
      break;
    case 'import-adapter':
      serial(req.id, () => handleImportAdapter(req, post));
      break;
    case 'merge-model':
    case 'export-trl':
      // Not queued: it reads files, not the GPU, and takes a while; generation and training go on meanwhile.
      void handleMerge(req, post).catch((err) => post({ type: 'error', id: req.id, message: errorMessage(err) }));
      break;
    case 'abort-merge':
      abortMerge(req.id);
      break;
    case 'debug-mode':
      setDebugMode(req.enabled);
      break;
    case 'debug-lose-device':
      simulateDeviceLoss(post); // at once: a loss comes in the middle of whatever runs
      break;
    case 'generate':
      serial(req.id, () => handleGenerate(req, post));
      break;
    case 'abort-generation':
      abortGeneration(req.id); // at once, not behind the generation it ends
      break;
    case 'evaluate':
      serial(req.id, () => handleEvaluate(req, post));
      break;
    default: {
      // Every request type is handled above; this answers a page from another build that sends one this worker lacks.
      const unknown = req as { type: string; id?: string };
      post({ type: 'error', id: unknown.id, message: `the engine cannot handle "${unknown.type}" requests` });
    }
  }
};
