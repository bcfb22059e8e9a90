// How store actions reach the engine worker: main.tsx links the client it started; actions send through it. Kept
// apart from the store so slices stay testable with a fake engine and the store holds only serialisable state.
import type { EngineRequest } from '../train/protocol.ts';

export interface EngineLink {
  send(request: EngineRequest): void;
}

let link: EngineLink | null = null;
let counter = 0;

export function linkEngine(engine: EngineLink | null): void {
  link = engine;
}

/** Sends a request; false when no engine is running (no WebGPU), so the caller can say so. */
export function sendToEngine(request: EngineRequest): boolean {
  if (!link) return false;
  link.send(request);
  return true;
}

/** A fresh request id, e.g. "model-3": events that answer the request echo it. */
export function requestId(kind: string): string {
  counter += 1;
  return `${kind}-${counter}`;
}
