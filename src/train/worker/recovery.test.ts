// Device-loss recovery without a GPU: fake devices that can be lost, a device factory that fails a given number of
// times, and the events the UI gets. (Reloading a real model and resuming a real run is the e2e test's part:
// e2e/device-lost.e2e.ts.)
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DeviceLostEvent, Gpu } from '../../gpu/device.ts';
import type { EngineEvent } from '../protocol.ts';
import { adoptGpu, RETRY_DELAYS_MS, setDebugMode, simulateDeviceLoss, type RecoveryHost } from './recovery.ts';
import { state, type LoadedModel } from './state.ts';

interface FakeGpu extends Gpu {
  lose(event: DeviceLostEvent): void;
}

function fakeGpu(name: string): FakeGpu {
  let settle!: (e: DeviceLostEvent) => void;
  const listeners = new Set<(e: DeviceLostEvent) => void>();
  const lost = new Promise<DeviceLostEvent>((resolve) => (settle = resolve)).then((e) => {
    for (const l of listeners) l(e);
    return e;
  });
  const gpu: FakeGpu = {
    device: {} as GPUDevice,
    adapter: { vendor: 'test', architecture: '', device: '', description: name, isCpu: true, name },
    limits: {} as Gpu['limits'],
    features: new Set(),
    hasF16: false,
    lost,
    onLost(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    destroy() {
      settle({ reason: 'destroyed', message: 'Device was destroyed.' });
    },
    lose(event) {
      settle(event);
    },
  };
  return gpu;
}

/** A host whose device factory fails `failures` times before it hands out `next`. */
function host(failures: number, next: Gpu | null, extra: Partial<RecoveryHost> = {}) {
  const events: EngineEvent[] = [];
  const waits: number[] = [];
  let calls = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const h: RecoveryHost = {
    post: (e) => {
      events.push(e);
      if (e.type === 'gpu-recovered' || e.type === 'gpu-lost') done(); // recovery's last word either way
    },
    exclusive: (work) => work(),
    openGpu: async () => {
      calls++;
      if (calls <= failures || !next) throw new Error(`no adapter (call ${calls})`);
      return next;
    },
    sleep: async (ms) => {
      waits.push(ms);
    },
    ...extra,
  };
  return { h, events, waits, calls: () => calls, finished };
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

const demoModel = { id: 'model-1', summary: { name: 'demo' }, source: { kind: 'bundled', path: 'models/demo' }, quant: 'none' } as unknown as LoadedModel;

afterEach(() => {
  state.gpu = null;
  state.engine = null;
  state.model = null;
  state.kernels = null;
  state.datasets.clear();
  setDebugMode(false);
  vi.restoreAllMocks();
});

describe('device-loss recovery', () => {
  it('asks again with backoff until a device comes, keeping the datasets, and says it recovered', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const first = fakeGpu('first');
    const second = fakeGpu('second');
    const { h, events, waits, finished } = host(2, second);
    adoptGpu(first, h);
    state.datasets.set('dataset-1', { id: 'dataset-1' } as never);
    first.lose({ reason: 'unknown', message: 'driver reset' });
    await finished;
    expect(events.map((e) => e.type)).toEqual(['gpu-recovering', 'gpu-recovering', 'gpu-recovering', 'gpu-recovered']);
    expect(events[0]).toMatchObject({ reason: 'unknown', message: expect.stringContaining('driver reset') });
    expect(events[1]).toMatchObject({ message: expect.stringContaining('try 2 of 6') });
    expect(waits).toEqual(RETRY_DELAYS_MS.slice(0, 2));
    expect(events[3]).toMatchObject({ type: 'gpu-recovered', gpu: { adapter: { name: 'second' } }, message: 'GPU recovered on second.' });
    expect(state.gpu).toBe(second);
    expect(state.engine?.gpu).toBe(second);
    expect(state.datasets.has('dataset-1')).toBe(true);
    // The expected loss is a warning, never a console error.
    expect(console.warn).toHaveBeenCalledWith(expect.stringContaining('GPU device lost (driver reset)'));
  });

  it('gives up after the last try: gpu-lost, the datasets dropped', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const first = fakeGpu('first');
    const { h, events, waits, calls, finished } = host(Infinity, null, { retryDelaysMs: [1, 2] });
    adoptGpu(first, h);
    state.datasets.set('dataset-1', { id: 'dataset-1' } as never);
    first.lose({ reason: 'unknown', message: 'driver reset' });
    await finished;
    expect(calls()).toBe(3);
    expect(waits).toEqual([1, 2]);
    expect(events.at(-1)).toMatchObject({ type: 'gpu-lost', message: expect.stringMatching(/no new one came after 3 tries.*Reload the page/) });
    expect(state.gpu).toBeNull();
    expect(state.datasets.size).toBe(0);
  });

  it('does not recover a device destroyed on purpose', async () => {
    const first = fakeGpu('first');
    const { h, events, calls } = host(0, fakeGpu('second'));
    adoptGpu(first, h);
    first.destroy();
    await flush();
    expect(events).toEqual([{ type: 'gpu-lost', reason: 'destroyed', message: 'Device was destroyed.' }]);
    expect(calls()).toBe(0);
    expect(state.gpu).toBeNull();
  });

  it('honours debug-lose-device only in debug mode, and then recovers the destroyed device', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const first = fakeGpu('first');
    const second = fakeGpu('second');
    const { h, events, finished } = host(0, second);
    adoptGpu(first, h);
    simulateDeviceLoss(h.post);
    await flush();
    expect(events).toEqual([{ type: 'error', message: expect.stringContaining('?debug=1') }]);
    expect(state.gpu).toBe(first);

    setDebugMode(true);
    simulateDeviceLoss(h.post);
    await finished;
    expect(events.slice(1).map((e) => e.type)).toEqual(['gpu-recovering', 'gpu-recovered']);
    expect(events[1]).toMatchObject({ reason: 'simulated', message: expect.stringContaining('simulated by the debug hook') });
    expect(state.gpu).toBe(second);
  });

  it('loads the lost model again from its source on the new engine', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const first = fakeGpu('first');
    const second = fakeGpu('second');
    const reloaded: { id: string; engineGpu: Gpu | undefined; modelBefore: LoadedModel | null }[] = [];
    const { h, events, finished } = host(0, second, {
      reloadModel: async (model) => {
        reloaded.push({ id: model.id, engineGpu: state.engine?.gpu, modelBefore: state.model });
        state.model = model;
      },
    });
    adoptGpu(first, h);
    state.model = demoModel;
    first.lose({ reason: 'unknown', message: 'driver reset' });
    await finished;
    // On the new engine, the dead model dropped first (its weights went with the device).
    expect(reloaded).toEqual([{ id: 'model-1', engineGpu: second, modelBefore: null }]);
    expect(events.map((e) => e.type)).toEqual(['gpu-recovering', 'gpu-recovering', 'gpu-recovered']);
    expect(events[1]).toMatchObject({ message: 'new device on second; loading demo again' });
    expect(events[2]).toMatchObject({ message: 'GPU recovered on second: demo is loaded again.' });
  });

  it('a model that cannot be loaded again: gpu-lost (the UI drops it), then the device is ready', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const first = fakeGpu('first');
    const { h, events, finished } = host(0, fakeGpu('second'), {
      reloadModel: async () => {
        throw new Error('the folder is gone');
      },
    });
    adoptGpu(first, h);
    state.model = demoModel;
    state.datasets.set('dataset-1', { id: 'dataset-1' } as never);
    first.lose({ reason: 'unknown', message: 'driver reset' });
    await finished;
    await flush();
    expect(events.map((e) => e.type)).toEqual(['gpu-recovering', 'gpu-recovering', 'gpu-lost', 'gpu-recovered']);
    expect(events[2]).toMatchObject({ message: expect.stringContaining('demo could not be loaded again on the new device: the folder is gone') });
    expect(events[3]).toMatchObject({ message: expect.stringContaining('load it again on the Models screen') });
    expect(state.model).toBeNull();
    expect(state.datasets.size).toBe(0);
    expect(state.gpu?.adapter.name).toBe('second');
  });
});
