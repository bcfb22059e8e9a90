// A linear layer wrapped by a bottleneck adapter (bottleneck.ts) against the float64 reference
// (src/gpu/ref/bottleneck.ref.ts): forward, dx, dD, db_d, dU, db_u — on nn.Linear and Conv1D layouts and over an NF4
// base (the reference then uses the weight NF4 decodes to), for each non-linearity, with the adapter's tensors as
// ranges of one flat buffer (as the trainer binds them) and accumulating into y, dx and the gradients as a
// micro-batch does; with the naive kernels on every layout and with the tiled and register-blocked (vec4) ones. The
// reference's gradients are checked against finite differences of Σ y ⊙ dy.
import { beforeAll, describe, expect, it } from 'vitest';
import { readF32 } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { uploadNf4 } from '../../gpu/kernels/nf4.ts';
import { bottleneckBackwardRef, bottleneckForwardRef, type BottleneckRefShape, type BottleneckRefWeights } from '../../gpu/ref/bottleneck.ref.ts';
import { dequantizeNf4, quantizeNf4 } from '../../gpu/ref/nf4.ref.ts';
import { mismatches, numericGrad, randomArray } from '../../gpu/ref/testing.ts';
import { testEngine, upload, zeros } from '../../gpu/testing-gpu.ts';
import { segmentBinding } from '../../train/trainable.ts';
import type { MatmulVariant } from '../../gpu/kernels/matmul.ts';
import { kernelChoiceFor, recordLinearBackward, recordLinearForward, type Linear } from './linear.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const T = 7;
const IN = 70; // not a multiple of the 64-element NF4 block, nor of a workgroup
const OUT = 23;
const M = 5; // ⌊23 / 4⌋: reduction factor 4

type Storage = 'linear' | 'conv1d' | 'nf4';
const ACTS = ['relu', 'gelu_new', 'silu'] as const;

/** Segments of the flat buffer, each at a 64-float (256-byte) boundary as planAdamwLayout places them. */
function segments(OUT: number, M: number) {
  let at = 0;
  const seg = (n: number) => {
    const s = { offset: at, length: n };
    at += Math.ceil(n / 64) * 64;
    return s;
  };
  const s = { D: seg(M * OUT), bd: seg(M), U: seg(OUT * M), bu: seg(OUT) };
  return { ...s, total: at };
}

/** One layer's forward and backward on the GPU against the reference; accumulating into y, dx and the gradients. */
async function checkLayer(
  storage: Storage,
  activation: (typeof ACTS)[number],
  variant: MatmulVariant,
  { T, IN, OUT, M }: { T: number; IN: number; OUT: number; M: number },
): Promise<void> {
  const SEGMENTS = segments(OUT, M);
  const Wrows = randomArray(OUT * IN, 1, 0.5); // [out, in]
  const q = storage === 'nf4' ? quantizeNf4(Wrows, { doubleQuant: false }) : null;
  const W = Float64Array.from(q ? dequantizeNf4(q) : Wrows);
  let weight: Linear['weight'];
  if (storage === 'nf4') weight = { kind: 'nf4', weight: uploadNf4(e, q!, OUT, IN) };
  else if (storage === 'conv1d') {
    const t = new Float32Array(IN * OUT);
    for (let o = 0; o < OUT; o++) for (let i = 0; i < IN; i++) t[i * OUT + o] = Wrows[o * IN + i];
    weight = { kind: 'dense', buffer: upload(e, t), elem: 'f32', conv1d: true };
  } else weight = { kind: 'dense', buffer: upload(e, Wrows), elem: 'f32', conv1d: false };
  const w: BottleneckRefWeights = {
    W,
    b: randomArray(OUT, 3, 0.2),
    D: randomArray(M * OUT, 11, 0.5),
    bd: randomArray(M, 12, 0.3),
    U: randomArray(OUT * M, 13, 0.5),
    bu: randomArray(OUT, 14, 0.3),
  };
  const shape: BottleneckRefShape = { T, in: IN, out: OUT, m: M, activation };
  const x = randomArray(T * IN, 4);
  const dy = randomArray(T * OUT, 5);
  const dx0 = randomArray(T * IN, 6);
  const y0 = randomArray(T * OUT, 7);
  const g0 = randomArray(SEGMENTS.total, 8);

  const params = new Float32Array(SEGMENTS.total);
  for (const k of ['D', 'bd', 'U', 'bu'] as const) params.set(w[k] as Float32Array, SEGMENTS[k].offset);
  const paramsBuf = upload(e, params);
  const gradsBuf = upload(e, g0);
  const bind = (b: GPUBuffer, k: 'D' | 'bd' | 'U' | 'bu') => segmentBinding(b, SEGMENTS[k].offset, SEGMENTS[k].length);
  const layer: Linear = {
    path: 'test.proj',
    inFeatures: IN,
    outFeatures: OUT,
    weight,
    bias: upload(e, w.b as Float32Array),
    bottleneck: {
      size: M,
      activation,
      D: bind(paramsBuf, 'D'),
      bd: bind(paramsBuf, 'bd'),
      U: bind(paramsBuf, 'U'),
      bu: bind(paramsBuf, 'bu'),
      dD: bind(gradsBuf, 'D'),
      dbd: bind(gradsBuf, 'bd'),
      dU: bind(gradsBuf, 'U'),
      dbu: bind(gradsBuf, 'bu'),
    },
  };
  const xb = upload(e, x);
  const y = upload(e, y0);
  const dx = upload(e, dx0);
  const k = kernelChoiceFor(variant);
  const rec = e.record('bottleneck linear');
  const saved = recordLinearForward(rec, e, k, layer, T, xb, y, true);
  recordLinearBackward(rec, e, k, layer, T, xb, saved, upload(e, dy), dx, { accumulateDx: true, accumulateGrads: true });
  rec.afterSubmit(() => {
    for (const b of [saved.bottleneck!.h, saved.bottleneck!.z, saved.bottleneck!.a]) e.buffers.release(b);
  });
  await rec.submit();

  const fwd = bottleneckForwardRef(shape, w, x);
  const want = bottleneckBackwardRef(shape, w, x, dy);
  const tol = { abs: 3e-5, rel: 3e-5 };
  expect(mismatches(await readF32(e.device, y, T * OUT), fwd.y.map((v, i) => v + y0[i]), tol), 'y').toEqual([]);
  expect(mismatches(await readF32(e.device, dx, T * IN), want.dx.map((v, i) => v + dx0[i]), tol), 'dx').toEqual([]);
  const grads = await readF32(e.device, gradsBuf, SEGMENTS.total);
  for (const [key, ref] of [['D', want.dD], ['bd', want.dbd], ['U', want.dU], ['bu', want.dbu]] as const) {
    const s = SEGMENTS[key];
    const got = grads.subarray(s.offset, s.offset + s.length).map((v, i) => v - g0[s.offset + i]);
    expect(mismatches(got, ref, { abs: 1e-4, rel: 1e-4 }), `d${key}`).toEqual([]);
  }
}

