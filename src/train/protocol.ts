// The typed message API between the UI and the engine worker. The worker alone owns the GPU device; the UI only
// sends these requests and receives these events.
import type { GpuAdapterDescription, GpuLimits, WantedFeature } from '../gpu/device.ts';

export interface GpuReport {
  adapter: GpuAdapterDescription;
  limits: GpuLimits;
  features: WantedFeature[];
}

export type EngineRequest = { type: 'init' };

export type EngineEvent =
  | { type: 'gpu-ready'; gpu: GpuReport }
  | { type: 'gpu-unavailable'; message: string }
  | { type: 'gpu-lost'; reason: string; message: string }
  | { type: 'error'; message: string };
