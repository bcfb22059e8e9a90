// lstm.wgsl (with prompt_encoder.wgsl's dense layers) against its float64 reference: P-tuning's whole LSTM encoder
// chained on the GPU as the runtime records it — stacked bidirectional layers, the head, the backward through time
// into every parameter, accumulating or not — at odd sizes, one of them with H past a workgroup (67); the gradients
// also against central finite differences of the reference's forward (the reference's own check on every parameter:
// ref/lstm.ref.test.ts).
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { lstmEncoderBackwardRef, lstmEncoderRef, type LstmDirectionParams, type LstmEncoderParams } from '../ref/lstm.ref.ts';
import { mismatches, numericGrad, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { recordLstmBackward, recordLstmForward, type LstmActivations, type LstmLayerBuffers } from './lstm.ts';
import { recordDenseForward, recordDenseInputGrad, recordDenseParamGrads } from './prompt-encoder.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const DIRECTION_KEYS = ['Wih', 'Whh', 'bih', 'bhh'] as const;

function direction(K: number, H: number, seed: number): LstmDirectionParams {
  const scale = 1 / Math.sqrt(H) + 0.3; // nn.LSTM's U(±1/√H), a little wider so the gates leave their linear range
  return { Wih: randomArray(4 * H * K, seed, scale), Whh: randomArray(4 * H * H, seed + 1, scale), bih: randomArray(4 * H, seed + 2, scale), bhh: randomArray(4 * H, seed + 3, scale) };
}

describe('LSTM prompt encoder on the GPU', () => {
  it.each([
    [5, 7, 3, 2],
    [3, 9, 67, 1],
  ])('n=%i C=%i H=%i, %i layer(s): P, and every parameter\'s gradient from dP (set, then accumulated)', async (n, C, H, L) => {
    const s = { n, C, H };
    const p: LstmEncoderParams = {
      E: randomArray(n * C, 1),
      layers: Array.from({ length: L }, (_, l) => ({ fwd: direction(l === 0 ? C : 2 * H, H, 10 + 10 * l), rev: direction(l === 0 ? C : 2 * H, H, 15 + 10 * l) })),
      W0: randomArray(4 * H * H, 2, 1 / Math.sqrt(2 * H)),
      b0: randomArray(2 * H, 3, 0.3),
      W2: randomArray(C * 2 * H, 4, 1 / Math.sqrt(2 * H)),
      b2: randomArray(C, 5, 0.3),
    };
    const dPhost = randomArray(n * C, 6);
    const up = (d: LstmDirectionParams) => Object.fromEntries(DIRECTION_KEYS.map((k) => [k, upload(e, Float32Array.from(d[k]))])) as Record<(typeof DIRECTION_KEYS)[number], GPUBuffer>;
    const zero = (d: LstmDirectionParams) => Object.fromEntries(DIRECTION_KEYS.map((k) => [k, zeros(e, d[k].length)])) as Record<(typeof DIRECTION_KEYS)[number], GPUBuffer>;
    const layers: LstmLayerBuffers[] = p.layers.map((l) => ({ fwd: up(l.fwd), rev: up(l.rev) }));
    const grads = p.layers.map((l) => ({ fwd: zero(l.fwd), rev: zero(l.rev) }));
    const [E, W0, b0, W2, b2, dP] = [p.E, p.W0, p.b0, p.W2, p.b2, dPhost].map((v) => upload(e, Float32Array.from(v)));
    const [gE, gW0, gb0, gW2, gb2] = [p.E, p.W0, p.b0, p.W2, p.b2].map((v) => zeros(e, v.length));
    const a: LstmActivations = {
      Y: p.layers.map(() => zeros(e, n * 2 * H)),
      states: p.layers.map(() => ({ fwd: { gates: zeros(e, n * 4 * H), cell: zeros(e, n * H) }, rev: { gates: zeros(e, n * 4 * H), cell: zeros(e, n * H) } })),
    };
    const [z, P, dz] = [zeros(e, n * 2 * H), zeros(e, n * C), zeros(e, n * 2 * H)];
    const dY = p.layers.map(() => zeros(e, n * 2 * H));
    const [dA, dcarry] = [zeros(e, n * 4 * H), zeros(e, H)];
    const Y = a.Y[L - 1];
    const head = { rows: n, K: 2 * H, O: 2 * H };
    const out = { rows: n, K: 2 * H, O: C };
    for (const accumulate of [false, true]) {
      const rec = e.record();
      recordLstmForward(rec, s, E, layers, a);
      recordDenseForward(rec, head, { X: Y, W: W0, bias: b0, Y: z }, true);
      recordDenseForward(rec, out, { X: z, W: W2, bias: b2, Y: P }, false);
      recordDenseParamGrads(rec, out, { dZ: dP, X: z, dW: gW2, db: gb2 }, accumulate);
      recordDenseInputGrad(rec, out, { dZ: dP, W: W2, mask: z, dX: dz }, false);
      recordDenseParamGrads(rec, head, { dZ: dz, X: Y, dW: gW0, db: gb0 }, accumulate);
      recordDenseInputGrad(rec, head, { dZ: dz, W: W0, dX: dY[L - 1] }, false);
      recordLstmBackward(rec, s, { X: E, layers, grads, dY, dA, dcarry, dX: gE }, a, accumulate);
      await rec.submit();
    }
    const tol = (scale: number) => ({ abs: 2e-5 * scale, rel: 1e-4 });
    const maxAbs = (v: ArrayLike<number>) => Math.max(...Array.from(v, Math.abs), 1e-12);
    expect(mismatches(await download(e, P, n * C), lstmEncoderRef(p, s).P, tol(1)), 'P').toEqual([]);
    const want = lstmEncoderBackwardRef(p, s, dPhost);
    const twice = (v: Float64Array) => v.map((x) => 2 * x); // the second backward accumulated onto the first
    const check = async (buf: GPUBuffer, w: Float64Array, what: string) => expect(mismatches(await download(e, buf, w.length), twice(w), tol(2 * maxAbs(w))), what).toEqual([]);
    await check(gE, want.E, 'dE');
    await check(gW0, want.W0, 'dW0');
    await check(gb0, want.b0, 'db0');
    await check(gW2, want.W2, 'dW2');
    await check(gb2, want.b2, 'db2');
    for (let l = 0; l < L; l++) for (const d of ['fwd', 'rev'] as const) for (const k of DIRECTION_KEYS) await check(grads[l][d][k], want.layers[l][d][k], `layer ${l} ${d} d${k}`);

    // Central differences of the float64 forward at a few entries of the recurrent weights, which only the step-by-step
    // backward reaches: the GPU's gradient (halved: it was accumulated twice) against them.
    const loss = (q: LstmEncoderParams) => lstmEncoderRef(q, s).P.reduce((t, v, i) => t + v * dPhost[i], 0);
    const gotWhh = await download(e, grads[0].rev.Whh, 4 * H * H);
    const picks = [0, 4 * H * H - 1, Math.floor((4 * H * H) / 3)];
    for (const i of picks) {
      const fd = numericGrad((x) => loss({ ...p, layers: p.layers.map((ly, m) => (m === 0 ? { ...ly, rev: { ...ly.rev, Whh: Float64Array.from(p.layers[0].rev.Whh, (v, j) => (j === i ? x[0] : v)) } } : ly)) }), [p.layers[0].rev.Whh[i]], 1e-5)[0];
      expect(Math.abs(gotWhh[i] / 2 - fd), `layer 0 rev dWhh[${i}]: GPU ${gotWhh[i] / 2}, finite differences ${fd}`).toBeLessThan(2e-5 * maxAbs(want.layers[0].rev.Whh) + 1e-4 * Math.abs(fd));
    }
  });
});
