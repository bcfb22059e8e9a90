import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { driverName, testEngine } from '../testing-gpu.ts';
import { MATMUL_VARIANTS } from './matmul.ts';
import { MATMUL_NF4_VARIANTS } from './matmul_nf4.ts';
import { chooseMatmulVariant, timeRepeated, tuneKernels, tuningKey, type TuningCache } from './matmul-tuning.ts';
import { recordMatmul } from './matmul.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

function memoryCache(): TuningCache & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return { data, get: (k) => data.get(k), set: (k, v) => void data.set(k, v) };
}

describe(`kernel tuning (${driverName})`, () => {
  it('measures every dense and NF4 variant, caches the fastest per adapter under versioned keys, then reuses them', async () => {
    const cache = memoryCache();
    // One tiny shape and two samples: the test is of the measuring path (compiling every variant is most of its time).
    const first = await tuneKernels(e, cache, {}, { shapes: [{ M: 16, N: 32, K: 32, transB: true }], samples: 2, measureCpu: true });
    expect(first.matmul.source).toBe('measured');
    expect(first.nf4.source).toBe('measured');
    expect(first.matmul.clock).toBe(e.gpu.features.has('timestamp-query') ? 'timestamp-query' : 'wall');
    expect(Object.keys(first.matmul.timingsMs!).sort()).toEqual([...MATMUL_VARIANTS].sort());
    expect(Object.keys(first.nf4.timingsMs!).sort()).toEqual([...MATMUL_NF4_VARIANTS].sort());
    for (const t of [first.matmul, first.nf4]) {
      const times = Object.values(t.timingsMs!) as number[];
      for (const ms of times) expect(ms).toBeGreaterThan(0);
      expect((t.timingsMs as Record<string, number>)[t.variant]).toBe(Math.min(...times));
    }
    expect(Object.fromEntries(cache.data)).toEqual({
      [tuningKey('matmul', e.gpu.adapter)]: first.matmul.variant,
      [tuningKey('matmul_nf4', e.gpu.adapter)]: first.nf4.variant,
    });
    const second = await tuneKernels(e, cache, {}, { measureCpu: true });
    expect(second).toEqual({ matmul: { variant: first.matmul.variant, source: 'cache' }, nf4: { variant: first.nf4.variant, source: 'cache' } });
  });

  it('gives a CPU adapter the naive kernels unmeasured (and a GPU nothing of the kind)', async () => {
    const t = await tuneKernels(e, memoryCache());
    if (e.gpu.adapter.isCpu) expect(t).toEqual({ matmul: { variant: 'naive', source: 'cpu' }, nf4: { variant: 'naive', source: 'cpu' } });
    else expect(t.matmul.source).toBe('measured');
  });

  it('repeats a short dispatch until a sample holds enough work', async () => {
    const shape = { M: 8, N: 8, K: 8, transB: true };
    const A = e.buffers.acquire(256);
    const C = e.buffers.acquire(256);
    const minMs = 5;
    const t = await timeRepeated(e, (rec) => recordMatmul(rec, shape, { A, B: A, C }, { variant: 'naive' }), { minMs, samples: 2 });
    expect(t.ms).toBeGreaterThan(0);
    // A sample holds ≥ minMs of work (the median of two may be a bit less). An 8×8×8 product takes far less than 5 ms,
    // so that is repeated dispatches — unless one dispatch alone took that long on a machine stalled by other work,
    // which made asserting `reps > 1` flaky under CI load.
    expect(t.ms * t.reps).toBeGreaterThanOrEqual(minMs / 1.5);
    e.buffers.release(A);
    e.buffers.release(C);
  });

  it('obeys an override and rejects an unknown one by name', async () => {
    expect(await chooseMatmulVariant(e, memoryCache(), 'tiled')).toEqual({ variant: 'tiled', source: 'override' });
    await expect(chooseMatmulVariant(e, memoryCache(), 'fast')).rejects.toThrow(/"fast" is not one of naive, tiled, blocked/);
  });
});
