// What every kernel wrapper needs: the device, its buffer pool and its pipeline cache. Deliberately small: kernels
// live in their own modules (kernels/*.ts) and take an Engine, rather than the Engine knowing every kernel.
import { BufferPool } from './buffers.ts';
import type { Gpu } from './device.ts';
import { PipelineCache, Recorder, type DispatchTiming } from './kernel.ts';

export interface Engine {
  readonly gpu: Gpu;
  readonly device: GPUDevice;
  readonly buffers: BufferPool;
  readonly pipelines: PipelineCache;
  /** A recorder for one command submission (e.g. one training step); `timing` times each dispatch (profiler). */
  record(label?: string, options?: { timing?: DispatchTiming }): Recorder;
}

export function createEngine(gpu: Gpu): Engine {
  const buffers = new BufferPool(gpu.device);
  const pipelines = new PipelineCache(gpu.device);
  return {
    gpu,
    device: gpu.device,
    buffers,
    pipelines,
    record: (label, options) => new Recorder(gpu.device, pipelines, label, { beforeSubmit: () => buffers.ready(), timing: options?.timing }),
  };
}
