// The peer on the same adapter in the same process: TensorFlow.js's WebGPU backend (tfjs-core and
// tfjs-backend-webgpu 4.22.0) over dawn.node. tfjs asks navigator.gpu for its own adapter and device, so we give
// it the dawn.node entry our engine uses. Timed with its own profiler (tf.time: per-program GPU timestamps) when
// its device has timestamp-query, else by wall time around the op, a flush and onSubmittedWorkDone.
import type { ClockSource, Measurement } from './timing.ts';
import { median } from './lib/stats.ts';

// Only the surface of tfjs we use, typed here so the bench does not depend on tfjs's type declarations.
interface TfTensor {
  dispose(): void;
  data(): Promise<Float32Array>;
}
interface TfCore {
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  getBackend(): string;
  backend(): unknown;
  version_core: string;
  tensor2d(values: Float32Array, shape: [number, number], dtype: 'float32'): TfTensor;
  matMul(a: TfTensor, b: TfTensor, transposeA: boolean, transposeB: boolean): TfTensor;
  time(f: () => void): Promise<{ kernelMs: number | { error: string }; wallMs: number }>;
}
interface WebGpuBackend {
  device: GPUDevice;
  supportTimestampQuery: boolean;
  adapterInfo?: { vendor?: string; architecture?: string };
  endComputePassEncoder(): void;
  submitQueue(): void;
}

export interface TfjsPeer {
  readonly version: string;
  readonly clock: ClockSource;
  readonly adapter: string;
  /** Times y = a·wᵀ for a (M, K) and w (N, K); returns the median and the product (for a cross-check). */
  matmul(a: Float32Array, w: Float32Array, M: number, N: number, K: number, timing: { warmup: number; reps: number }): Promise<Measurement & { output: Float32Array }>;
}

/** Installs `gpu` as navigator.gpu (Node 20 has no navigator; Node ≥ 21 has one without gpu). */
function exposeNavigatorGpu(gpu: GPU): void {
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav && 'gpu' in nav && (nav as { gpu?: GPU }).gpu === gpu) return;
  Object.defineProperty(globalThis, 'navigator', { value: { ...(nav ?? {}), gpu }, configurable: true, writable: true });
}

/** Opens tfjs on `gpu`, or explains why it cannot (the tables then show "–" for the peer). */
export async function openTfjsPeer(gpu: GPU, wallClock = false): Promise<TfjsPeer | { error: string }> {
  try {
    exposeNavigatorGpu(gpu);
    const tf = (await import('@tensorflow/tfjs-core')) as unknown as TfCore;
    await import('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) return { error: 'tf.setBackend("webgpu") failed' };
    await tf.ready();
    const backend = tf.backend() as WebGpuBackend;
    const clock: ClockSource = backend.supportTimestampQuery && !wallClock ? 'timestamp-query' : 'wall';
    const info = backend.adapterInfo ?? {};
    const adapter = [info.vendor, info.architecture].filter(Boolean).join(' ') || 'unknown';

    async function once(a: TfTensor, w: TfTensor): Promise<number> {
      if (clock === 'timestamp-query') {
        let c: TfTensor | null = null;
        const t = await tf.time(() => {
          c = tf.matMul(a, w, false, true);
        });
        (c as TfTensor | null)?.dispose();
        if (typeof t.kernelMs !== 'number') throw new Error(`tfjs profiler: ${t.kernelMs.error}`);
        return t.kernelMs;
      }
      const t0 = performance.now();
      const c = tf.matMul(a, w, false, true);
      // tfjs batches dispatches into an open pass; close it and submit, as its own readback path does.
      backend.endComputePassEncoder();
      backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
      const ms = performance.now() - t0;
      c.dispose();
      return ms;
    }

    return {
      version: tf.version_core,
      clock,
      adapter,
      async matmul(aData, wData, M, N, K, timing) {
        const a = tf.tensor2d(aData, [M, K], 'float32');
        const w = tf.tensor2d(wData, [N, K], 'float32');
        try {
          for (let i = 0; i < timing.warmup; i++) await once(a, w);
          const samplesMs: number[] = [];
          for (let i = 0; i < timing.reps; i++) samplesMs.push(await once(a, w));
          const c = tf.matMul(a, w, false, true);
          const output = await c.data();
          c.dispose();
          return { ms: median(samplesMs), samplesMs, clock, output };
        } finally {
          a.dispose();
          w.dispose();
        }
      },
    };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}
