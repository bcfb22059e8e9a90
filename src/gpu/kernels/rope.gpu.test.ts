import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { ropeRef, type RopeShape } from '../ref/rope.ref.ts';
import { mismatches, randomArray, rng } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { recordRope, ropeInvFreq } from './rope.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// |x| < 1; the kernel's sin/cos are within ~1e-7 of the exact values of the same f32 angle, and each output is two
// f32 products and a sum.
const TOL = { abs: 2e-6, rel: 2e-6 };

const INV_FREQ = {
  plain12: ropeInvFreq({ headDim: 12, theta: 10000 }),
  llama3_64: ropeInvFreq({
    headDim: 64,
    theta: 500000,
    scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  }),
  plain16: ropeInvFreq({ headDim: 16, theta: 10000 }),
};

interface Case extends RopeShape {
  name: string;
  positions: number[];
  invFreq: Float32Array;
}

// Positions restart per packed sequence; the last cases reach 200000 to exercise the sin/cos range reduction.
const CASES: Case[] = [
  { name: 'T=1', T: 1, H: 1, D: 16, positions: [0], invFreq: INV_FREQ.plain16 },
  { name: 'T=7 H=3 D=12, two packed rows', T: 7, H: 3, D: 12, positions: [0, 1, 2, 3, 0, 1, 2], invFreq: INV_FREQ.plain12 },
  { name: 'T=19 H=2 D=64 llama3', T: 19, H: 2, D: 64, positions: Array.from({ length: 19 }, (_, t) => t % 11), invFreq: INV_FREQ.llama3_64 },
  {
    name: 'large positions',
    T: 9,
    H: 2,
    D: 16,
    positions: [0, 1, 4095, 8191, 8192, 65535, 131071, 150000, 200000],
    invFreq: INV_FREQ.plain16,
  },
  {
    name: 'random large positions llama3',
    T: 40,
    H: 1,
    D: 64,
    positions: (() => {
      const r = rng(9);
      return Array.from({ length: 40 }, () => Math.floor(r() * 200000));
    })(),
    invFreq: INV_FREQ.llama3_64,
  },
];

async function runRope(c: Case, opts: { inverse: boolean; inPlace: boolean; seed: number }) {
  const n = c.T * c.H * c.D;
  const x = randomArray(n, opts.seed);
  const y = opts.inPlace ? upload(e, x) : zeros(e, n);
  const rec = e.record('rope-test');
  recordRope(
    rec,
    c,
    { x: opts.inPlace ? undefined : upload(e, x), y, positions: upload(e, Uint32Array.from(c.positions)), invFreq: upload(e, c.invFreq) },
    { inverse: opts.inverse },
  );
  await rec.submit();
  const got = await download(e, y, n);
  const want = ropeRef({ ...c, x, inverse: opts.inverse });
  return { got, want };
}

describe('rope', () => {
  it.each(CASES)('matches the reference: $name', async (c) => {
    for (const inverse of [false, true]) {
      for (const inPlace of [false, true]) {
        const { got, want } = await runRope(c, { inverse, inPlace, seed: c.T * 31 + c.D });
        expect(mismatches(got, want, TOL), `inverse=${inverse} inPlace=${inPlace}`).toEqual([]);
      }
    }
  });
});
