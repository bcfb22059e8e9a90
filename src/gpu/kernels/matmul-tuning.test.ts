// The tuner's choice logic with a fake timer, and its versioned cache keys (no GPU: the engine is a stand-in).
import { describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import {
  chooseMatmulNf4Variant,
  chooseMatmulVariant,
  pickFastest,
  tuneKernels,
  tuningKey,
  tuningShapes,
  TUNING_VERSION,
  type TuneShape,
  type TuningCache,
} from './matmul-tuning.ts';

const adapter = { vendor: 'nvidia', architecture: 'hopper', device: '0x2335', description: 'NVIDIA H200', isCpu: false, name: 'NVIDIA H200' };
const engine = { gpu: { adapter, features: new Set(['timestamp-query']) } } as unknown as Engine;

function memoryCache(initial: Record<string, string> = {}): TuningCache & { data: Map<string, string> } {
  const data = new Map(Object.entries(initial));
  return { data, get: (k) => data.get(k), set: (k, v) => void data.set(k, v) };
}

/** ms per product: a per-variant rate, so bigger shapes take longer, and a log of every call. */
function fakeTimer(msPerGflop: Record<string, number>) {
  const calls: [string, TuneShape][] = [];
  const timer = async (v: string, s: TuneShape) => {
    calls.push([v, s]);
    return ((2 * s.M * s.N * s.K) / 1e9) * msPerGflop[v];
  };
  return { calls, timer };
}

describe('tuning keys', () => {
  it('carry the family, the version and the adapter', () => {
    expect(TUNING_VERSION).toBeGreaterThanOrEqual(2);
    expect(tuningKey('matmul', adapter)).toBe(`matmul-variant:v${TUNING_VERSION}:nvidia:hopper:0x2335:NVIDIA H200`);
    expect(tuningKey('matmul_nf4', adapter)).toBe(`matmul-nf4-variant:v${TUNING_VERSION}:nvidia:hopper:0x2335:NVIDIA H200`);
  });

  it('an unversioned (v1) entry is not reused: the variant is measured again and stored under the new key', async () => {
    const old = 'matmul-variant:nvidia:hopper:0x2335:NVIDIA H200';
    const cache = memoryCache({ [old]: 'tiled' });
    const { timer } = fakeTimer({ naive: 40, tiled: 8, blocked: 3, blocked4: 1 });
    const choice = await chooseMatmulVariant(engine, cache, undefined, { timer });
    expect(choice.source).toBe('measured');
    expect(choice.variant).toBe('blocked4');
    expect(cache.get(tuningKey('matmul', adapter))).toBe('blocked4');
    expect(cache.get(old)).toBe('tiled'); // left alone, never read
    const again = await chooseMatmulVariant(engine, cache, undefined, { timer: () => Promise.reject(new Error('not measured twice')) });
    expect(again).toEqual({ variant: 'blocked4', source: 'cache' });
  });
});

describe('the choice', () => {
  it('times every variant at every model shape and takes the least total', async () => {
    const { calls, timer } = fakeTimer({ naive: 40, tiled: 8, blocked: 3, blocked4: 2.5 });
    const choice = await chooseMatmulVariant(engine, memoryCache(), undefined, { timer });
    const shapes = tuningShapes(false);
    expect(calls).toHaveLength(4 * shapes.length);
    expect(shapes.some((s) => s.M === 512 && s.N === 3072 && s.K === 768)).toBe(true);
    expect(choice.variant).toBe('blocked4');
    const total = shapes.reduce((s, x) => s + (2 * x.M * x.N * x.K) / 1e9, 0);
    expect(choice.timingsMs!.tiled).toBeCloseTo(8 * total, 9);
  });

  it('a variant that wins only the small shape loses to one that wins the large ones', async () => {
    const shapes: TuneShape[] = [
      { M: 8, N: 8, K: 8, transB: true },
      { M: 512, N: 3072, K: 768, transB: true },
    ];
    const timer = async (v: string, s: TuneShape) => (s.M === 8 ? { a: 0.01, b: 0.5 } : { a: 9, b: 2 })[v as 'a' | 'b'];
    expect((await pickFastest(['a', 'b'], shapes, timer)).variant).toBe('b');
    // a tie goes to the earlier variant
    expect((await pickFastest(['a', 'b'], shapes, async () => 1)).variant).toBe('a');
  });

  it('CPU adapters are timed at tiny shapes', () => {
    for (const s of tuningShapes(true)) expect(s.M * s.N * s.K).toBeLessThanOrEqual(32 * 128 * 64);
    for (const s of [...tuningShapes(true), ...tuningShapes(false)]) for (const d of [s.M, s.N, s.K]) expect(d % 4).toBe(0);
  });

  it('NF4 is chosen on its own, under its own key', async () => {
    const cache = memoryCache();
    const { timer } = fakeTimer({ naive: 30, tiled: 4, blocked: 6 });
    const choice = await chooseMatmulNf4Variant(engine, cache, undefined, { timer });
    expect(choice.variant).toBe('tiled');
    expect([...cache.data.keys()]).toEqual([tuningKey('matmul_nf4', adapter)]);
  });

  it('overrides: checked by name; a forced dense variant alone derives NF4 without measuring', async () => {
    const never = { timer: () => Promise.reject(new Error('measured')) };
    await expect(chooseMatmulVariant(engine, memoryCache(), 'fast', never)).rejects.toThrow(/"fast" is not one of naive, tiled, blocked, blocked4/);
    await expect(chooseMatmulNf4Variant(engine, memoryCache(), 'blocked4', never)).rejects.toThrow(/"blocked4" is not one of naive, tiled, blocked, dequant/);
    const t = await tuneKernels(engine, memoryCache(), { matmul: 'blocked4' }, never);
    expect(t).toEqual({ matmul: { variant: 'blocked4', source: 'override' }, nf4: { variant: 'blocked', source: 'derived' } });
    const both = await tuneKernels(engine, memoryCache(), { matmul: 'naive', nf4: 'tiled' }, never);
    expect(both.nf4).toEqual({ variant: 'tiled', source: 'override' });
  });
});