describe.each(ACTS.map((a) => [a]))('bottleneck linear layer, %s', (activation) => {
  it.each<Storage>(['linear', 'conv1d', 'nf4'])('%s base: forward, dx and every adapter gradient as the reference', async (storage) => {
    await checkLayer(storage, activation, 'naive', { T, IN, OUT, M });
  });

  // The GPU's variants (tiled, register-blocked, vec4) on a shape where blocked4 applies to most products.
  it.each<MatmulVariant>(['tiled', 'blocked', 'blocked4'])('%s kernels: as the reference', async (variant) => {
    await checkLayer('linear', activation, variant, { T: 9, IN: 64, OUT: 32, M: 8 });
  });

  it('reference gradients match finite differences of Σ y ⊙ dy', () => {
    const t = 3;
    const [inF, out, m] = [6, 8, 3];
    const shape: BottleneckRefShape = { T: t, in: inF, out, m, activation };
    const base = {
      W: Float64Array.from(randomArray(out * inF, 21, 0.5)),
      b: Float64Array.from(randomArray(out, 22, 0.2)),
      D: Float64Array.from(randomArray(m * out, 23, 0.5)),
      bd: Float64Array.from(randomArray(m, 24, 0.3)),
      U: Float64Array.from(randomArray(out * m, 25, 0.5)),
      bu: Float64Array.from(randomArray(out, 26, 0.3)),
    };
    const x = Float64Array.from(randomArray(t * inF, 27));
    const dy = randomArray(t * out, 28);
    const want = bottleneckBackwardRef(shape, base, x, dy);
    const loss = (ww: BottleneckRefWeights, xx: ArrayLike<number>) => bottleneckForwardRef(shape, ww, xx).y.reduce((s, v, i) => s + v * dy[i], 0);
    const FD = { abs: 1e-6, rel: 1e-5 };
    for (const [key, grad] of [['D', want.dD], ['bd', want.dbd], ['U', want.dU], ['bu', want.dbu]] as const) {
      const numeric = numericGrad((v) => loss({ ...base, [key]: v }, x), base[key], 1e-6);
      expect(mismatches(grad, numeric, FD), `d${key}`).toEqual([]);
    }
    expect(mismatches(want.dx, numericGrad((v) => loss(base, v), x, 1e-6), FD), 'dx').toEqual([]);
  });

  it('with U and b_u at zero the layer is the base layer (step 0)', async () => {
    const w = { W: randomArray(OUT * IN, 31, 0.5), b: randomArray(OUT, 32), D: randomArray(M * OUT, 33), bd: randomArray(M, 34), U: new Float32Array(OUT * M), bu: new Float32Array(OUT) };
    const up = (a: Float32Array) => upload(e, a);
    const layer: Linear = {
      path: 'test.zero',
      inFeatures: IN,
      outFeatures: OUT,
      weight: { kind: 'dense', buffer: up(w.W), elem: 'f32', conv1d: false },
      bias: up(w.b),
      bottleneck: { size: M, activation, D: up(w.D), bd: up(w.bd), U: up(w.U), bu: up(w.bu), dD: zeros(e, M * OUT), dbd: zeros(e, M), dU: zeros(e, OUT * M), dbu: zeros(e, OUT) },
    };
    const x = randomArray(T * IN, 35);
    const y = zeros(e, T * OUT);
    const plain = zeros(e, T * OUT);
    const rec = e.record('bottleneck zero');
    recordLinearForward(rec, e, kernelChoiceFor('naive'), layer, T, up(x), y);
    recordLinearForward(rec, e, kernelChoiceFor('naive'), { ...layer, bottleneck: undefined }, T, up(x), plain);
    await rec.submit();
    expect(Array.from(await readF32(e.device, y, T * OUT))).toEqual(Array.from(await readF32(e.device, plain, T * OUT)));
  });
});
