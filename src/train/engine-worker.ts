/// <reference lib="webworker" />
// The engine worker: opens the GPU device and reports it. Training, evaluation and generation run here too, so the
// UI thread never touches the GPU.
import { openBrowserGpu } from '../gpu/browser.ts';
import { GpuUnavailableError, type Gpu } from '../gpu/device.ts';
import type { EngineEvent, EngineRequest } from './protocol.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;
let gpu: Gpu | null = null;

function post(event: EngineEvent): void {
  scope.postMessage(event);
}

async function init(): Promise<void> {
  try {
    gpu ??= await openBrowserGpu();
    gpu.onLost((e) => {
      gpu = null;
      post({ type: 'gpu-lost', reason: e.reason, message: e.message });
    });
    post({ type: 'gpu-ready', gpu: { adapter: gpu.adapter, limits: gpu.limits, features: [...gpu.features] } });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    post(err instanceof GpuUnavailableError ? { type: 'gpu-unavailable', message } : { type: 'error', message });
  }
}

scope.onmessage = (msg: MessageEvent<EngineRequest>) => {
  if (msg.data.type === 'init') void init();
};
