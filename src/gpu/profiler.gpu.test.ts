// The step profiler on a real adapter: a profiled recording of a few matmuls gives per-dispatch times and the right
// counts, across two submissions of one step; and GPU timestamps in Node are exact (not rounded to 65,536 ns).
import { beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type Engine } from './engine.ts';
import { recordMatmul } from './kernels/matmul.ts';
import { openNodeGpu } from './node.ts';
import { StepProfiler, type ProfiledDispatch } from './profiler.ts';
import { driverName, testEngine, zeros } from './testing-gpu.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const shape = { M: 64, N: 48, K: 32, transB: true };

function recordThree(engine: Engine, profiler: StepProfiler, buffers: { A: GPUBuffer; B: GPUBuffer; C: GPUBuffer }) {
  const rec = engine.record('profiled', { timing: profiler.timing });
  rec.scope('b0', () => rec.scope('fwd', () => recordMatmul(rec, shape, buffers, { variant: 'naive' })));
  rec.scope('b1', () => rec.scope('fwd', () => recordMatmul(rec, shape, buffers, { variant: 'naive', accumulate: true })));
  rec.copy(buffers.C, 0, buffers.A, 0, 256); // an untimed command between two timed passes
  rec.scope('b1', () => recordMatmul(rec, shape, buffers, { variant: 'tiled' }));
  return rec;
}

describe(`StepProfiler (${driverName})`, () => {
  it('profiles a step of two submissions: counts, families, layers and (with timestamp-query) every dispatch timed', async () => {
    const profiler = new StepProfiler(e);
    const A = zeros(e, shape.M * shape.K, 'A');
    const B = zeros(e, shape.N * shape.K, 'B');
    const C = zeros(e, shape.M * shape.N, 'C');
    try {
      for (const step of [1, 2]) {
        profiler.begin(step);
        const first = recordThree(e, profiler, { A, B, C });
        profiler.cpu.mark('record');
        await first.submit();
        const second = e.record('profiled-2', { timing: profiler.timing });
        recordMatmul(second, shape, { A, B, C }, { variant: 'blocked' });
        await second.submit();
        profiler.cpu.mark('wait');
        const p = await profiler.end();
        expect(p.step).toBe(step);
        expect(p).toMatchObject({ dispatches: 4, passes: 4, submits: 2, readbacks: 0 });
        if (step === 2) expect(p.bind_groups_created).toBe(0); // the same buffers: cached bind groups
        expect(p.kernels.map((k) => [k.name, k.calls]).sort()).toEqual([
          ['matmul.blocked', 1],
          ['matmul.naive', 2],
          ['matmul.tiled', 1],
        ]);
        expect(p.layers.map((l) => [l.name, l.calls])).toEqual([
          ['b0', 1],
          ['b1', 2],
          ['(unscoped)', 1],
        ]);
        expect(p.ops.find((o) => o.name === 'fwd')!.calls).toBe(2);
        expect(p.kernels.every((k) => k.flops === 2 * shape.M * shape.N * shape.K * k.calls)).toBe(true);
        expect(p.cpu.record_ms).toBeGreaterThanOrEqual(0);
        expect(p.cpu.wait_ms).toBeGreaterThan(0);
        const timed = profiler.lastDispatches.filter((d) => d.beginNs !== undefined);
        if (!e.gpu.features.has('timestamp-query')) {
          expect(p.gpu_ms).toBeNull();
          expect(p.untimed).toBe(4);
          continue;
        }
        expect(timed).toHaveLength(4);
        for (const d of timed) expect(d.endNs! - d.beginNs!, d.kernel).toBeGreaterThan(0);
        for (let i = 1; i < timed.length; i++) expect(timed[i].beginNs!).toBeGreaterThanOrEqual(timed[i - 1].endNs!);
        expect(p.gpu_ms).toBeGreaterThan(0);
        expect(p.span_ms!).toBeGreaterThanOrEqual(p.gpu_ms!);
        expect(p.idle_ms).toBeGreaterThanOrEqual(0);
        expect(p.kernels.reduce((s, k) => s + k.share!, 0)).toBeCloseTo(1, 2);
        expect(p.kernels.every((k) => k.gflops! > 0 && k.gbps! > 0)).toBe(true);
      }
    } finally {
      profiler.dispose();
    }
  });

  it('a recorder with its timing outside begin/end runs untimed; end without begin is an error; a step never ended is dropped', async () => {
    const profiler = new StepProfiler(e);
    const C = zeros(e, shape.M * shape.N, 'C');
    const rec = e.record('outside', { timing: profiler.timing });
    recordMatmul(rec, shape, { A: zeros(e, shape.M * shape.K), B: zeros(e, shape.N * shape.K), C }, { variant: 'naive' });
    await rec.submit();
    await expect(profiler.end()).rejects.toThrow(/no step was begun/);
    profiler.begin(1);
    const failed = e.record('failed', { timing: profiler.timing });
    recordMatmul(failed, shape, { A: zeros(e, shape.M * shape.K), B: zeros(e, shape.N * shape.K), C }, { variant: 'naive' }); // never submitted
    profiler.begin(2);
    const p = await profiler.end();
    expect(p).toMatchObject({ step: 2, dispatches: 0, untimed: 0 });
    profiler.dispose();
  });

  it('grows its query capacity after a step that overflowed', async () => {
    if (!e.gpu.features.has('timestamp-query')) return; // nothing to grow without timestamps
    const profiler = new StepProfiler(e, { maxDispatches: 2, growTo: 16 });
    const buffers = { A: zeros(e, shape.M * shape.K), B: zeros(e, shape.N * shape.K), C: zeros(e, shape.M * shape.N) };
    profiler.begin(1);
    await recordThree(e, profiler, buffers).submit();
    const p = await profiler.end();
    expect(p.untimed).toBe(1);
    expect(profiler.maxDispatches).toBeGreaterThanOrEqual(3);
    profiler.begin(2);
    await recordThree(e, profiler, buffers).submit();
    expect((await profiler.end()).untimed).toBe(0);
    profiler.dispose();
  });
});

