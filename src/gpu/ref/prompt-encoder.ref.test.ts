// P-tuning's prompt encoder reference: its backward against float64 finite differences of its forward, for every
// parameter (loss = Σ w ⊙ P).
import { describe, expect, it } from 'vitest';
import {
  prefixEncoderBackwardRef,
  prefixEncoderRef,
  promptEncoderBackwardRef,
  promptEncoderRef,
  type PrefixEncoderParams,
  type PromptEncoderParams,
} from './prompt-encoder.ref.ts';
import { mismatches, numericGrad, randomArray } from './testing.ts';

describe('prompt encoder reference', () => {
  it('the encoder\'s backward is the derivative of its forward (finite differences on every parameter)', () => {
    const s = { n: 3, C: 5, H: 4 };
    const p: PromptEncoderParams = {
      E: randomArray(s.n * s.C, 1),
      W0: randomArray(s.H * s.C, 2),
      b0: randomArray(s.H, 3),
      W2: randomArray(s.H * s.H, 4),
      b2: randomArray(s.H, 5),
      W4: randomArray(s.C * s.H, 6),
      b4: randomArray(s.C, 7),
    };
    const w = randomArray(s.n * s.C, 8); // loss = Σ w ⊙ P
    const grads = promptEncoderBackwardRef(p, s, w);
    for (const key of Object.keys(p) as (keyof PromptEncoderParams)[]) {
      const loss = (x: Float64Array) => promptEncoderRef({ ...p, [key]: x }, s).P.reduce((t, v, i) => t + v * w[i], 0);
      expect(mismatches(grads[key], numericGrad(loss, p[key], 1e-4), { abs: 1e-6, rel: 1e-5 }), key).toEqual([]);
    }
  });

  it('prefix tuning\'s projection (tanh): its backward is the derivative of its forward on every parameter', () => {
    const s = { n: 3, K: 5, H: 4, O: 7 };
    const p: PrefixEncoderParams = {
      E: randomArray(s.n * s.K, 11),
      W0: randomArray(s.H * s.K, 12),
      b0: randomArray(s.H, 13),
      W2: randomArray(s.O * s.H, 14),
      b2: randomArray(s.O, 15),
    };
    const w = randomArray(s.n * s.O, 16); // loss = Σ w ⊙ table
    const grads = prefixEncoderBackwardRef(p, s, w);
    for (const key of Object.keys(p) as (keyof PrefixEncoderParams)[]) {
      const loss = (x: Float64Array) => prefixEncoderRef({ ...p, [key]: x }, s).table.reduce((t, v, i) => t + v * w[i], 0);
      expect(mismatches(grads[key], numericGrad(loss, p[key], 1e-4), { abs: 1e-6, rel: 1e-5 }), key).toEqual([]);
    }
  });
});
