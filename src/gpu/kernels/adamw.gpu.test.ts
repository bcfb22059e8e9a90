import { beforeAll, describe, expect, it } from 'vitest';
import { writeBuffer } from '../buffers.ts';
import type { Engine } from '../engine.ts';
import golden from '../ref/golden/adamw.json';
import { adamwStepRef, type AdamwHyper } from '../ref/adamw.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import {
  ADAMW_MAX_PARTIALS,
  ADAMW_STATUS_FLOATS,
  planAdamwLayout,
  recordAdamwStep,
  type AdamwBuffers,
  type AdamwLayout,
  type AdamwTensorSpec,
} from './adamw.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const PAD = 7; // sentinel in the gaps between segments: the update must never touch it

/** Flat params (gaps = PAD) and gradient buffers (gaps = 0) for a layout, from per-tensor arrays. */
function flatten(layout: AdamwLayout, perTensor: ArrayLike<number>[], gap: number): Float32Array {
  const flat = new Float32Array(layout.totalLength).fill(gap);
  layout.segments.forEach((s, i) => flat.set(perTensor[i], s.offset));
  return flat;
}

function allocate(layout: AdamwLayout, params: Float32Array): AdamwBuffers {
  const n = layout.totalLength;
  return {
    params: upload(e, params),
    grads: zeros(e, n),
    m: zeros(e, n),
    v: zeros(e, n),
    segments: upload(e, layout.table),
    partials: zeros(e, ADAMW_MAX_PARTIALS),
    norm: zeros(e, ADAMW_STATUS_FLOATS),
  };
}

async function step(layout: AdamwLayout, b: AdamwBuffers, grads: Float32Array, h: AdamwHyper, t: number, maxGroups?: number) {
  writeBuffer(e.device, b.grads, grads);
  const rec = e.record('adamw-test');
  recordAdamwStep(rec, layout, b, h, t, maxGroups);
  await rec.submit();
}

// f32 against the float64 reference: per-element rounding of a few ops, amplified at most by m/√v's
// normalisation; plus the f32 norm and clip coefficient (relative ~1e-7).
const TOL = { abs: 1e-6, rel: 1e-5 };

async function runAgainstRef(tensors: AdamwTensorSpec[], h: AdamwHyper, steps: number, seed: number, maxGroups?: number) {
  const layout = planAdamwLayout(tensors);
  const p0 = flatten(layout, tensors.map((t, i) => randomArray(t.length, seed + i)), PAD);
  const b = allocate(layout, p0);
  const ref = { params: Float64Array.from(p0), m: new Float64Array(p0.length), v: new Float64Array(p0.length) };
  for (let t = 1; t <= steps; t++) {
    const grads = flatten(layout, tensors.map((x, i) => randomArray(x.length, seed * 100 + t * 10 + i, t)), 0);
    await step(layout, b, grads, h, t, maxGroups);
    const { norm, coefficient } = adamwStepRef(ref, grads, layout.segments, h, t);
    const n = layout.totalLength;
    expect(mismatches(await download(e, b.params, n), ref.params, TOL), `params, step ${t}`).toEqual([]);
    expect(mismatches(await download(e, b.m, n), ref.m, TOL), `m, step ${t}`).toEqual([]);
    expect(mismatches(await download(e, b.v, n), ref.v, TOL), `v, step ${t}`).toEqual([]);
    expect(mismatches(await download(e, b.norm, 2), [norm, coefficient], { abs: 0, rel: 1e-5 }), `norm, step ${t}`).toEqual([]);
    expect(Array.from(await download(e, b.norm, 4)).slice(2), `skip flags, step ${t}`).toEqual([0, 0]);
  }
  return { layout, params: await download(e, b.params, layout.totalLength) };
}

const HYPER: AdamwHyper = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, maxGradNorm: 3 };

