// What the engine asked of the GPU API, counted per device: the profiler reports these per training step, and the
// tests check that a steady-state step creates nothing (no buffer, no bind group) and reads back at most once.
// A plain object per device rather than a global, so two devices (tests open several) never mix their counts.

export interface GpuCounters {
  dispatches: number;
  /** Compute passes begun (one per run of dispatches between copies; one per dispatch when profiling). */
  passes: number;
  submits: number;
  buffersCreated: number;
  bindGroupsCreated: number;
  /** GPU→CPU reads (mapAsync of a staging or read-back buffer). */
  readbacks: number;
}

const byDevice = new WeakMap<GPUDevice, GpuCounters>();

/** The live counters of `device` (created at zero on first use). Callers diff two snapshots. */
export function gpuCounters(device: GPUDevice): GpuCounters {
  let c = byDevice.get(device);
  if (!c) {
    c = { dispatches: 0, passes: 0, submits: 0, buffersCreated: 0, bindGroupsCreated: 0, readbacks: 0 };
    byDevice.set(device, c);
  }
  return c;
}

export function snapshotCounters(device: GPUDevice): GpuCounters {
  return { ...gpuCounters(device) };
}

/** after − before, field by field. */
export function countersSince(device: GPUDevice, before: GpuCounters): GpuCounters {
  const now = gpuCounters(device);
  return {
    dispatches: now.dispatches - before.dispatches,
    passes: now.passes - before.passes,
    submits: now.submits - before.submits,
    buffersCreated: now.buffersCreated - before.buffersCreated,
    bindGroupsCreated: now.bindGroupsCreated - before.bindGroupsCreated,
    readbacks: now.readbacks - before.readbacks,
  };
}
