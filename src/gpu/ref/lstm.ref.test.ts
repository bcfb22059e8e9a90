// P-tuning's LSTM encoder reference: its backward against float64 finite differences of its forward, for every
// parameter of two stacked bidirectional layers and the head (loss = Σ w ⊙ P); and nn.LSTM's first step by hand.
import { describe, expect, it } from 'vitest';
import { lstmDirectionRef, lstmEncoderBackwardRef, lstmEncoderRef, type LstmDirectionParams, type LstmEncoderParams } from './lstm.ref.ts';
import { mismatches, numericGrad, randomArray } from './testing.ts';

const direction = (K: number, H: number, seed: number): LstmDirectionParams => ({
  Wih: randomArray(4 * H * K, seed, 0.6),
  Whh: randomArray(4 * H * H, seed + 1, 0.6),
  bih: randomArray(4 * H, seed + 2, 0.5),
  bhh: randomArray(4 * H, seed + 3, 0.5),
});

describe('LSTM encoder reference', () => {
  it('a single step is PyTorch\'s cell: c = i·g, h = o·tanh(c) from zero state, gates in order i, f, g, o', () => {
    const p = direction(3, 2, 1);
    const x = randomArray(3, 9);
    const st = lstmDirectionRef(x, p, { n: 1, K: 3, H: 2, reverse: false });
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    for (let j = 0; j < 2; j++) {
      const a = (q: number) => p.bih[q * 2 + j] + p.bhh[q * 2 + j] + [0, 1, 2].reduce((s, k) => s + p.Wih[(q * 2 + j) * 3 + k] * x[k], 0);
      const c = sig(a(0)) * Math.tanh(a(2));
      expect(st.cell[j]).toBeCloseTo(c, 14);
      expect(st.h[j]).toBeCloseTo(sig(a(3)) * Math.tanh(c), 14);
    }
  });

  it('the encoder\'s backward is the derivative of its forward (finite differences on every parameter, 2 layers)', () => {
    const s = { n: 4, C: 3, H: 2 };
    const p: LstmEncoderParams = {
      E: randomArray(s.n * s.C, 1),
      layers: [
        { fwd: direction(s.C, s.H, 10), rev: direction(s.C, s.H, 20) },
        { fwd: direction(2 * s.H, s.H, 30), rev: direction(2 * s.H, s.H, 40) },
      ],
      W0: randomArray(4 * s.H * s.H, 2, 0.7),
      b0: randomArray(2 * s.H, 3),
      W2: randomArray(s.C * 2 * s.H, 4, 0.7),
      b2: randomArray(s.C, 5),
    };
    const w = randomArray(s.n * s.C, 8); // loss = Σ w ⊙ P
    const g = lstmEncoderBackwardRef(p, s, w);
    const lossWith = (q: LstmEncoderParams) => lstmEncoderRef(q, s).P.reduce((t, v, i) => t + v * w[i], 0);
    const tol = { abs: 1e-7, rel: 1e-6 };
    for (const key of ['E', 'W0', 'b0', 'W2', 'b2'] as const) {
      expect(mismatches(g[key], numericGrad((x) => lossWith({ ...p, [key]: x }), p[key], 1e-5), tol), key).toEqual([]);
    }
    p.layers.forEach((layer, l) => {
      for (const d of ['fwd', 'rev'] as const) {
        for (const key of ['Wih', 'Whh', 'bih', 'bhh'] as const) {
          const loss = (x: Float64Array) => lossWith({ ...p, layers: p.layers.map((ly, m) => (m === l ? { ...ly, [d]: { ...ly[d], [key]: x } } : ly)) });
          expect(mismatches(g.layers[l][d][key], numericGrad(loss, layer[d][key], 1e-5), tol), `layer ${l} ${d} ${key}`).toEqual([]);
        }
      }
    });
  });
});
