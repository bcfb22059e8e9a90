// adalora.wgsl against its float64 reference (ref/adalora.ref.ts) on odd sizes: two modules of different widths
// (one wider than a 64-thread workgroup), rank 3, every tensor in one flat buffer laid out by planAdamwLayout as the
// runtime lays them out (A, B, E, then the EMAs and the mask).
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { effectiveARef, gradThroughERef, importanceRef, orthRegRef, tripletScoresRef } from '../ref/adalora.ref.ts';
import { mismatches, randomArray, rng } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { planAdamwLayout } from './adamw.ts';
import {
  adaloraRegulariserIndex, adaloraScratchFloats, adaloraSpan, adaloraTable, recordEffectiveA, recordGradThroughE, recordImportance,
  recordOrthRegulariser, recordScores, type AdaloraBuffers, type AdaloraDims,
} from './adalora.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const R = 3;
const SHAPES = [
  { in: 7, out: 5 },
  { in: 70, out: 131 },
];

function setup() {
  const spans = SHAPES.map((s) => Math.ceil((R * s.in) / 64) * 64 + Math.ceil((s.out * R) / 64) * 64 + R);
  const layout = planAdamwLayout(
    SHAPES.flatMap((s, i) => [
      { name: `${i}.A`, length: R * s.in },
      { name: `${i}.B`, length: s.out * R },
      { name: `${i}.E`, length: R },
      { name: `${i}.ipt`, length: spans[i] },
      { name: `${i}.unc`, length: spans[i] },
      { name: `${i}.mask`, length: R },
    ]),
  );
  const seg = (i: number, k: number) => layout.segments[6 * i + k];
  const eff = planAdamwLayout(SHAPES.map((s, i) => ({ name: `${i}`, length: R * s.in })));
  const d: AdaloraDims = {
    r: R,
    modules: SHAPES.map((s, i) => ({
      aOff: seg(i, 0).offset, bOff: seg(i, 1).offset, eOff: seg(i, 2).offset, in: s.in, out: s.out,
      effOff: eff.segments[i].offset, iptOff: seg(i, 3).offset, uncOff: seg(i, 4).offset, maskOff: seg(i, 5).offset,
    })),
  };
  d.modules.forEach((m, i) => expect(adaloraSpan(m, R)).toBe(spans[i]));
  const P = randomArray(layout.totalLength, 1);
  const G = randomArray(layout.totalLength, 2, 0.1);
  const next = rng(3);
  d.modules.forEach((m) => {
    for (let k = 0; k < 2 * adaloraSpan(m, R); k++) P[m.iptOff + k] = next(); // EMAs ≥ 0 (ipt and unc are adjacent)
    for (let i = 0; i < R; i++) P[m.maskOff + i] = i === 1 ? 0 : 1;
  });
  const b: AdaloraBuffers = {
    params: upload(e, P),
    grads: upload(e, G),
    table: upload(e, adaloraTable(d)),
    aeff: zeros(e, eff.totalLength),
    scratch: zeros(e, adaloraScratchFloats(d)),
  };
  const A = (src: Float32Array, i: number) => src.slice(d.modules[i].aOff, d.modules[i].aOff + R * SHAPES[i].in);
  const B = (src: Float32Array, i: number) => src.slice(d.modules[i].bOff, d.modules[i].bOff + SHAPES[i].out * R);
  const E = (src: Float32Array, i: number) => src.slice(d.modules[i].eOff, d.modules[i].eOff + R);
  return { d, b, P, G, A, B, E, eff, total: layout.totalLength };
}

