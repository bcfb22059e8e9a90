// Timing of recorded GPU work: warm-up submissions, then the median of N timed ones, each awaited with
// onSubmittedWorkDone. With the timestamp-query feature the time is the GPU's own (the sum of every compute pass's
// begin→end timestamps); without it, wall time around submit + onSubmittedWorkDone, which also counts the
// submission's overhead (on a real GPU that overhead dominates small kernels, so say which one a number is).
import { BufferUsage } from '../src/gpu/buffers.ts';
import type { Engine } from '../src/gpu/engine.ts';
import { Recorder } from '../src/gpu/kernel.ts';
import { median } from './lib/stats.ts';

export type ClockSource = 'timestamp-query' | 'wall';

export interface Measurement {
  /** Median milliseconds of one repetition of the recorded work. */
  ms: number;
  samplesMs: number[];
  clock: ClockSource;
}

/** Pairs of timestamps one submission can hold: far more compute passes than any benchmarked submission opens. */
const MAX_PASSES = 64;
const QUERY_RESOLVE = 0x0200; // GPUBufferUsage.QUERY_RESOLVE

/** A view of `device` whose command encoders write a begin/end timestamp around every compute pass and copy them
 *  to `readback` when finished, so a Recorder built on it is timed without the Recorder knowing. */
function timestampedDevice(device: GPUDevice, querySet: GPUQuerySet, resolve: GPUBuffer, readback: GPUBuffer, passes: { count: number }): GPUDevice {
  const bindTo = <T extends object>(target: T, overrides: Record<string, unknown>): T =>
    new Proxy(target, {
      get(t, key) {
        if (typeof key === 'string' && key in overrides) return overrides[key];
        const v = Reflect.get(t, key);
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
  return bindTo(device, {
    createCommandEncoder(descriptor?: GPUCommandEncoderDescriptor) {
      const encoder = device.createCommandEncoder(descriptor);
      return bindTo(encoder, {
        beginComputePass(d: GPUComputePassDescriptor = {}) {
          if (passes.count >= MAX_PASSES) throw new Error(`timing: more than ${MAX_PASSES} compute passes in one submission`);
          const i = passes.count++;
          return encoder.beginComputePass({
            ...d,
            timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
          });
        },
        finish(d?: GPUCommandBufferDescriptor) {
          if (passes.count > 0) {
            encoder.resolveQuerySet(querySet, 0, 2 * passes.count, resolve, 0);
            encoder.copyBufferToBuffer(resolve, 0, readback, 0, 16 * passes.count);
          }
          return encoder.finish(d);
        },
      });
    },
  });
}

export interface GpuTimer {
  readonly clock: ClockSource;
  /** Times `record` (which records one repetition of the work into the recorder): `warmup` untimed submissions,
   *  then `reps` timed ones; returns the median. */
  measure(label: string, record: (rec: Recorder) => void, timing: { warmup: number; reps: number }): Promise<Measurement>;
  /** Times several pieces of work whose ratio matters, alternating them submission by submission so that a change
   *  in the machine's load (other processes on a shared CPU) hits each of them alike. */
  measureInterleaved(work: readonly { label: string; record: (rec: Recorder) => void }[], timing: { warmup: number; reps: number }): Promise<Measurement[]>;
  destroy(): void;
}

export function createGpuTimer(e: Engine, useTimestamps = e.gpu.features.has('timestamp-query')): GpuTimer {
  const device = e.device;
  const querySet = useTimestamps ? device.createQuerySet({ type: 'timestamp', count: 2 * MAX_PASSES }) : null;
  const resolve = useTimestamps
    ? device.createBuffer({ size: 16 * MAX_PASSES, usage: QUERY_RESOLVE | BufferUsage.COPY_SRC, label: 'timestamps.resolve' })
    : null;

  /** One timed submission; a validation error in it (a bad binding, say) fails the measurement rather than leaving
   *  a stale output to be compared. */
  async function once(label: string, record: (rec: Recorder) => void): Promise<number> {
    device.pushErrorScope('validation');
    let ms: number;
    try {
      ms = await submitTimed(label, record);
    } finally {
      const error = await device.popErrorScope();
      if (error) throw new Error(`${label}: ${error.message}`);
    }
    return ms;
  }

  async function submitTimed(label: string, record: (rec: Recorder) => void): Promise<number> {
    if (!querySet || !resolve) {
      const rec = e.record(label);
      record(rec);
      await e.pipelines.ready(); // compile errors surface here, outside the timed span
      const t0 = performance.now();
      await rec.submit();
      return performance.now() - t0;
    }
    const readback = device.createBuffer({ size: 16 * MAX_PASSES, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'timestamps.readback' });
    try {
      const passes = { count: 0 };
      const rec = new Recorder(timestampedDevice(device, querySet, resolve, readback, passes), e.pipelines, label);
      record(rec);
      await rec.submit();
      await readback.mapAsync(0x0001 /* GPUMapMode.READ */);
      const stamps = new BigUint64Array(readback.getMappedRange(), 0, 2 * passes.count);
      let ns = 0n;
      for (let i = 0; i < passes.count; i++) ns += stamps[2 * i + 1] - stamps[2 * i];
      readback.unmap();
      return Number(ns) / 1e6;
    } finally {
      readback.destroy();
    }
  }

  return {
    clock: querySet ? 'timestamp-query' : 'wall',
    async measure(label, record, timing) {
      return (await this.measureInterleaved([{ label, record }], timing))[0];
    },
    async measureInterleaved(work, timing) {
      for (let i = 0; i < timing.warmup; i++) for (const w of work) await once(w.label, w.record);
      const samples: number[][] = work.map(() => []);
      for (let i = 0; i < timing.reps; i++) for (const [j, w] of work.entries()) samples[j].push(await once(w.label, w.record));
      const clock: ClockSource = querySet ? 'timestamp-query' : 'wall';
      return samples.map((samplesMs) => ({ ms: median(samplesMs), samplesMs, clock }));
    },
    destroy() {
      querySet?.destroy();
      resolve?.destroy();
    },
  };
}
