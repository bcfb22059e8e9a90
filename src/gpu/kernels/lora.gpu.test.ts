import { beforeAll, describe, expect, it } from 'vitest';
import { readBuffer } from '../buffers.ts';
import type { Engine } from '../engine.ts';
import { fromF16Array, toF16Array } from '../ref/elementwise.ref.ts';
import { dropoutHash, dropoutMask, loraBackwardRef, loraForwardRef, type LoraShape } from '../ref/lora.ref.ts';
import { mismatches, randomArray, type Tolerance } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import type { ElementType } from '../wgsl.ts';
import { loraScale } from '../../train/methods/lora-scale.ts';
import {
  LORA_VARIANTS,
  loraPartialsFloats,
  splitPlan,
  recordDropoutHashProbe,
  recordLoraBackward,
  recordLoraBackwardUnfused,
  recordLoraForward,
  recordLoraForwardUnfused,
  type LoraVariant,
} from './lora.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// f32 fma sums of ≤ 33 products of values in [-1, 1) (×s, ×1/(1-p)): error ≈ √K·2⁻²⁴·|terms|, far below this.
const TOL_F32: Tolerance = { abs: 2e-5, rel: 1e-5 };
// f16 W: the reference is given the same f16-rounded W, and f16 → f32 is exact, so the bound is the f32 one.
const TOL_F16: Tolerance = { abs: 2e-5, rel: 1e-5 };

interface Case {
  shape: LoraShape;
  elemW: ElementType;
  dropout: number;
  variant: LoraVariant | 'unfused';
  /** Start y, dx, dA, dB from random values and add into them. */
  accumulate?: boolean;
  seed?: number;
  /** The rank-r products split over k (a partials scratch given). */
  split?: boolean;
}

async function runLora(c: Case) {
  const { T, inFeatures: I, outFeatures: O, r, conv1d } = c.shape;
  const s0 = (c.seed ?? 1) * 10;
  const x = randomArray(T * I, s0);
  // Drawn as [out, in]; stored [in, out] for Conv1D. f16: the reference sees exactly what the kernel reads.
  let W: ArrayLike<number> = randomArray(O * I, s0 + 1);
  if (conv1d) W = transpose(W, O, I);
  if (c.elemW === 'f16') W = fromF16Array(toF16Array(W));
  const bias = randomArray(O, s0 + 2);
  const A = randomArray(r * I, s0 + 3);
  const B = randomArray(O * r, s0 + 4);
  const dy = randomArray(T * O, s0 + 5);
  const start = {
    y: c.accumulate ? randomArray(T * O, s0 + 6) : new Float32Array(T * O),
    dx: c.accumulate ? randomArray(T * I, s0 + 7) : new Float32Array(T * I),
    dA: c.accumulate ? randomArray(r * I, s0 + 8) : new Float32Array(r * I),
    dB: c.accumulate ? randomArray(O * r, s0 + 9) : new Float32Array(O * r),
  };
  const scale = loraScale(16, r);
  const seed = 0x9e3779b9 + (c.seed ?? 0);

  const Wbuf = c.elemW === 'f16' ? upload(e, toF16Array(W)) : upload(e, Float32Array.from(W));
  const fwd = { x: upload(e, x), W: Wbuf, bias: upload(e, bias), A: upload(e, A), B: upload(e, B), h: zeros(e, T * r), y: upload(e, start.y) };
  const bwd = {
    ...fwd,
    dy: upload(e, dy),
    g: zeros(e, T * r),
    dx: upload(e, start.dx),
    dA: upload(e, start.dA),
    dB: upload(e, start.dB),
    scratch: zeros(e, T * I),
  };
  const partials = c.split ? upload(e, randomArray(loraPartialsFloats(c.shape), 77)) : undefined; // garbage in
  const options = { elemW: c.elemW, scale, dropout: c.dropout, seed, accumulate: c.accumulate, accumulateDx: c.accumulate, accumulateGrads: c.accumulate, partials };
  const rec = e.record('lora-test');
  if (c.variant === 'unfused') {
    recordLoraForwardUnfused(rec, c.shape, fwd, { ...options, variant: 'tiled' });
    recordLoraBackwardUnfused(rec, c.shape, bwd, { ...options, variant: 'tiled' });
  } else {
    recordLoraForward(rec, c.shape, fwd, { ...options, variant: c.variant });
    recordLoraBackward(rec, c.shape, bwd, { ...options, variant: c.variant });
  }
  await rec.submit();
  const got = {
    y: await download(e, fwd.y, T * O),
    h: await download(e, fwd.h, T * r),
    dx: await download(e, bwd.dx, T * I),
    dA: await download(e, bwd.dA, r * I),
    dB: await download(e, bwd.dB, O * r),
  };

  const mask = c.dropout > 0 ? dropoutMask(seed, c.dropout, T * I) : undefined;
  const refIn = { ...c.shape, conv1d: !!conv1d, x, W, bias, A, B, scale, mask };
  const fw = loraForwardRef(refIn);
  const bw = loraBackwardRef(refIn, dy);
  const plus = (a: Float64Array, b: Float32Array) => a.map((v, i) => v + b[i]);
  const want = { y: plus(fw.y, start.y), h: fw.h, dx: plus(bw.dx, start.dx), dA: plus(bw.dA, start.dA), dB: plus(bw.dB, start.dB) };
  return { got, want, mask };
}

