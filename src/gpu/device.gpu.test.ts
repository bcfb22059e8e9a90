import { describe, expect, it } from 'vitest';
import { BufferPool, readF32, uploadBuffer } from './buffers.ts';
import { nodeGpuEntry, openNodeGpu } from './node.ts';

describe('the device layer (dawn.node)', () => {
  it('asks for the adapter\'s own limits, not WebGPU\'s defaults', async () => {
    const adapter = (await nodeGpuEntry().requestAdapter())!;
    const gpu = await openNodeGpu();
    for (const key of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup'] as const) {
      expect(gpu.limits[key], key).toBe((adapter.limits as unknown as Record<string, number>)[key]);
    }
    expect(gpu.limits.maxBufferSize).toBeGreaterThan(256 * 2 ** 20); // the WebGPU default
    expect(gpu.hasF16).toBe(adapter.features.has('shader-f16'));
    expect(gpu.adapter.name.length).toBeGreaterThan(0);
    gpu.destroy();
  });

  it('can leave shader-f16 off to exercise the f32-only path', async () => {
    const gpu = await openNodeGpu({ disableFeatures: ['shader-f16'] });
    expect(gpu.hasF16).toBe(false);
    expect(gpu.device.features.has('shader-f16')).toBe(false);
    gpu.destroy();
  });

  it('reports device loss as an event with its reason', async () => {
    const gpu = await openNodeGpu();
    const seen: string[] = [];
    gpu.onLost((e) => seen.push(e.reason));
    gpu.destroy();
    const event = await gpu.lost;
    expect(event.reason).toBe('destroyed');
    expect(seen).toEqual(['destroyed']);
  });

  it('pools buffers and counts live and peak bytes', async () => {
    const gpu = await openNodeGpu();
    const pool = new BufferPool(gpu.device);
    const a = uploadBuffer(pool, gpu.device, new Float32Array([1, 2, 3]), 'a'); // 12 bytes
    const b = pool.acquire(10, undefined, 'b'); // rounded up to 12
    expect(pool.stats()).toEqual({ liveBytes: 24, peakBytes: 24, pooledBytes: 0 });
    pool.release(b);
    expect(pool.stats()).toMatchObject({ liveBytes: 12, pooledBytes: 12 });
    expect(pool.acquire(12)).toBe(b); // reused, same size and usage
    pool.release(b);
    pool.trim();
    expect(pool.stats()).toMatchObject({ liveBytes: 12, pooledBytes: 0, peakBytes: 24 });
    expect([...(await readF32(gpu.device, a, 3))]).toEqual([1, 2, 3]);
    expect(() => pool.acquire(gpu.limits.maxBufferSize + 4, undefined, 'huge')).toThrow(/huge.*maxBufferSize/);
    gpu.destroy();
  });
});

describe('recorder', () => {
  it('turns a rejected submission into an error naming the reason', async () => {
    const { createEngine } = await import('./engine.ts');
    const { KernelError } = await import('./kernel.ts');
    const { recordMatmul } = await import('./kernels/matmul.ts');
    const gpu = await openNodeGpu();
    const e = createEngine(gpu);
    const buf = e.buffers.acquire(16);
    const rec = e.record();
    // The same buffer as read-only input and writable output of one dispatch: invalid in WebGPU.
    recordMatmul(rec, { M: 2, N: 2, K: 1 }, { A: buf, B: buf, C: buf }, { variant: 'naive' });
    await expect(rec.submit()).rejects.toThrow(KernelError);
    gpu.destroy();
  });
});

describe('out of GPU memory', () => {
  it('is an error naming the buffer at the next submission, not a lost device', async (ctx) => {
    const { createEngine } = await import('./engine.ts');
    const { GpuOutOfMemoryError } = await import('./buffers.ts');
    const gpu = await openNodeGpu();
    // lavapipe (llvmpipe) backs buffers with overcommitted host memory: its allocations never fail up front, so
    // there is nothing to observe there. SwiftShader, like real GPUs, refuses what it cannot back.
    if (/llvmpipe|lavapipe/i.test(gpu.adapter.description)) {
      gpu.destroy();
      ctx.skip();
    }
    const e = createEngine(gpu);
    // Within maxBufferSize, far beyond what a CPU driver (or any GPU) can back at once.
    const size = Math.floor(Math.min(gpu.limits.maxBufferSize, 2 ** 40) / 4) * 4;
    const held: GPUBuffer[] = [];
    let error: unknown = null;
    for (let i = 0; i < 64 && !error; i++) {
      held.push(e.buffers.acquire(size, undefined, `huge-${i}`));
      await e.buffers.ready().catch((err) => (error = err));
    }
    // 64 × maxBufferSize (up to 256 GiB) is more than any machine this runs on can back.
    expect(error, `${held.length} buffers of ${size} bytes were all allocated`).toBeInstanceOf(GpuOutOfMemoryError);
    expect(String((error as Error).message)).toMatch(/ran out of memory allocating huge-\d+/);
    for (const b of held) b.destroy();
    gpu.destroy();
  });
});
