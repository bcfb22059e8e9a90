// The AdamW reference against torch.optim.AdamW + clip_grad_norm_ (scripts/golden_adamw.py), and its rules.
import { describe, expect, it } from 'vitest';
import golden from './golden/adamw.json';
import { adamwStepRef, clipCoefficient, gradNormRef, type AdamwHyper, type AdamwSegment } from './adamw.ref.ts';
import { mismatches, randomArray } from './testing.ts';

function stateOf(params: ArrayLike<number>) {
  const n = params.length;
  return { params: Float64Array.from(params), m: new Float64Array(n), v: new Float64Array(n) };
}

describe('adamwStepRef', () => {
  it('follows torch.optim.AdamW after clip_grad_norm_, step by step (LoRA+ lr scale, a no-decay tensor)', () => {
    // Contiguous segments, in the golden's tensor order.
    const segments: AdamwSegment[] = [];
    let offset = 0;
    for (const [i, t] of golden.tensors.entries()) {
      segments.push({ offset, length: golden.initial[i].length, lrScale: t.lrScale, decay: t.decay });
      offset += golden.initial[i].length;
    }
    const state = stateOf(golden.initial.flat());
    let clipped = 0;
    for (const s of golden.steps) {
      const { norm, coefficient } = adamwStepRef(state, s.grads.flat(), segments, golden.hyper, s.step);
      if (coefficient < 1) clipped++;
      expect(norm).toBeCloseTo(s.norm, 5);
      // torch runs in f32: its rounding, amplified at most by Adam's normalisation, stays far below this.
      expect(mismatches(state.params, s.params.flat(), { abs: 2e-6, rel: 1e-5 }), `step ${s.step}`).toEqual([]);
    }
    expect(clipped).toBeGreaterThan(0);
    expect(clipped).toBeLessThan(golden.steps.length);
  });

  it('moves each parameter by lr against the sign of its gradient on step 1 (m̂/√v̂ = g/|g|)', () => {
    const h: AdamwHyper = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 0 };
    const p0 = randomArray(10, 1);
    const g = randomArray(10, 2);
    const state = stateOf(p0);
    adamwStepRef(state, g, [{ offset: 0, length: 10, lrScale: 1, decay: true }], h, 1);
    for (let i = 0; i < 10; i++) expect(state.params[i]).toBeCloseTo(p0[i] - 0.01 * Math.sign(g[i]), 6);
  });

  it('decays only decaying segments, scales lr per segment and leaves gaps alone', () => {
    const h: AdamwHyper = { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5, maxGradNorm: 0 };
    const segments: AdamwSegment[] = [
      { offset: 0, length: 2, lrScale: 1, decay: true },
      { offset: 4, length: 2, lrScale: 2, decay: false },
    ];
    const state = stateOf([1, 1, 9, 9, 1, 1]);
    adamwStepRef(state, [0, 0, 0, 0, 0, 0], segments, h, 1); // zero gradient: only decay moves parameters
    expect(Array.from(state.params)).toEqual([0.95, 0.95, 9, 9, 1, 1]);
    const g = [1, -1, 0, 0, 1, -1];
    const s2 = stateOf([0, 0, 0, 0, 0, 0]);
    adamwStepRef(s2, g, segments, h, 1);
    expect(s2.params[0]).toBeCloseTo(-0.1, 6);
    expect(s2.params[4]).toBeCloseTo(-0.2, 6);
  });

  it('clips with clip_grad_norm_ semantics', () => {
    expect(gradNormRef([3, 4])).toBe(5);
    expect(clipCoefficient(5, 1)).toBeCloseTo(1 / (5 + 1e-6), 12);
    expect(clipCoefficient(0.5, 1)).toBe(1);
    expect(clipCoefficient(1e9, 0)).toBe(1);
  });
});
