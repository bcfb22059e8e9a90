import { describe, expect, it } from 'vitest';
import { axisTicks, niceStep, stepDecimals, tickFormat } from './axis-ticks.ts';

/** A seeded generator (mulberry32), so a failure names a case that can be run again. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const labels = (values: number[]) => {
  const axis = axisTicks(values)!;
  return axis.ticks.map(axis.format);
};

describe('axis ticks', () => {
  it('labels a loss curve that moves little with the digits that tell its ticks apart', () => {
    // What the chart showed: three significant digits printed 13.28 and 13.30 both as "13.3".
    expect(String(+(13.28).toPrecision(3))).toBe(String(+(13.3).toPrecision(3)));
    const axis = axisTicks([13.281, 13.305, 13.337])!;
    expect(axis.step).toBe(0.02);
    expect(axis.ticks.map(axis.format)).toEqual(['13.28', '13.30', '13.32', '13.34']);
    expect(axis.domain).toEqual([13.28, 13.34]);
  });

  it('picks round steps and their decimals', () => {
    expect(niceStep(4, 5)).toBe(1);
    expect(niceStep(0.06, 5)).toBeCloseTo(0.02, 15);
    expect(niceStep(9, 5)).toBe(2.5);
    expect(niceStep(15, 5)).toBe(5);
    expect(stepDecimals(5)).toBe(0);
    expect(stepDecimals(0.25)).toBe(2);
    expect(stepDecimals(0.02)).toBe(2);
    expect(stepDecimals(2e-5)).toBe(5);
    expect(labels([0.2, 3.9])).toEqual(['0', '1', '2', '3', '4']);
    expect(labels([1.1, 9.7])).toEqual(['0.0', '2.5', '5.0', '7.5', '10.0']);
    expect(labels([120, 480])).toEqual(['100', '200', '300', '400', '500']);
  });

  it('prints small and large values in exponent form, still distinct', () => {
    // A learning rate warming up to 2e-4.
    expect(labels([1e-5, 2e-4])).toEqual(['0', '5.0e-5', '1.0e-4', '1.5e-4', '2.0e-4']);
    expect(labels([1.0001e-4, 1.0009e-4])).toEqual(['1.0000e-4', '1.0002e-4', '1.0004e-4', '1.0006e-4', '1.0008e-4', '1.0010e-4']);
    expect(labels([2.1e7, 2.9e7])).toEqual(['2.0e+7', '2.2e+7', '2.4e+7', '2.6e+7', '2.8e+7', '3.0e+7']);
  });

  it('spans a flat curve, negative values and nothing', () => {
    expect(labels([2.5, 2.5])).toEqual(['2.4', '2.5', '2.6']);
    expect(labels([0, 0])).toEqual(['-0.25', '0.00', '0.25']);
    expect(labels([-0.3, 0.7])).toEqual(['-0.50', '-0.25', '0.00', '0.25', '0.50', '0.75']);
    expect(axisTicks([])).toBeNull();
    expect(axisTicks([undefined, NaN, Infinity, null])).toBeNull();
    expect(axisTicks([undefined, 3, NaN])!.ticks.length).toBeGreaterThan(1);
  });

  it('never prints two ticks alike, and each label reads back as its tick, over random ranges', () => {
    const random = rng(15);
    for (let i = 0; i < 2000; i++) {
      const scale = 10 ** Math.floor(random() * 16 - 8);
      const lo = (random() * 2 - 1) * 100 * scale;
      const width = 10 ** (random() * 8 - 6) * Math.abs(lo || scale);
      const axis = axisTicks([lo, lo + width * random(), lo + width], 2 + Math.floor(random() * 8))!;
      const printed = axis.ticks.map(axis.format);
      const where = `case ${i}: [${lo}, ${lo + width}] → ${printed.join(' ')}`;
      expect(new Set(printed).size, where).toBe(printed.length);
      expect(axis.ticks[0], where).toBeLessThanOrEqual(lo);
      expect(axis.ticks.at(-1), where).toBeGreaterThanOrEqual(lo + width);
      printed.forEach((p, k) => expect(Math.abs(Number(p) - axis.ticks[k]), where).toBeLessThanOrEqual(axis.step / 2));
    }
  });

  it('adds digits when the step alone would print two ticks alike', () => {
    // Ticks a caller passes that are closer than their step says: the formatter still keeps them apart.
    expect([1.001, 1.002].map(tickFormat([1.001, 1.002], 0.1))).toEqual(['1.001', '1.002']);
  });
});
