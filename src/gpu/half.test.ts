import { describe, expect, it } from 'vitest';
import {
  bf16ArrayToF16,
  bf16ArrayToF32,
  f16ArrayToF32,
  f32ArrayToF16,
  f32Bits,
  fromBf16Bits,
  fromF16Bits,
  toF16Bits,
} from './half.ts';

/** The value of f16 bits computed from the definition, in float64: an oracle independent of the bit tricks. */
function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

describe('f32 → f16 bits (round to nearest even)', () => {
  const cases: [number, number, string][] = [
    [0, 0x0000, '+0'],
    [-0, 0x8000, '-0'],
    [1, 0x3c00, 'one'],
    [-2, 0xc000, 'minus two'],
    [0.5, 0x3800, 'half'],
    [65504, 0x7bff, 'largest finite'],
    [65519, 0x7bff, 'just below the overflow midpoint'],
    [65520, 0x7c00, 'overflow midpoint rounds to even: inf'],
    [1e6, 0x7c00, 'overflow'],
    [-Infinity, 0xfc00, '-inf'],
    [2 ** -14, 0x0400, 'smallest normal'],
    [2 ** -24, 0x0001, 'smallest subnormal'],
    [2 ** -25, 0x0000, 'half the smallest subnormal: tie to even (0)'],
    [1.5 * 2 ** -25, 0x0001, 'above the tie'],
    [3 * 2 ** -25, 0x0002, 'subnormal tie 1.5 ulp → 2 (even)'],
    [2 ** -14 - 2 ** -25, 0x0400, 'rounds up out of the subnormals into the smallest normal'],
    [1 + 2 ** -11, 0x3c00, 'tie between 1 and 1+2^-10 → even (1)'],
    [1 + 3 * 2 ** -11, 0x3c02, 'tie between 1+2^-10 and 1+2^-9 → even'],
    [1 + 2 ** -11 + 2 ** -20, 0x3c01, 'just above a tie'],
    [1e-10, 0x0000, 'underflow'],
    [0.1, 0x2e66, '0.1'],
    [Math.PI, 0x4248, 'pi'],
  ];
  for (const [x, bits, what] of cases) {
    it(`${what}: ${x} → 0x${bits.toString(16)}`, () => expect(toF16Bits(x)).toBe(bits));
  }

  it('NaN stays NaN with its sign', () => {
    const h = toF16Bits(NaN);
    expect((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0).toBe(true);
    const negNaN = new Float32Array(new Uint32Array([0xffc00001]).buffer)[0];
    const hn = f32ArrayToF16(new Float32Array([negNaN]))[0];
    expect(hn & 0x8000).toBe(0x8000);
    expect(Number.isNaN(fromF16Bits(hn))).toBe(true);
    // A signalling NaN whose payload sits only in the low bits must not become infinity.
    const lowPayload = new Float32Array(new Uint32Array([0x7f800001]).buffer);
    expect(Number.isNaN(fromF16Bits(f32ArrayToF16(lowPayload)[0]))).toBe(true);
  });
});

describe('f16 → f32', () => {
  it('every one of the 65536 bit patterns decodes to its defined value and re-encodes to itself', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const values = f16ArrayToF32(all);
    const back = f32ArrayToF16(values);
    for (let h = 0; h < 65536; h++) {
      const expected = f16Value(h);
      if (Number.isNaN(expected)) {
        expect(Number.isNaN(values[h])).toBe(true);
        continue;
      }
      if (values[h] !== expected || Object.is(values[h], -0) !== Object.is(expected, -0) || back[h] !== h) {
        throw new Error(`0x${h.toString(16)}: got ${values[h]} (re-encoded 0x${back[h].toString(16)}), expected ${expected}`);
      }
    }
  });

  it('is the nearest f16 (ties to even) for random f32 values, checked against a float64 search', () => {
    // Sorted non-negative finite f16 values, for a brute-force nearest search.
    const table = Array.from({ length: 0x7c00 }, (_, h) => f16Value(h));
    let seed = 12345;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < 20000; i++) {
      const x = new Float32Array(new Uint32Array([next() & 0x7fffffff]).buffer)[0];
      if (!Number.isFinite(x)) continue;
      const got = toF16Bits(x);
      let expected: number;
      if (x >= 65520) expected = 0x7c00;
      else {
        let lo = 0;
        let hi = table.length - 1;
        while (hi - lo > 1) {
          const mid = (lo + hi) >> 1;
          if (table[mid] <= x) lo = mid;
          else hi = mid;
        }
        const dLo = x - table[lo];
        const dHi = table[hi] - x;
        expected = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
        if (x >= table[table.length - 1]) expected = 0x7bff;
      }
      if (got !== expected) throw new Error(`${x} (bits 0x${f32Bits(x).toString(16)}): got 0x${got.toString(16)}, expected 0x${expected.toString(16)}`);
    }
  });
});

describe('bf16', () => {
  it('widens to f32 exactly', () => {
    const bits = new Uint16Array([0x3f80, 0xc000, 0x7f80, 0xff80, 0x0001, 0x8000, 0x4049]);
    const values = bf16ArrayToF32(bits);
    expect(Array.from(values.slice(0, 4))).toEqual([1, -2, Infinity, -Infinity]);
    expect(values[4]).toBe(2 ** -133); // the smallest bf16 subnormal
    expect(Object.is(values[5], -0)).toBe(true);
    expect(values[6]).toBe(fromBf16Bits(0x4049));
    expect(values[6]).toBeCloseTo(3.140625, 10);
    expect(Number.isNaN(fromBf16Bits(0x7fc0))).toBe(true);
  });

  it('narrows to f16 with one rounding', () => {
    const cases: [number, number][] = [
      [0x3f80, 0x3c00], // 1
      [0x3f81, 0x3c08], // 1 + 2^-7: exact in f16
      [0x477f, 0x7bf8], // 65280: exact
      [0x4780, 0x7c00], // 65536: overflow
      [0x3380, 0x0001], // 2^-24
      [0x3300, 0x0000], // 2^-25: tie to even
      [0x3340, 0x0001], // 1.5·2^-25
      [0xb380, 0x8001], // -2^-24
      [0x0001, 0x0000], // bf16 subnormal: underflow
    ];
    const out = bf16ArrayToF16(new Uint16Array(cases.map(([b]) => b)));
    expect(Array.from(out).map((h) => h.toString(16))).toEqual(cases.map(([, h]) => h.toString(16)));
  });
});
