import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { geluBackwardRef, geluRef, swigluBackwardRef, swigluRef, UNARY_REF } from '../ref/activation.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { recordActivation, recordActivationBackward, recordGelu, recordGeluBackward, recordSwiglu, recordSwigluBackward } from './activation.ts';
import type { FoldOptions } from './elementwise.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// Odd counts (a lone partial workgroup, one past a workgroup) and a forced fold: ⌈1300/256⌉ = 6 workgroups as 4×2.
const CASES: { n: number; fold: FoldOptions }[] = [
  { n: 1, fold: {} },
  { n: 7, fold: {} },
  { n: 257, fold: {} },
  { n: 1300, fold: { maxWorkgroupsPerDim: 4 } },
];

// Inputs mostly in [-5, 5) with a few far-out values, where a naive tanh or σ would overflow to NaN.
function inputs(n: number, seed: number): Float32Array {
  const x = randomArray(n, seed, 5);
  const far = [30, -30, 100, -100, 1e4, -1e4];
  for (let i = 0; i < Math.min(n - 1, far.length); i++) x[i + 1] = far[i];
  return x;
}

// Forward: f32 exp (a few ulp on these drivers) and a handful of operations: ~1e-6 relative; the absolute part covers
// results near zero. Backward: the derivative is a sum of terms of size ≲ 1 that cancel where it crosses zero
// (GELU' near x ≈ −0.75, SiLU' near g ≈ −1.28), so its error is a few f32 ulp of 1 in absolute terms.
const TOL = { abs: 2e-7, rel: 1e-6 };
const BACKWARD_TOL = { abs: 4e-6, rel: 2e-6 };

describe.each(CASES)('activations at n=$n $fold', ({ n, fold }) => {
  it('GELU forward and backward', async () => {
    const x = inputs(n, n);
    const dy = randomArray(n, n + 1);
    const y = zeros(e, n);
    const dx = zeros(e, n);
    const xb = upload(e, x);
    const rec = e.record();
    recordGelu(rec, n, { x: xb, y }, fold);
    recordGeluBackward(rec, n, { x: xb, dy: upload(e, dy), dx }, fold);
    await rec.submit();
    expect(mismatches(await download(e, y, n), geluRef(x), TOL), 'y').toEqual([]);
    expect(mismatches(await download(e, dx, n), geluBackwardRef(x, dy), BACKWARD_TOL), 'dx').toEqual([]);
  });

  it('SwiGLU forward and backward', async () => {
    const gate = inputs(n, n + 2);
    const up = randomArray(n, n + 3, 2);
    const dout = randomArray(n, n + 4);
    const [gb, ub] = [upload(e, gate), upload(e, up)];
    const out = zeros(e, n);
    const dgate = zeros(e, n);
    const dup = zeros(e, n);
    const rec = e.record();
    recordSwiglu(rec, n, { gate: gb, up: ub, out }, fold);
    recordSwigluBackward(rec, n, { gate: gb, up: ub, dout: upload(e, dout), dgate, dup }, fold);
    await rec.submit();
    const want = swigluBackwardRef(gate, up, dout);
    expect(mismatches(await download(e, out, n), swigluRef(gate, up), TOL), 'out').toEqual([]);
    expect(mismatches(await download(e, dgate, n), want.dgate, BACKWARD_TOL), 'dgate').toEqual([]);
    expect(mismatches(await download(e, dup, n), want.dup, BACKWARD_TOL), 'dup').toEqual([]);
  });

  it.each(['relu', 'silu', 'gelu_new'] as const)('%s by name (bottleneck adapters), forward and backward', async (act) => {
    const x = inputs(n, n + 5);
    if (n > 2) x[n - 1] = 0; // ReLU's kink: 0 in both directions, as torch
    const dy = randomArray(n, n + 6);
    const xb = upload(e, x);
    const y = zeros(e, n);
    const dx = zeros(e, n);
    const rec = e.record();
    recordActivation(rec, act, n, { x: xb, y }, fold);
    recordActivationBackward(rec, act, n, { x: xb, dy: upload(e, dy), dx }, fold);
    await rec.submit();
    expect(mismatches(await download(e, y, n), UNARY_REF[act].forward(x), TOL), 'y').toEqual([]);
    expect(mismatches(await download(e, dx, n), UNARY_REF[act].backward(x, dy), BACKWARD_TOL), 'dx').toEqual([]);
  });
});