/** (rows, cols) → (cols, rows). */
function transpose(W: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = W[i * cols + j];
  return t;
}

function expectClose(got: Record<string, Float32Array>, want: Record<string, ArrayLike<number>>, tol: Tolerance, what: string) {
  for (const key of Object.keys(want)) expect(mismatches(got[key], want[key], tol), `${what}: ${key}`).toEqual([]);
}

const SHAPES: LoraShape[] = [1, 4, 8].flatMap((r) => [
  { T: 7, inFeatures: 33, outFeatures: 19, r, conv1d: false },
  { T: 7, inFeatures: 33, outFeatures: 19, r, conv1d: true },
]);

describe.each(LORA_VARIANTS)('fused LoRA %s', (variant) => {
  it.each(SHAPES)('matches the reference at T=$T in=$inFeatures out=$outFeatures r=$r conv1d=$conv1d (f32 W)', async (shape) => {
    for (const dropout of [0, 0.1]) {
      const { got, want, mask } = await runLora({ shape, elemW: 'f32', dropout, variant, seed: shape.r });
      if (mask) expect(mask.filter((v) => v === 0).length).toBeGreaterThan(0); // the mask drops something here
      expectClose(got, want, TOL_F32, `dropout=${dropout}`);
    }
  });

  it.for(SHAPES)('matches the reference with f16 W at r=$r conv1d=$conv1d', async (shape, ctx) => {
    if (!e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    for (const dropout of [0, 0.1]) {
      const { got, want } = await runLora({ shape, elemW: 'f16', dropout, variant, seed: shape.r + 1 });
      expectClose(got, want, TOL_F16, `dropout=${dropout}`);
    }
  });

  it('accumulates into y, dx, dA and dB', async () => {
    for (const conv1d of [false, true]) {
      const shape = { T: 5, inFeatures: 18, outFeatures: 21, r: 4, conv1d };
      const { got, want } = await runLora({ shape, elemW: 'f32', dropout: 0.25, variant, accumulate: true, seed: 3 });
      expectClose(got, want, TOL_F32, `conv1d=${conv1d}`);
    }
  });
});

describe('unfused LoRA (separate matmuls, for the benchmark)', () => {
  it.each([0, 0.1])('matches the reference and the fused kernel, dropout %s', async (dropout) => {
    for (const shape of [SHAPES[2], SHAPES[5]]) {
      const unfused = await runLora({ shape, elemW: 'f32', dropout, variant: 'unfused', seed: 4 });
      expectClose(unfused.got, unfused.want, TOL_F32, 'unfused vs reference');
      const fused = await runLora({ shape, elemW: 'f32', dropout, variant: 'tiled', seed: 4 });
      expectClose(unfused.got, fused.got, TOL_F32, 'unfused vs fused');
    }
  });

  it('accumulates like the fused path', async () => {
    const shape = { T: 6, inFeatures: 17, outFeatures: 9, r: 2 };
    const { got, want } = await runLora({ shape, elemW: 'f32', dropout: 0.3, variant: 'unfused', accumulate: true, seed: 6 });
    expectClose(got, want, TOL_F32, 'unfused accumulate');
  });
});

describe('the rank-r products split over k', () => {
  // T and the feature sizes cross the 64-row, 16-column and 16-k tiles and give several slices of k.
  const shapes: LoraShape[] = [
    { T: 150, inFeatures: 70, outFeatures: 37, r: 4, conv1d: false },
    { T: 33, inFeatures: 129, outFeatures: 200, r: 17, conv1d: true },
    { T: 1, inFeatures: 5, outFeatures: 3, r: 1 },
  ];
  it.each(shapes)('match the reference through the fused and the unfused layer at T=$T in=$inFeatures out=$outFeatures r=$r', async (shape) => {
    expect(splitPlan(shape.T, shape.r, shape.inFeatures).slices).toBeGreaterThanOrEqual(shape.T > 1 ? 2 : 1);
    // The scratch bound holds for every product of the layer (and of longer batches than this one).
    for (const T of [shape.T, 2 * shape.T + 5, 4096]) {
      for (const [M, N, K] of [[T, shape.r, shape.inFeatures], [T, shape.r, shape.outFeatures], [shape.inFeatures, shape.r, T], [shape.outFeatures, shape.r, T]]) {
        expect(splitPlan(M, N, K).slices * M * N).toBeLessThanOrEqual(loraPartialsFloats({ ...shape, T }));
      }
    }
    for (const variant of ['naive', 'unfused'] as const) {
      for (const dropout of [0, 0.2]) {
        const { got, want } = await runLora({ shape, elemW: 'f32', dropout, variant, seed: shape.r, split: true });
        expectClose(got, want, { abs: 5e-5, rel: 2e-5 }, `${variant}, dropout=${dropout}`);
      }
    }
  });

  it('accumulate into dA and dB', async () => {
    const shape = { T: 70, inFeatures: 21, outFeatures: 45, r: 3 };
    const { got, want } = await runLora({ shape, elemW: 'f32', dropout: 0.25, variant: 'naive', accumulate: true, seed: 9, split: true });
    expectClose(got, want, { abs: 5e-5, rel: 2e-5 }, 'split, accumulate');
  });
});

describe('fused LoRA variants', () => {
  it('naive and tiled give the same bits (same k and j order)', async () => {
    const shape = { T: 19, inFeatures: 37, outFeatures: 23, r: 5, conv1d: true };
    const a = await runLora({ shape, elemW: 'f32', dropout: 0.2, variant: 'naive', seed: 8 });
    const b = await runLora({ shape, elemW: 'f32', dropout: 0.2, variant: 'tiled', seed: 8 });
    expectClose(a.got, b.got, { abs: 0, rel: 0 }, 'naive vs tiled');
  });
});

describe('dropout hash', () => {
  it('WGSL and TypeScript agree bit for bit', async () => {
    const n = 4099;
    for (const seed of [0, 12345, 0xfffffffe]) {
      const out = zeros(e, 2 * n);
      const rec = e.record('hash-probe');
      recordDropoutHashProbe(rec, n, seed, out);
      await rec.submit();
      const halves = new Float32Array(await readBuffer(e.device, out, 8 * n));
      const bad: string[] = [];
      for (let i = 0; i < n; i++) {
        const gpu = (halves[2 * i] + halves[2 * i + 1] * 65536) >>> 0;
        if (gpu !== dropoutHash(seed, i) && bad.length < 5) bad.push(`[${i}] wgsl ${gpu} ts ${dropoutHash(seed, i)}`);
      }
      expect(bad, `seed ${seed}`).toEqual([]);
    }
  });
});
