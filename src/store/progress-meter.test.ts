import { describe, expect, it } from 'vitest';
import { formatDuration, ProgressMeter } from './progress-meter.ts';

describe('ProgressMeter', () => {
  it('gives the rate over the window and the time left at it', () => {
    const m = new ProgressMeter();
    expect(m.update(0, 0, 1000)).toEqual({ done: 0, total: 1000, rate: 0, etaSeconds: null });
    const s = m.update(2000, 200, 1000); // 100 B/s
    expect(s.rate).toBeCloseTo(100);
    expect(s.etaSeconds).toBeCloseTo(8);
    expect(m.update(3000, 1000, 1000).etaSeconds).toBe(0);
  });

  it('forgets samples older than the window, and starts over when done goes back', () => {
    const m = new ProgressMeter();
    m.update(0, 0, 0);
    m.update(1000, 1000, 0);
    m.update(10_000, 2000, 0);
    // The sample at 0 s has left the 5 s window; the one at 1 s stays as the window's anchor: 1100 bytes in 10 s.
    expect(m.update(11_000, 2100, 0).rate).toBeCloseTo(110);
    expect(m.update(12_000, 50, 0).rate).toBe(0);
  });

  it('formats durations', () => {
    expect(formatDuration(8.4)).toBe('8 s');
    expect(formatDuration(75)).toBe('1 min 15 s');
    expect(formatDuration(3725)).toBe('1 h 2 min');
    expect(formatDuration(null)).toBe('—');
  });
});
