// What every kernel wrapper needs: the device, its buffer pool and its pipeline cache. Deliberately small: kernels
// live in their own modules (kernels/*.ts) and take an Engine, rather than the Engine knowing every kernel.
import { BufferPool } from './buffers.ts';
import type { Gpu } from './device.ts';
import { PipelineCache, Recorder } from './kernel.ts';

export interface Engine {
  readonly gpu: Gpu;
  readonly device: GPUDevice;
  readonly buffers: BufferPool;
  readonly pipelines: PipelineCache;
  /** A recorder for one command submission (e.g. one training step). */
  record(label?: string): Recorder;
}

export function createEngine(gpu: Gpu): Engine {
  const buffers = new BufferPool(gpu.device);
  const pipelines = new PipelineCache(gpu.device);
  return {
    gpu,
    device: gpu.device,
    buffers,
    pipelines,
    record: (label) => new Recorder(gpu.device, pipelines, label, () => buffers.ready()),
  };
}