describe('adamw', () => {
  it('matches the reference over steps: per-segment lr, no-decay segments, clipping on and off', async () => {
    const tensors: AdamwTensorSpec[] = [
      { name: 'q.lora_A', length: 8 * 33 },
      { name: 'q.lora_B', length: 65 * 8, lrScale: 16 },
      { name: 'bias', length: 7, decay: false },
      { name: 'last', length: 1, lrScale: 0.5 },
    ];
    // Gradients grow with the step (scale t): the norm passes maxGradNorm after the first step.
    const { layout, params } = await runAgainstRef(tensors, HYPER, 3, 1);
    for (let i = 0; i < layout.totalLength; i++) {
      const inside = layout.segments.some((s) => i >= s.offset && i < s.offset + s.length);
      if (!inside) expect(params[i], `gap element ${i}`).toBe(PAD);
    }
    await runAgainstRef(tensors, { ...HYPER, maxGradNorm: 0 }, 2, 2);
  });

  it('reduces over more elements than workgroups and folds a large update into 2-D', async () => {
    const tensors: AdamwTensorSpec[] = [
      { name: 'big', length: 70_001 }, // > 256 partials · 256: the Σg² loop strides
      { name: 'small', length: 3, decay: false },
    ];
    await runAgainstRef(tensors, HYPER, 2, 3, 5);
  });

  it('follows torch.optim.AdamW after clip_grad_norm_ (scripts/golden_adamw.py)', async () => {
    const tensors = golden.tensors.map((t, i) => ({ ...t, length: golden.initial[i].length }));
    const layout = planAdamwLayout(tensors);
    const b = allocate(layout, flatten(layout, golden.initial, PAD));
    for (const s of golden.steps) {
      await step(layout, b, flatten(layout, s.grads, 0), golden.hyper, s.step);
      const got = await download(e, b.params, layout.totalLength);
      const want = flatten(layout, s.params, PAD);
      expect(mismatches(got, want, { abs: 2e-6, rel: 1e-5 }), `step ${s.step}`).toEqual([]);
      expect((await download(e, b.norm, 1))[0]).toBeCloseTo(s.norm, 4);
    }
  });
});

describe('adamw finite guard', () => {
  const tensors: AdamwTensorSpec[] = [
    { name: 'a', length: 37 },
    { name: 'b', length: 5, lrScale: 4 },
  ];

  async function state(b: AdamwBuffers, n: number) {
    return { params: await download(e, b.params, n), m: await download(e, b.m, n), v: await download(e, b.v, n) };
  }

  for (const [what, poison] of [
    ['a NaN gradient', (g: Float32Array) => (g[3] = NaN)],
    ['an infinite gradient', (g: Float32Array) => (g[40] = Infinity)],
    ['a NaN loss', null],
  ] as const) {
    it(`skips the step on ${what}, and every later step until the host clears the sticky flag`, async () => {
      const layout = planAdamwLayout(tensors);
      const n = layout.totalLength;
      const b = allocate(layout, flatten(layout, tensors.map((t, i) => randomArray(t.length, 50 + i)), PAD));
      const grads = (t: number) => flatten(layout, tensors.map((x, i) => randomArray(x.length, 60 + t * 10 + i)), 0);
      await step(layout, b, grads(1), HYPER, 1);
      const good = await state(b, n);

      const bad = grads(2);
      if (poison) poison(bad);
      else writeBuffer(e.device, b.norm, new Float32Array([NaN, 3]), 16); // the loss sum and count slots
      await step(layout, b, bad, HYPER, 2);
      expect(await state(b, n), 'nothing moves on the bad step').toEqual(good);
      expect(Array.from(await download(e, b.norm, 4)).slice(2)).toEqual([1, 1]);

      writeBuffer(e.device, b.norm, new Float32Array([0, 0]), 16);
      await step(layout, b, grads(3), HYPER, 3); // finite, but recorded before the host saw the bad step
      expect(await state(b, n), 'sticky: the next step is skipped too').toEqual(good);

      writeBuffer(e.device, b.norm, new Float32Array(ADAMW_STATUS_FLOATS)); // the host restores and clears
      await step(layout, b, grads(3), HYPER, 2);
      expect(Array.from(await download(e, b.norm, 4)).slice(2)).toEqual([0, 0]);
      expect((await download(e, b.params, n))[0]).not.toBe(good.params[0]);
    });
  }
});

describe('planAdamwLayout', () => {
  it('starts every tensor at a 256-byte boundary and tables lr scale bits and decay', () => {
    const layout = planAdamwLayout([
      { name: 'a', length: 65 },
      { name: 'b', length: 1, lrScale: 16, decay: false },
    ]);
    expect(layout.segments.map((s) => s.offset)).toEqual([0, 128]);
    expect(layout.totalLength).toBe(192);
    expect(Array.from(layout.table.subarray(0, 4))).toEqual([0, 65, 0x3f800000, 1]);
    expect(Array.from(layout.table.subarray(4, 8))).toEqual([128, 1, 0x41800000, 0]);
    expect(() => planAdamwLayout([{ name: 'x', length: 0 }])).toThrow(/x has length 0/);
  });
});
