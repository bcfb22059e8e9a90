// The UI's side of the engine worker: starts it, forwards its events into the store.
import type { EngineEvent, EngineRequest } from '../train/protocol.ts';

export interface EngineClient {
  send(request: EngineRequest): void;
  terminate(): void;
}

export function startEngine(onEvent: (event: EngineEvent) => void): EngineClient {
  const worker = new Worker(new URL('../train/engine-worker.ts', import.meta.url), { type: 'module', name: 'engine' });
  worker.onmessage = (msg: MessageEvent<EngineEvent>) => onEvent(msg.data);
  worker.onerror = (e) => onEvent({ type: 'error', message: `engine worker failed: ${e.message}` });
  return {
    send: (request) => worker.postMessage(request),
    terminate: () => worker.terminate(),
  };
}
