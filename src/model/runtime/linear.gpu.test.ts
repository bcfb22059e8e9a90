// A LoRA-wrapped linear layer over an NF4 base (QLoRA) computes what the same layer computes over the dense weight
// that NF4 decodes to: forward and backward, dropout mask included (the mask is a hash of seed and index, so both
// paths drop the same elements).
import { beforeAll, describe, expect, it } from 'vitest';
import { readF32 } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { uploadNf4 } from '../../gpu/kernels/nf4.ts';
import { dequantizeNf4, quantizeNf4 } from '../../gpu/ref/nf4.ref.ts';
import { mismatches, randomArray } from '../../gpu/ref/testing.ts';
import { testEngine, upload, zeros } from '../../gpu/testing-gpu.ts';
import { countersSince, snapshotCounters } from '../../gpu/counters.ts';
import { NF4_DEQUANT_MIN_ROWS } from '../../gpu/kernels/matmul_nf4.ts';
import { Workspace } from '../../gpu/workspace.ts';
import { kernelChoiceFor, recordLinearBackward, recordLinearForward, type KernelChoice, type Linear } from './linear.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const T = 9;
const IN = 70; // not a multiple of the 64-element NF4 block
const OUT = 21;
const R = 4;

function layer(weight: Linear['weight'], A: Float32Array, B: Float32Array, dropout: number): Linear {
  return {
    path: 'test.q_proj',
    inFeatures: IN,
    outFeatures: OUT,
    weight,
    lora: { rank: R, scale: 2, dropout, seed: 1234, A: upload(e, A), B: upload(e, B), dA: zeros(e, R * IN), dB: zeros(e, OUT * R) },
  };
}

async function run(l: Linear, x: Float32Array, dy: Float32Array) {
  const k = kernelChoiceFor('naive');
  const xb = upload(e, x);
  const y = zeros(e, T * OUT);
  const dx = zeros(e, T * IN);
  const rec = e.record('linear');
  const saved = recordLinearForward(rec, e, k, l, T, xb, y);
  recordLinearBackward(rec, e, k, l, T, xb, saved, upload(e, dy), dx, { accumulateDx: false, accumulateGrads: false });
  await rec.submit();
  return {
    y: await readF32(e.device, y, T * OUT),
    dx: await readF32(e.device, dx, T * IN),
    dA: await readF32(e.device, l.lora!.dA as GPUBuffer, R * IN),
    dB: await readF32(e.device, l.lora!.dB as GPUBuffer, OUT * R),
  };
}

describe('QLoRA linear layer', () => {
  it.each([0, 0.25])('over NF4 equals LoRA over the decoded weight (dropout %s)', async (dropout) => {
    const W = randomArray(OUT * IN, 1, 0.5);
    const q = quantizeNf4(W, { doubleQuant: true });
    const decoded = dequantizeNf4(q);
    const A = randomArray(R * IN, 2, 0.3);
    const B = randomArray(OUT * R, 3, 0.3);
    const x = randomArray(T * IN, 4);
    const dy = randomArray(T * OUT, 5);
    const nf4 = await run(layer({ kind: 'nf4', weight: uploadNf4(e, q, OUT, IN) }, A, B, dropout), x, dy);
    const dense = await run(layer({ kind: 'dense', buffer: upload(e, decoded), elem: 'f32', conv1d: false }, A, B, dropout), x, dy);
    // Same values, different kernels (fused vs separate passes): f32 rounding of sums of ~70 terms.
    const tol = { abs: 2e-5, rel: 2e-5 };
    for (const key of ['y', 'dx', 'dA', 'dB'] as const) expect(mismatches(nf4[key], dense[key], tol), key).toEqual([]);
    if (dropout > 0) {
      // The mask really drops something: without it, dA would differ.
      const kept = await run(layer({ kind: 'nf4', weight: uploadNf4(e, q, OUT, IN) }, A, B, 0), x, dy);
      expect(mismatches(kept.dA, nf4.dA, tol).length).toBeGreaterThan(0);
    }
  });
});

describe('QLoRA linear layer on the dequant route', () => {
  // Two layers of different sizes in one recording, as in a model: the second needs a larger decoded weight than the
  // first, so with a workspace the shared scratch grows between them (the first layer's product must still see its
  // own weight). The route must give the fused kernel's bits: the same decode and the same k order.
  const ROWS = NF4_DEQUANT_MIN_ROWS + 3;
  const SHAPES = [
    { out: OUT, in: IN },
    { out: 37, in: IN },
  ];

  async function runPair(k: KernelChoice, ws: Workspace | undefined) {
    const layers = SHAPES.map((s, i) => {
      const q = quantizeNf4(randomArray(s.out * s.in, 10 + i, 0.5), { doubleQuant: true });
      const l: Linear = {
        path: `test.l${i}`,
        inFeatures: s.in,
        outFeatures: s.out,
        weight: { kind: 'nf4', weight: uploadNf4(e, q, s.out, s.in) },
        lora: { rank: R, scale: 2, dropout: 0, seed: 7, A: upload(e, randomArray(R * s.in, 20 + i, 0.3)), B: upload(e, randomArray(s.out * R, 30 + i, 0.3)), dA: zeros(e, R * s.in), dB: zeros(e, s.out * R) },
      };
      return { l, s, x: upload(e, randomArray(ROWS * s.in, 40 + i)), dy: upload(e, randomArray(ROWS * s.out, 50 + i)), y: zeros(e, ROWS * s.out), dx: zeros(e, ROWS * s.in) };
    });
    const before = snapshotCounters(e.device);
    const rec = e.record('linear-dequant');
    const saved = layers.map((c) => recordLinearForward(rec, e, k, c.l, ROWS, c.x, c.y, false, ws));
    layers.forEach((c, i) => recordLinearBackward(rec, e, k, c.l, ROWS, c.x, saved[i], c.dy, c.dx, { accumulateDx: false, accumulateGrads: false }, ws));
    await rec.submit();
    const dispatches = countersSince(e.device, before).dispatches;
    const out: Float32Array[] = [];
    for (const c of layers) {
      out.push(await readF32(e.device, c.y, ROWS * c.s.out), await readF32(e.device, c.dx, ROWS * c.s.in));
      out.push(await readF32(e.device, c.l.lora!.dA as GPUBuffer, R * c.s.in), await readF32(e.device, c.l.lora!.dB as GPUBuffer, c.s.out * R));
    }
    return { out, dispatches };
  }

  it('gives the fused kernel\'s bits, two layers sharing the workspace\'s scratch', async () => {
    const fused = await runPair(kernelChoiceFor('naive'), undefined);
    const ws = new Workspace(e.buffers);
    const dequant = await runPair({ ...kernelChoiceFor('naive'), nf4: 'dequant' }, ws);
    ws.release();
    dequant.out.forEach((got, i) => expect(mismatches(got, fused.out[i], { abs: 0, rel: 0 }), `output ${i}`).toEqual([]));
    // The route was taken: each of the 4 base products (2 layers, forward and dx) is a decode and a product.
    expect(dequant.dispatches - fused.dispatches).toBe(4);
  });

  it('runs the fused kernel without a workspace (no per-layer scratch held until the submission ends)', async () => {
    const fused = await runPair(kernelChoiceFor('naive'), undefined);
    const dequant = await runPair({ ...kernelChoiceFor('naive'), nf4: 'dequant' }, undefined);
    dequant.out.forEach((got, i) => expect(mismatches(got, fused.out[i], { abs: 0, rel: 0 }), `output ${i}`).toEqual([]));
    expect(dequant.dispatches, 'no decode dispatched').toBe(fused.dispatches);
  });
});
