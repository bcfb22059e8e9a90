// Plain TypeScript reference for lstm.wgsl (float64): PyTorch's nn.LSTM (gate order i, f, g, o; both biases b_ih and
// b_hh; zero initial state), bidirectional and stacked as P-tuning's LSTM prompt encoder runs it (PEFT's
// PromptEncoder with encoder_reparameterization_type "LSTM", batch_first over its (n, C) table), and the encoder
// around it: lstm_head → mlp_head = Linear(2H, 2H) → ReLU → Linear(2H, C). Also what the export runs: PEFT saves the
// encoder's output as prompt_embeddings.
//
// One direction over n steps (t = 0 … n−1 forward, n−1 … 0 reverse), x_t (K), h_{prev} and c_{prev} zero at its first:
//   a = W_ih·x_t + b_ih + W_hh·h_prev + b_hh  (4H)      i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
//   c_t = f ⊙ c_prev + i ⊙ g                            h_t = o ⊙ tanh(c_t)
// A layer's output is (n, 2H): [h_fwd | h_rev] per row; layer l > 0 reads layer l − 1's output (K = 2H).
import { gradBRef, gradWRef, gradXRef, linearRef } from './prompt-encoder.ref.ts';

type Vec = ArrayLike<number>;

/** One direction's parameters as nn.LSTM stores them (weight_ih_l<k>[_reverse] …): W_ih (4H, K), W_hh (4H, H),
 *  b_ih (4H), b_hh (4H), the rows in gate order i, f, g, o. */
export interface LstmDirectionParams {
  Wih: Vec;
  Whh: Vec;
  bih: Vec;
  bhh: Vec;
}

export interface LstmDirectionShape {
  n: number;
  K: number;
  H: number;
  reverse: boolean;
}

/** What a direction's forward keeps for its backward: the activated gates (n, 4H) = [i | f | g | o] per row, the cell
 *  states c (n, H) and the outputs h (n, H), each by time step t (not by processing order). */
