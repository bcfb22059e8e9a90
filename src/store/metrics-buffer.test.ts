import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StepMetrics } from '../train/protocol.ts';
import { chartRows, etaSeconds, MetricsBuffer, smooth } from './metrics-buffer.ts';

const m = (step: number, loss = 2, extra: Partial<StepMetrics> = {}): StepMetrics => ({
  step, epoch: 0, loss, lr: 1e-4, gradNorm: 1, tokensPerSecond: 100, ms: 50, memBytes: 1, peakBytes: 2, ...extra,
});

afterEach(() => vi.useRealTimers());

describe('metrics buffer', () => {
  it('smooths with a debiased EMA: a constant stays constant, the first value is itself', () => {
    expect(smooth([3, 3, 3])).toEqual([3, 3, 3]);
    const s = smooth([1, 0], 0.5);
    expect(s[0]).toBe(1);
    expect(s[1]).toBeCloseTo(1 / 3, 12); // (0.25·1 + 0.5·0) / (1 − 0.25)
  });

  it('appends batches and replaces re-sent steps (a resumed history)', () => {
    const b = new MetricsBuffer();
    b.push([m(1), m(2), m(3)]);
    b.push([m(2, 5), m(3, 5)]);
    expect(b.all.map((x) => [x.step, x.loss])).toEqual([[1, 2], [2, 5], [3, 5]]);
  });

  it('notifies at most once per throttle window, with the latest data', () => {
    vi.useFakeTimers();
    const b = new MetricsBuffer();
    const seen: number[] = [];
    const off = b.subscribe(() => seen.push(b.all.length), 400);
    for (let i = 1; i <= 10; i++) b.push([m(i)]);
    vi.advanceTimersByTime(10);
    expect(seen).toEqual([10]);
    b.push([m(11)]);
    vi.advanceTimersByTime(100);
    expect(seen).toEqual([10]); // still inside the window
    vi.advanceTimersByTime(400);
    expect(seen).toEqual([10, 11]);
    off();
    b.push([m(12)]);
    vi.advanceTimersByTime(1000);
    expect(seen).toEqual([10, 11]);
  });

  it('downsamples long curves but keeps the last step and every evaluated one', () => {
    const steps = Array.from({ length: 5000 }, (_, i) => m(i + 1, 2, (i + 1) % 777 === 0 ? { evalLoss: 1 } : {}));
    const rows = chartRows(steps, 1000);
    expect(rows.length).toBeLessThanOrEqual(1000 + 7);
    expect(rows.at(-1)?.step).toBe(5000);
    expect(rows.filter((r) => r.evalLoss !== undefined).map((r) => r.step)).toEqual([777, 1554, 2331, 3108, 3885, 4662]);
  });

  it('estimates the time left from the recent step time', () => {
    expect(etaSeconds([], 10)).toBeNull();
    expect(etaSeconds([m(1), m(2)], 10)).toBeCloseTo(0.4, 12); // 8 steps × 50 ms
  });
});
