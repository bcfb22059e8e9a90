import { describe, expect, it } from 'vitest';
import { addRef, f16Bits, f16Value, fromF16Array, scaleRef, sumOfSquaresRef, toF16Array, toHalfRef, HALF_MAX } from './elementwise.ref.ts';
import { randomArray } from './testing.ts';

describe('elementwise reference', () => {
  it('adds, scales and sums squares', () => {
    expect(Array.from(addRef([1, 2, -3], [0.5, -2, 4]))).toEqual([1.5, 0, 1]);
    expect(Array.from(scaleRef([1, -2, 0.25], -4))).toEqual([-4, 8, -1]);
    expect(sumOfSquaresRef([3, -4, 12])).toBe(169);
    expect(sumOfSquaresRef([])).toBe(0);
  });
});

describe('binary16 encoding', () => {
  it('encodes known values', () => {
    expect(f16Bits(1)).toBe(0x3c00);
    expect(f16Bits(-2)).toBe(0xc000);
    expect(f16Bits(65504)).toBe(0x7bff);
    expect(f16Bits(0.333251953125)).toBe(0x3555);
    expect(f16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f16Bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(f16Bits(0)).toBe(0);
    expect(f16Bits(-0)).toBe(0x8000);
    expect(f16Bits(65520)).toBe(0x7c00); // halfway past the largest finite rounds to inf
    expect(f16Bits(Infinity)).toBe(0x7c00);
    expect(Number.isNaN(f16Value(f16Bits(NaN)))).toBe(true);
  });

  it('rounds to nearest, ties to even', () => {
    const ulpAt1 = 2 ** -10;
    expect(f16Bits(1 + ulpAt1 / 2)).toBe(0x3c00); // tie → even (mantissa 0)
    expect(f16Bits(1 + (3 * ulpAt1) / 2)).toBe(0x3c02); // tie → even (mantissa 2)
    expect(f16Bits(1 + ulpAt1 * 0.51)).toBe(0x3c01);
    expect(f16Bits(2 - ulpAt1 / 4)).toBe(0x4000); // rounds up into the next binade
    expect(f16Bits(2 ** -25)).toBe(0); // subnormal tie → even (zero)
    expect(f16Bits(3 * 2 ** -25)).toBe(0x0002);
  });

  it('decodes every finite half back to the value it encodes', () => {
    const wrong: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      const v = f16Value(bits);
      if (Number.isFinite(v) && f16Bits(v) !== bits) wrong.push(bits);
    }
    expect(wrong).toEqual([]);
  });

  it('round-trips arrays within half an f16 ulp, and to_half saturates', () => {
    const x = randomArray(1000, 3, 100);
    const back = fromF16Array(toF16Array(x));
    for (let i = 0; i < x.length; i++) {
      expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(2 ** (Math.floor(Math.log2(Math.abs(x[i]))) - 11) + 2 ** -25);
    }
    expect(toHalfRef(1e6)).toBe(HALF_MAX);
    expect(toHalfRef(-70000)).toBe(-HALF_MAX);
  });
});