export interface LstmDirectionState {
  gates: Float64Array;
  cell: Float64Array;
  h: Float64Array;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** The steps in processing order, each with the step before it (−1 at the first). */
export function lstmSteps(n: number, reverse: boolean): { t: number; prev: number }[] {
  return Array.from({ length: n }, (_, s) => (reverse ? { t: n - 1 - s, prev: s === 0 ? -1 : n - s } : { t: s, prev: s - 1 }));
}

/** One direction of one layer over X (n, K). */
export function lstmDirectionRef(X: Vec, p: LstmDirectionParams, s: LstmDirectionShape): LstmDirectionState {
  const { n, K, H } = s;
  const proj = linearRef(X, p.Wih, p.bih, n, K, 4 * H, false); // (n, 4H): W_ih·x_t + b_ih, all steps at once
  const gates = new Float64Array(n * 4 * H);
  const cell = new Float64Array(n * H);
  const h = new Float64Array(n * H);
  for (const { t, prev } of lstmSteps(n, s.reverse)) {
    for (let j = 0; j < H; j++) {
      const a = [0, 1, 2, 3].map((q) => {
        const r = q * H + j;
        let v = proj[t * 4 * H + r] + p.bhh[r];
        if (prev >= 0) for (let k = 0; k < H; k++) v += p.Whh[r * H + k] * h[prev * H + k];
        return v;
      });
      const [i, f, g, o] = [sigmoid(a[0]), sigmoid(a[1]), Math.tanh(a[2]), sigmoid(a[3])];
      const c = f * (prev >= 0 ? cell[prev * H + j] : 0) + i * g;
      gates[t * 4 * H + j] = i;
      gates[t * 4 * H + H + j] = f;
      gates[t * 4 * H + 2 * H + j] = g;
      gates[t * 4 * H + 3 * H + j] = o;
      cell[t * H + j] = c;
      h[t * H + j] = o * Math.tanh(c);
    }
  }
  return { gates, cell, h };
}

/** The gate pre-activations' gradient dA (n, 4H) by backpropagation through time from dh (n, H), the gradient of
 *  this direction's outputs: the kernel's cell_backward, step by step against the processing order. */
export function lstmDirectionGatesGradRef(p: LstmDirectionParams, s: LstmDirectionShape, st: LstmDirectionState, dh: Vec): Float64Array {
  const { n, H } = s;
  const dA = new Float64Array(n * 4 * H);
  const dcarry = new Float64Array(H); // ∂L/∂c_t through c_{next} = f_next ⊙ c_t + …
  const steps = lstmSteps(n, s.reverse);
  for (let q = n - 1; q >= 0; q--) {
    const { t, prev } = steps[q];
    const next = q + 1 < n ? steps[q + 1].t : -1;
    for (let j = 0; j < H; j++) {
      let dhj = dh[t * H + j];
      if (next >= 0) for (let r = 0; r < 4 * H; r++) dhj += dA[next * 4 * H + r] * p.Whh[r * H + j];
      const row = t * 4 * H;
      const [i, f, g, o] = [st.gates[row + j], st.gates[row + H + j], st.gates[row + 2 * H + j], st.gates[row + 3 * H + j]];
      const tc = Math.tanh(st.cell[t * H + j]);
      const cprev = prev >= 0 ? st.cell[prev * H + j] : 0;
      const dc = dhj * o * (1 - tc * tc) + (next >= 0 ? dcarry[j] : 0);
      dA[row + j] = dc * g * i * (1 - i);
      dA[row + H + j] = dc * cprev * f * (1 - f);
      dA[row + 2 * H + j] = dc * i * (1 - g * g);
      dA[row + 3 * H + j] = dhj * tc * o * (1 - o);
      dcarry[j] = dc * f;
    }
  }
  return dA;
}

/** dW_hh (4H, H) = Σ_t dA_t ⊗ h_prev(t), over the steps that have a previous one: the kernel's grad_whh. */
export function lstmGradWhhRef(dA: Vec, h: Vec, s: LstmDirectionShape): Float64Array {
  const { n, H } = s;
  const dW = new Float64Array(4 * H * H);
  for (const { t, prev } of lstmSteps(n, s.reverse)) {
    if (prev < 0) continue;
    for (let r = 0; r < 4 * H; r++) for (let k = 0; k < H; k++) dW[r * H + k] += dA[t * 4 * H + r] * h[prev * H + k];
  }
  return dW;
}

export interface LstmDirectionGrads {
  Wih: Float64Array;
  Whh: Float64Array;
  bih: Float64Array;
  bhh: Float64Array;
  /** The input's gradient (n, K). */
  X: Float64Array;
}

/** Every gradient of one direction from dh (n, H). */
export function lstmDirectionBackwardRef(X: Vec, p: LstmDirectionParams, s: LstmDirectionShape, st: LstmDirectionState, dh: Vec): LstmDirectionGrads {
  const { n, K, H } = s;
  const dA = lstmDirectionGatesGradRef(p, s, st, dh);
  const db = gradBRef(dA, n, 4 * H);
  return { Wih: gradWRef(dA, X, n, K, 4 * H), Whh: lstmGradWhhRef(dA, st.h, s), bih: db, bhh: Float64Array.from(db), X: gradXRef(dA, p.Wih, n, K, 4 * H) };
}

/** A layer: its forward and reverse directions. */
export interface LstmLayerParams {
  fwd: LstmDirectionParams;
  rev: LstmDirectionParams;
}

/** P-tuning's LSTM encoder, by PEFT's names (prompt_encoder.default.…): embedding (n, C); lstm_head's layers
 *  (weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, bias_hh_l<k>, and each _reverse); mlp_head.0 (2H, 2H) and
 *  mlp_head.2 (C, 2H), each with its bias. */
export interface LstmEncoderParams {
  E: Vec;
  layers: LstmLayerParams[];
  W0: Vec;
  b0: Vec;
  W2: Vec;
  b2: Vec;
}

export interface LstmEncoderShape {
  n: number;
  C: number;
  H: number;
}

/** (n, H) columns of a (n, 2H) layer output, and back. */
function half(Y: Vec, n: number, H: number, d: 0 | 1): Float64Array {
  const out = new Float64Array(n * H);
  for (let t = 0; t < n; t++) for (let j = 0; j < H; j++) out[t * H + j] = Y[t * 2 * H + d * H + j];
  return out;
}
function join(a: Vec, b: Vec, n: number, H: number): Float64Array {
  const out = new Float64Array(n * 2 * H);
  for (let t = 0; t < n; t++) for (let j = 0; j < H; j++) [out[t * 2 * H + j], out[t * 2 * H + H + j]] = [a[t * H + j], b[t * H + j]];
  return out;
}

/** The encoder's forward: P (n, C), the LSTM's output Y (n, 2H), the head's hidden z (n, 2H), and every layer's
 *  input and direction states for the backward. */
export function lstmEncoderRef(p: LstmEncoderParams, s: LstmEncoderShape) {
  const { n, C, H } = s;
  const layers: { X: Float64Array; K: number; fwd: LstmDirectionState; rev: LstmDirectionState }[] = [];
  let X: Float64Array = Float64Array.from(p.E);
  let K = C;
  for (const lp of p.layers) {
    const fwd = lstmDirectionRef(X, lp.fwd, { n, K, H, reverse: false });
    const rev = lstmDirectionRef(X, lp.rev, { n, K, H, reverse: true });
    layers.push({ X, K, fwd, rev });
    X = join(fwd.h, rev.h, n, H);
    K = 2 * H;
  }
  const z = linearRef(X, p.W0, p.b0, n, 2 * H, 2 * H, true);
  return { layers, Y: X, z, P: linearRef(z, p.W2, p.b2, n, 2 * H, C, false) };
}

export interface LstmEncoderGrads {
  E: Float64Array;
  layers: { fwd: Omit<LstmDirectionGrads, 'X'>; rev: Omit<LstmDirectionGrads, 'X'> }[];
  W0: Float64Array;
  b0: Float64Array;
  W2: Float64Array;
  b2: Float64Array;
}

/** The gradient of every parameter from dP (n, C), the gradient of the encoder's output. */
export function lstmEncoderBackwardRef(p: LstmEncoderParams, s: LstmEncoderShape, dP: Vec): LstmEncoderGrads {
  const { n, C, H } = s;
  const f = lstmEncoderRef(p, s);
  const dz = gradXRef(dP, p.W2, n, 2 * H, C, f.z);
  let dY: Float64Array = gradXRef(dz, p.W0, n, 2 * H, 2 * H);
  const layers: LstmEncoderGrads['layers'] = [];
  for (let l = p.layers.length - 1; l >= 0; l--) {
    const { X, K, fwd, rev } = f.layers[l];
    const gf = lstmDirectionBackwardRef(X, p.layers[l].fwd, { n, K, H, reverse: false }, fwd, half(dY, n, H, 0));
    const gr = lstmDirectionBackwardRef(X, p.layers[l].rev, { n, K, H, reverse: true }, rev, half(dY, n, H, 1));
    layers[l] = { fwd: gf, rev: gr };
    dY = Float64Array.from(gf.X, (v, i) => v + gr.X[i]);
  }
  return { E: dY, layers, W0: gradWRef(dz, f.Y, n, 2 * H, 2 * H), b0: gradBRef(dz, n, 2 * H), W2: gradWRef(dP, f.z, n, 2 * H, C), b2: gradBRef(dP, n, C) };
}
