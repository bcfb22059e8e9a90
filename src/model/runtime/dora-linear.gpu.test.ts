// A DoRA-wrapped linear layer (Linear.dora) against the float64 reference written from PEFT's forward
// (src/gpu/ref/dora.ref.ts, whose backward is checked against finite differences in dora.ref.test.ts): forward y and
// the detached norm, dx, dA, dB and dm, on nn.Linear and Conv1D layouts and over an NF4 base (the reference then uses
// the weight NF4 decodes to: our own NF4 reimplementation stands in for bitsandbytes), with and without dropout (the
// kernel's mask rebuilt by the reference), on the naive and the blocked (unfused) kernels, accumulating into y, dx and
// the gradients as a micro-batch does.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readF32 } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { doraScalesStride } from '../../gpu/kernels/dora.ts';
import { uploadNf4 } from '../../gpu/kernels/nf4.ts';
import { doraLayerBackwardRef, doraLayerForwardRef, doraWeightNormRef } from '../../gpu/ref/dora.ref.ts';
import { dropoutMask } from '../../gpu/ref/lora.ref.ts';
import { dequantizeNf4, quantizeNf4 } from '../../gpu/ref/nf4.ref.ts';
import { mismatches, randomArray } from '../../gpu/ref/testing.ts';
import { driverName, testEngine, upload, zeros } from '../../gpu/testing-gpu.ts';
import { kernelChoiceFor, recordLinearBackward, recordLinearForward, type Linear } from './linear.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const T = 7;
const IN = 70; // not a multiple of the 64-element NF4 block, nor of a workgroup
const OUT = 23;
const R = 3;
const SCALE = 2;
const P = 0.25;
const SEED = 4242;

type Storage = 'linear' | 'conv1d' | 'nf4';

// The blocked (unfused) route composes DoRA's kernels with the register-blocked matmul: once per suite, on lavapipe
// when both drivers run (its compile takes ~10 s on SwiftShader); the naive route covers DoRA's kernels on each.
const OTHER_DRIVER = driverName === 'swiftshader' && existsSync(join(process.cwd(), '.webgpu', 'lavapipe', 'env.json'));
const CASES = (['linear', 'conv1d', 'nf4'] as Storage[]).flatMap((storage) =>
  // NF4 on the naive kernels only: its blocked matmul takes ~17 s to compile on lavapipe, and the low-rank path
  // beside it is the same code as beside a dense blocked matmul.
  [0, P].flatMap((dropout) =>
    (storage === 'nf4' || OTHER_DRIVER ? (['naive'] as const) : (['naive', 'blocked'] as const)).map((variant) => [storage, dropout, variant] as const),
  ),
);

describe('DoRA linear layer', () => {
  it.each(CASES)('%s base, dropout %s, %s kernels: y, dx, dA, dB, dm as the reference', async (storage, dropout, variant) => {
    const Wrows = randomArray(OUT * IN, 1, 0.3); // [out, in]
    const q = storage === 'nf4' ? quantizeNf4(Wrows, { doubleQuant: true }) : null;
    const W = Float64Array.from(q ? dequantizeNf4(q) : Wrows);
    let weight: Linear['weight'];
    if (storage === 'nf4') weight = { kind: 'nf4', weight: uploadNf4(e, q!, OUT, IN) };
    else if (storage === 'conv1d') {
      const t = new Float32Array(IN * OUT);
      for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) t[i * OUT + o] = Wrows[o * IN + i];
      weight = { kind: 'dense', buffer: upload(e, t), elem: 'f32', conv1d: true };
    } else weight = { kind: 'dense', buffer: upload(e, Wrows), elem: 'f32', conv1d: false };
    const A = randomArray(R * IN, 2, 0.2);
    const B = randomArray(OUT * R, 3, 0.2);
    // m off the norm (c ≠ 1), as after some training.
    const m = Float32Array.from(doraWeightNormRef({ out: OUT, in: IN, r: R, scale: SCALE }, W, A, B), (v, j) => v * (1 + 0.2 * Math.sin(j)));
    const bias = randomArray(OUT, 4, 0.2);
    const x = randomArray(T * IN, 5);
    const dy = randomArray(T * OUT, 6);
    const y0 = randomArray(T * OUT, 7);
    const dx0 = randomArray(T * IN, 8);
    const g0 = { A: randomArray(R * IN, 9, 0.1), B: randomArray(OUT * R, 10, 0.1), m: randomArray(OUT, 11, 0.1) };
    const dA = upload(e, g0.A);
    const dB = upload(e, g0.B);
    const dm = upload(e, g0.m);
    const scales = zeros(e, 3 * doraScalesStride(OUT));
    const layer: Linear = {
      path: 'test.proj', inFeatures: IN, outFeatures: OUT, weight, bias: upload(e, bias),
      dora: { rank: R, scale: SCALE, dropout, A: upload(e, A), B: upload(e, B), dA, dB, seed: SEED, m: { buffer: upload(e, m) }, dm, scales },
    };
    const xb = upload(e, x);
    const y = upload(e, y0);
    const dx = upload(e, dx0);
    const k = kernelChoiceFor(variant);
    const rec = e.record('dora linear');
    const saved = recordLinearForward(rec, e, k, layer, T, xb, y, true);
    recordLinearBackward(rec, e, k, layer, T, xb, saved, upload(e, dy), dx, { accumulateDx: true, accumulateGrads: true });
    await rec.submit();
    const inputs = { T, inFeatures: IN, outFeatures: OUT, r: R, scale: SCALE, x, W, bias, A, B, m, mask: dropout ? dropoutMask(SEED, dropout, T * IN) : undefined };
    const want = doraLayerForwardRef(inputs);
    const grads = doraLayerBackwardRef(inputs, dy);
    const tol = { abs: 3e-5, rel: 3e-5 };
    const got = async (b: GPUBuffer, n: number, base: ArrayLike<number>) => (await readF32(e.device, b, n)).map((v, i) => v - base[i]);
    expect(mismatches(await got(y, T * OUT, y0), want.y, tol), 'y').toEqual([]);
    expect(mismatches(await readF32(e.device, scales, OUT), want.n, { abs: 1e-6, rel: 2e-6 }), 'n').toEqual([]);
    expect(mismatches(await got(dx, T * IN, dx0), grads.dx, tol), 'dx').toEqual([]);
    const gtol = { abs: 1e-4, rel: 1e-4 };
    expect(mismatches(await got(dA, R * IN, g0.A), grads.dA, gtol), 'dA').toEqual([]);
    expect(mismatches(await got(dB, OUT * R, g0.B), grads.dB, gtol), 'dB').toEqual([]);
    expect(mismatches(await got(dm, OUT, g0.m), grads.dm, gtol), 'dm').toEqual([]);
    if (!dropout) {
      // Without dropout DoRA is c ⊙ (W + s·B·A)·x + b, what a merge bakes in.
      for (let t = 0; t < T; t += 3) {
        for (let j = 0; j < OUT; j += 5) {
          let v = 0;
          for (let i = 0; i < IN; i++) {
            let ba = 0;
            for (let r = 0; r < R; r++) ba += B[j * R + r] * A[r * IN + i];
            v += (W[j * IN + i] + SCALE * ba) * x[t * IN + i];
          }
          expect(Math.abs(want.y[t * OUT + j] - ((m[j] / want.n[j]) * v + bias[j]))).toBeLessThan(1e-9);
        }
      }
    }
  });
});
