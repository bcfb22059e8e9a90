// GPU buffers: allocation through one pool that counts live and peak bytes (the trainer and the UI report the peak),
// reuse of released buffers of the same size and usage, and helpers to upload and read back.

import { gpuCounters } from './counters.ts';

/** GPUBufferUsage's bits, usable before dawn.node has installed the GPUBufferUsage global (fixed by the spec). */
export const BufferUsage = {
  MAP_READ: 0x0001,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
} as const;

export const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST;

/** WebGPU copies and storage bindings work in 4-byte units. */
export function align4(bytes: number): number {
  return Math.ceil(bytes / 4) * 4;
}

export class GpuOutOfMemoryError extends Error {
  override name = 'GpuOutOfMemoryError';
}

export interface MemoryStats {
  liveBytes: number;
  peakBytes: number;
  /** Bytes held in the pool's free lists: allocated on the device, not in use. */
  pooledBytes: number;
}

export class BufferPool {
  private live = 0;
  private peak = 0;
  private pooled = 0;
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly sizes = new WeakMap<GPUBuffer, number>();
  private pendingChecks: Promise<void>[] = [];
  private failure: GpuOutOfMemoryError | null = null;

  constructor(private readonly device: GPUDevice) {}

  /** A buffer of at least `bytes` (rounded up to 4). Counted as live until released. */
  acquire(bytes: number, usage: number = STORAGE_USAGE, label = 'buffer'): GPUBuffer {
    const size = Math.max(4, align4(bytes));
    const key = `${size}:${usage}`;
    const reused = this.free.get(key)?.pop();
    let buffer: GPUBuffer;
    if (reused) {
      this.pooled -= size;
      buffer = reused;
    } else {
      if (size > this.device.limits.maxBufferSize) {
        throw new GpuOutOfMemoryError(
          `${label}: ${size} bytes exceeds this GPU's maxBufferSize (${this.device.limits.maxBufferSize} bytes)`,
        );
      }
      // Allocation failures arrive asynchronously as an out-of-memory error: caught here and raised, naming the
      // buffer, by the next ready() (every submission awaits it) instead of a lost device later.
      this.device.pushErrorScope('out-of-memory');
      gpuCounters(this.device).buffersCreated++;
      buffer = this.device.createBuffer({ size, usage, label });
      this.pendingChecks.push(
        this.device.popErrorScope().then((error) => {
          if (error) {
            this.failure ??= new GpuOutOfMemoryError(
              `the GPU ran out of memory allocating ${label} (${size} bytes; ${this.live} bytes in use): ` +
                'use a smaller model, QLoRA, a shorter max length or a smaller batch',
            );
          }
        }),
      );
      this.sizes.set(buffer, size);
    }
    this.live += size;
    this.peak = Math.max(this.peak, this.live + this.pooled);
    return buffer;
  }

  /** Resolves when every allocation so far is known to have succeeded; throws GpuOutOfMemoryError otherwise. */
  async ready(): Promise<void> {
    const pending = this.pendingChecks;
    this.pendingChecks = [];
    await Promise.all(pending);
    if (this.failure) throw this.failure;
  }

  /** Returns a buffer to the pool for reuse (its contents are not cleared). */
  release(buffer: GPUBuffer): void {
    const size = this.sizes.get(buffer);
    if (size === undefined) throw new Error(`release: ${buffer.label} was not allocated by this pool`);
    this.live -= size;
    this.pooled += size;
    const key = `${size}:${buffer.usage}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buffer);
  }

  /** Destroys every pooled (released) buffer. */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    this.free.clear();
    this.pooled = 0;
  }

  resetPeak(): void {
    this.peak = this.live + this.pooled;
  }

  stats(): MemoryStats {
    return { liveBytes: this.live, peakBytes: this.peak, pooledBytes: this.pooled };
  }
}

export type TypedArray = Float32Array | Uint32Array | Int32Array | Uint16Array | Uint8Array;

/** A storage buffer holding `data`, padded to 4 bytes. */
export function uploadBuffer(pool: BufferPool, device: GPUDevice, data: TypedArray, label = 'upload'): GPUBuffer {
  const buffer = pool.acquire(data.byteLength, STORAGE_USAGE, label);
  writeBuffer(device, buffer, data);
  return buffer;
}

export function writeBuffer(device: GPUDevice, buffer: GPUBuffer, data: TypedArray, byteOffset = 0): void {
  writeQueue(device.queue, buffer, data, byteOffset);
}

/** queue.writeBuffer of a typed array, padded to 4 bytes as WebGPU requires. */
export function writeQueue(queue: GPUQueue, buffer: GPUBuffer, data: TypedArray, byteOffset = 0): void {
  if (data.byteLength % 4 === 0) {
    queue.writeBuffer(buffer, byteOffset, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  } else {
    const padded = new Uint8Array(align4(data.byteLength));
    padded.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    queue.writeBuffer(buffer, byteOffset, padded);
  }
}

/** Copies `bytes` from `buffer` (from `byteOffset`) to the CPU. Waits for all submitted work. */
export async function readBuffer(device: GPUDevice, buffer: GPUBuffer, bytes = buffer.size, byteOffset = 0): Promise<ArrayBuffer> {
  const size = align4(bytes);
  const counters = gpuCounters(device);
  counters.buffersCreated++;
  counters.readbacks++;
  const staging = device.createBuffer({ size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'readback' });
  const encoder = device.createCommandEncoder({ label: 'readback' });
  encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, size);
  device.queue.submit([encoder.finish()]);
  try {
    await staging.mapAsync(0x0001 /* GPUMapMode.READ */);
    return staging.getMappedRange().slice(0, bytes);
  } finally {
    staging.destroy();
  }
}

export async function readF32(device: GPUDevice, buffer: GPUBuffer, count: number, offset = 0): Promise<Float32Array> {
  return new Float32Array(await readBuffer(device, buffer, count * 4, offset * 4));
}