/** Durations of `n` short dispatches, in ns, as the profiler reads them. */
async function shortDispatchTimes(engine: Engine, n: number): Promise<number[]> {
  const profiler = new StepProfiler(engine);
  const small = { M: 16, N: 16, K: 16, transB: true };
  const A = zeros(engine, 256);
  const B = zeros(engine, 256);
  const C = zeros(engine, 256);
  profiler.begin(1);
  const rec = engine.record('short', { timing: profiler.timing });
  for (let i = 0; i < n; i++) recordMatmul(rec, small, { A, B, C }, { variant: 'naive' });
  await rec.submit();
  await profiler.end();
  profiler.dispose();
  return profiler.lastDispatches.map((d: ProfiledDispatch) => d.endNs! - d.beginNs!);
}

const TICK = 65_536;

describe(`GPU timestamps in Node (${driverName})`, () => {
  it('are exact: a short dispatch is not a whole number of 65,536 ns ticks', async (ctx) => {
    if (!e.gpu.features.has('timestamp-query')) ctx.skip(); // SwiftShader: no timestamp-query
    const times = await shortDispatchTimes(e, 16);
    expect(times.some((ns) => ns % TICK !== 0), `durations ${times.join(', ')} ns`).toBe(true);
  });

  it("are rounded to 65,536 ns by Dawn's default (the flag the Node host turns off)", async (ctx) => {
    if (!e.gpu.features.has('timestamp-query')) ctx.skip();
    const gpu = await openNodeGpu({ quantizeTimestamps: true });
    try {
      const times = await shortDispatchTimes(createEngine(gpu), 16);
      expect(times.every((ns) => ns % TICK === 0), `durations ${times.join(', ')} ns`).toBe(true);
    } finally {
      gpu.destroy();
    }
  });
});
