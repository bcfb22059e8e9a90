import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { testEngine } from '../testing-gpu.ts';
import { MATMUL_VARIANTS } from './matmul.ts';
import { chooseMatmulVariant, type TuningCache } from './matmul-tuning.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

function memoryCache(): TuningCache & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return { data, get: (k) => data.get(k), set: (k, v) => void data.set(k, v) };
}

describe('matmul variant choice', () => {
  it('measures every variant once, caches the fastest per adapter, then reuses it', async () => {
    const cache = memoryCache();
    const first = await chooseMatmulVariant(e, cache);
    expect(first.source).toBe('measured');
    expect(Object.keys(first.timingsMs!).sort()).toEqual([...MATMUL_VARIANTS].sort());
    const fastest = Math.min(...Object.values(first.timingsMs!));
    expect(first.timingsMs![first.variant]).toBe(fastest);
    expect([...cache.data.values()]).toEqual([first.variant]);
    expect([...cache.data.keys()][0]).toContain(e.gpu.adapter.description);
    const second = await chooseMatmulVariant(e, cache);
    expect(second).toEqual({ variant: first.variant, source: 'cache' });
  });

  it('obeys an override and rejects an unknown one by name', async () => {
    expect(await chooseMatmulVariant(e, memoryCache(), 'tiled')).toEqual({ variant: 'tiled', source: 'override' });
    await expect(chooseMatmulVariant(e, memoryCache(), 'fast')).rejects.toThrow(/"fast" is not one of naive, tiled, blocked/);
  });
});
