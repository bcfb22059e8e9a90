// The NF4 quantizer gives bitsandbytes' exact bytes: checked against goldens from scripts/golden_nf4.py (an
// independent torch reimplementation of bitsandbytes' CUDA kernels), then a few properties of its own.
import { describe, expect, it } from 'vitest';
import conv1d from './golden/nf4_conv1d.json';
import doubleQuant from './golden/nf4_double_quant.json';
import normal from './golden/nf4_normal.json';
import odd from './golden/nf4_odd.json';
import tail from './golden/nf4_tail.json';
import ties from './golden/nf4_ties.json';
import zeros from './golden/nf4_zeros.json';
import {
  NF4_CODE,
  conv1dToLinear,
  dequantizeNf4,
  dynamicCode,
  dynamicMap,
  nf4BlockAbsmax,
  nf4Code,
  quantizeNf4,
} from './nf4.ref.ts';
import { rng } from './testing.ts';

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function bytesToHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const f32Hex = (a: Float32Array) => bytesToHex(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
const hexF32 = (hex: string) => new Float32Array(hexToBytes(hex).buffer);

/** scripts/golden_nf4.py's irwin_hall: 4 mulberry32 uniforms − 2 (exact in float64), times scale, to f32. */
function irwinHall(n: number, seed: number, scale: number): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() + next() + next() + next() - 2.0) * scale;
  return out;
}

interface Golden {
  n: number;
  codes_hex: string;
  absmax_f32_hex: string;
}

function expectBytes(input: Float32Array, g: Golden) {
  expect(input.length).toBe(g.n);
  const q = quantizeNf4(input);
  expect(bytesToHex(q.codes)).toBe(g.codes_hex);
  expect(q.scales.doubleQuant).toBe(false);
  if (!q.scales.doubleQuant) expect(f32Hex(q.scales.absmax)).toBe(g.absmax_f32_hex);
}

describe('quantizeNf4 matches bitsandbytes byte for byte (scripts/golden_nf4.py)', () => {
  it.each([
    ['zeros: absmax-0 blocks give codes 0b0000', zeros],
    ['ties: midpoints take the lower code', ties],
    ['tail: a short last block uses its own absmax', tail],
    ['odd: the pad nibble is the code of 0.0', odd],
    ['normal: a random normal weight', normal],
  ] as const)('%s', (_, g) => {
    expectBytes(hexF32(g.input_f32_hex), g);
  });

  it('a GPT-2 Conv1D weight is transposed to [out, in] first', () => {
    const w = hexF32(conv1d.conv1d_weight_f32_hex);
    expectBytes(conv1dToLinear(w, conv1d.conv1d_in, conv1d.conv1d_out), conv1d);
  });

  it('double quantization: dynamic map, offset, absmax codes and second-level absmax', () => {
    const g = doubleQuant;
    const { seed, scale, row } = g.generator;
    const x = irwinHall(g.n, seed, scale).map((v, i) => v * (1 + (Math.floor(i / row) % 7) * 0.5));
    expect(f32Hex(dynamicMap())).toBe(g.dynamic_map_f32_hex);
    const q = quantizeNf4(x, { doubleQuant: true });
    expect(bytesToHex(q.codes)).toBe(g.codes_hex);
    expect(q.scales.doubleQuant).toBe(true);
    if (!q.scales.doubleQuant) return;
    expect(f32Hex(new Float32Array([q.scales.offset]))).toBe(g.offset_f32_hex);
    expect(bytesToHex(q.scales.absmax8)).toBe(g.absmax8_hex);
    expect(f32Hex(q.scales.absmax2)).toBe(g.absmax2_f32_hex);
    // The plain quantization of the same tensor has the golden's first-level absmax.
    const plain = quantizeNf4(x);
    if (!plain.scales.doubleQuant) expect(f32Hex(plain.scales.absmax)).toBe(g.absmax_f32_hex);
  });
});

describe('NF4 properties', () => {
  it('nf4Code is the nearest codebook entry, ties to the lower code', () => {
    const next = rng(3);
    for (let t = 0; t < 20000; t++) {
      const x = Math.fround((next() * 2 - 1) * 1.1);
      let best = 0;
      for (let c = 1; c < 16; c++) if (Math.abs(x - NF4_CODE[c]) < Math.abs(x - NF4_CODE[best])) best = c;
      expect(nf4Code(x), `x=${x}`).toBe(best);
    }
    expect(nf4Code(NaN)).toBe(0);
  });

  it('dynamicCode is the nearest map entry away from ties', () => {
    const map = dynamicMap();
    expect(map.length).toBe(256);
    expect(map[255]).toBe(1);
    for (let i = 1; i < 256; i++) expect(map[i]).toBeGreaterThanOrEqual(map[i - 1]);
    const next = rng(4);
    for (let t = 0; t < 5000; t++) {
      const x = Math.fround(next() * 2 - 1);
      const c = dynamicCode(map, x);
      let nearest = 0;
      for (let j = 1; j < 256; j++) if (Math.abs(x - map[j]) < Math.abs(x - map[nearest])) nearest = j;
      expect(Math.abs(x - map[c]), `x=${x}`).toBe(Math.abs(x - map[nearest]));
    }
  });

  it('dequantizes within half a code gap of the input, plain and double-quantized', () => {
    const x = irwinHall(64 * 300 + 5, 9, 0.1);
    for (const doubleQuantize of [false, true]) {
      const q = quantizeNf4(x, { doubleQuant: doubleQuantize });
      const w = dequantizeNf4(q);
      const absmax = nf4BlockAbsmax(q);
      for (let i = 0; i < x.length; i++) {
        // The widest NF4 gap is 1 − 0.723 ≈ 0.28; with double quantization absmax itself is off by ≲ 1%.
        expect(Math.abs(w[i] - x[i])).toBeLessThanOrEqual(0.16 * absmax[Math.floor(i / 64)] + 0.01 * Math.abs(x[i]));
      }
    }
  });

  it('packs the first element of each pair in the high nibble', () => {
    // 1 → 0b1111, −1 → 0b0000, 0 → 0b0111 and the odd count's pad (0.0) → 0b0111.
    const q = quantizeNf4([1, -1, 0]);
    expect(Array.from(q.codes)).toEqual([0xf0, 0x77]);
  });
});