describe('adalora kernels', () => {
  it('effective_a: A_eff = diag(E)·A, with the mask applied to E first when asked', async () => {
    for (const mask of [false, true]) {
      const { d, b, P, A, E, eff, total } = setup();
      const rec = e.record();
      recordEffectiveA(rec, d, b, zeros(e, 8), mask);
      await rec.submit();
      const aeff = await download(e, b.aeff, eff.totalLength);
      const P2 = await download(e, b.params, total);
      SHAPES.forEach((s, i) => {
        const Ew = Float32Array.from(E(P, i), (v, j) => (mask ? v * P[d.modules[i].maskOff + j] : v));
        expect(mismatches(E(P2, i), Ew, { abs: 0, rel: 0 })).toEqual([]);
        const want = effectiveARef(R, s.in, A(P, i), Ew);
        expect(mismatches(aeff.slice(d.modules[i].effOff, d.modules[i].effOff + R * s.in), want, { abs: 0, rel: 1e-7 })).toEqual([]);
      });
    }
  });

  it('grad_a: dA = diag(E)·dA_eff in place, dE = row sums of dA_eff ⊙ A', async () => {
    const { d, b, P, G, A, E, total } = setup();
    const rec = e.record();
    recordGradThroughE(rec, d, b, zeros(e, 8));
    await rec.submit();
    const G2 = await download(e, b.grads, total);
    SHAPES.forEach((s, i) => {
      const want = gradThroughERef(R, s.in, A(P, i), E(P, i), A(G, i));
      expect(mismatches(A(G2, i), want.dA, { abs: 0, rel: 1e-7 })).toEqual([]);
      expect(mismatches(E(G2, i), want.dE, { abs: 1e-7, rel: 1e-5 })).toEqual([]);
    });
  });

  it('the orthogonality regulariser: w·R into the loss total, w·∂R into the gradients', async () => {
    const { d, b, P, G, A, B, E, total } = setup();
    const w = 0.7;
    const loss = upload(e, new Float32Array([12.5, 20, 0, 0]));
    const rec = e.record();
    recordOrthRegulariser(rec, d, b, loss, w);
    await rec.submit();
    const want = orthRegRef(R, SHAPES.map((s, i) => ({ in: s.in, out: s.out, A: A(P, i), B: B(P, i) })));
    const [sum, count] = await download(e, loss, 2);
    expect(count).toBe(20);
    expect(Math.abs(sum - (12.5 + w * want.R * 20))).toBeLessThan(1e-5 * sum);
    const scratch = await download(e, b.scratch, adaloraScratchFloats(d));
    expect(Math.abs(scratch[adaloraRegulariserIndex(d)] - want.R)).toBeLessThan(1e-5 * want.R);
    const G2 = await download(e, b.grads, total);
    SHAPES.forEach((_, i) => {
      const gA = Float64Array.from(A(G, i), (v, j) => v + w * want.dA[i][j]);
      const gB = Float64Array.from(B(G, i), (v, j) => v + w * want.dB[i][j]);
      expect(mismatches(A(G2, i), gA, { abs: 1e-6, rel: 1e-5 }), `dA ${i}`).toEqual([]);
      expect(mismatches(B(G2, i), gB, { abs: 1e-6, rel: 1e-5 }), `dB ${i}`).toEqual([]);
      expect(mismatches(E(G2, i), E(G, i), { abs: 0, rel: 0 }), 'E untouched').toEqual([]);
    });
  });

  it('importance: the EMAs of |p·g·clip| over A, B and E; nothing on a skipped step', async () => {
    for (const skipped of [0, 1]) {
      const { d, b, P, G, total } = setup();
      const clip = 0.37;
      const rec = e.record();
      recordImportance(rec, d, b, upload(e, new Float32Array([2.7, clip, skipped, 0, 0, 0, 0, 0])), 0.85, 0.8);
      await rec.submit();
      const P2 = await download(e, b.params, total);
      d.modules.forEach((m) => {
        const span = adaloraSpan(m, R);
        const ipt = Float64Array.from(P.slice(m.iptOff, m.iptOff + span));
        const unc = Float64Array.from(P.slice(m.uncOff, m.uncOff + span));
        if (!skipped) importanceRef(P.slice(m.aOff, m.aOff + span), Float64Array.from(G.slice(m.aOff, m.aOff + span), (g) => Math.fround(g * clip)), ipt, unc, 0.85, 0.8);
        expect(mismatches(P2.slice(m.iptOff, m.iptOff + span), ipt, { abs: 1e-7, rel: 1e-6 })).toEqual([]);
        expect(mismatches(P2.slice(m.uncOff, m.uncOff + span), unc, { abs: 1e-7, rel: 1e-6 })).toEqual([]);
      });
    }
  });

  it('scores: per triplet, E\'s score plus the means over A\'s row and B\'s column', async () => {
    const { d, b, P } = setup();
    const rec = e.record();
    recordScores(rec, d, b, zeros(e, 8));
    await rec.submit();
    const got = await download(e, b.scratch, d.modules.length * R);
    d.modules.forEach((m, i) => {
      const s = (k: number) => P[m.iptOff + k] * P[m.uncOff + k];
      const sA = Array.from({ length: R * m.in }, (_, k) => s(k));
      const sB = Array.from({ length: m.out * R }, (_, k) => s(m.bOff - m.aOff + k));
      const sE = Array.from({ length: R }, (_, k) => s(m.eOff - m.aOff + k));
      expect(mismatches(got.slice(i * R, (i + 1) * R), tripletScoresRef(R, m.in, m.out, sA, sE, sB), { abs: 1e-7, rel: 1e-5 })).toEqual([]);
    });
  });
});
