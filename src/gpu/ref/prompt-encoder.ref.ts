// Plain TypeScript reference for prompt_encoder.wgsl (float64): P-tuning's MLP prompt encoder (PEFT's PromptEncoder,
// MLP type: Linear(C, H) → ReLU → Linear(H, H) → ReLU → Linear(H, C) over the (n, C) table), its layers and its
// backward. Also what the export runs: PEFT saves the encoder's output as prompt_embeddings.

type Vec = ArrayLike<number>;

/** Y (rows, O) = act(X (rows, K) · Wᵀ + b), W (O, K); act ReLU (`true` or 'relu'), tanh, or none. */
export function linearRef(X: Vec, W: Vec, b: Vec, rows: number, K: number, O: number, act: boolean | 'relu' | 'tanh'): Float64Array {
  const relu = act === true || act === 'relu';
  const Y = new Float64Array(rows * O);
  for (let i = 0; i < rows; i++) {
    for (let o = 0; o < O; o++) {
      let s = b[o];
      for (let k = 0; k < K; k++) s += X[i * K + k] * W[o * K + k];
      Y[i * O + o] = relu ? Math.max(s, 0) : act === 'tanh' ? Math.tanh(s) : s;
    }
  }
  return Y;
}

/** dW (O, K) = dZᵀ · X. */
export function gradWRef(dZ: Vec, X: Vec, rows: number, K: number, O: number): Float64Array {
  const dW = new Float64Array(O * K);
  for (let i = 0; i < rows; i++) for (let o = 0; o < O; o++) for (let k = 0; k < K; k++) dW[o * K + k] += dZ[i * O + o] * X[i * K + k];
  return dW;
}

/** db (O) = Σ_i dZ[i]. */
export function gradBRef(dZ: Vec, rows: number, O: number): Float64Array {
  const db = new Float64Array(O);
  for (let i = 0; i < rows; i++) for (let o = 0; o < O; o++) db[o] += dZ[i * O + o];
  return db;
}

/** dX (rows, K) = dZ · W, zero where the mask H (the layer input's ReLU output) is not positive — or, with `kind`
 *  'tanh', times 1 − H² (H the layer input's tanh output). */
export function gradXRef(dZ: Vec, W: Vec, rows: number, K: number, O: number, H?: Vec, kind: 'relu' | 'tanh' = 'relu'): Float64Array {
  const dX = new Float64Array(rows * K);
  for (let i = 0; i < rows; i++) {
    for (let k = 0; k < K; k++) {
      if (H && kind === 'relu' && H[i * K + k] <= 0) continue;
      let s = 0;
      for (let o = 0; o < O; o++) s += dZ[i * O + o] * W[o * K + k];
      dX[i * K + k] = H && kind === 'tanh' ? s * (1 - H[i * K + k] * H[i * K + k]) : s;
    }
  }
  return dX;
}

/** The encoder's parameters, by PEFT's names (prompt_encoder.default.…): embedding (n, C), mlp_head.0 (H, C),
 *  mlp_head.2 (H, H), mlp_head.4 (C, H), each Linear with its bias. */
export interface PromptEncoderParams {
  E: Vec;
  W0: Vec;
  b0: Vec;
  W2: Vec;
  b2: Vec;
  W4: Vec;
  b4: Vec;
}

export interface PromptEncoderShape {
  n: number;
  C: number;
  H: number;
}

/** The encoder's forward: the virtual tokens' embeddings P (n, C), and the two hidden activations. */
export function promptEncoderRef(p: PromptEncoderParams, s: PromptEncoderShape): { h1: Float64Array; h2: Float64Array; P: Float64Array } {
  const h1 = linearRef(p.E, p.W0, p.b0, s.n, s.C, s.H, true);
  const h2 = linearRef(h1, p.W2, p.b2, s.n, s.H, s.H, true);
  return { h1, h2, P: linearRef(h2, p.W4, p.b4, s.n, s.H, s.C, false) };
}

/** The gradient of every parameter from dP (n, C), the gradient of the encoder's output. */
export function promptEncoderBackwardRef(p: PromptEncoderParams, s: PromptEncoderShape, dP: Vec): Record<keyof PromptEncoderParams, Float64Array> {
  const { h1, h2 } = promptEncoderRef(p, s);
  const dz2 = gradXRef(dP, p.W4, s.n, s.H, s.C, h2);
  const dz1 = gradXRef(dz2, p.W2, s.n, s.H, s.H, h1);
  return {
    W4: gradWRef(dP, h2, s.n, s.H, s.C),
    b4: gradBRef(dP, s.n, s.C),
    W2: gradWRef(dz2, h1, s.n, s.H, s.H),
    b2: gradBRef(dz2, s.n, s.H),
    W0: gradWRef(dz1, p.E, s.n, s.C, s.H),
    b0: gradBRef(dz1, s.n, s.H),
    E: gradXRef(dz1, p.W0, s.n, s.C, s.H),
  };
}

/** Prefix tuning's reparameterisation (PEFT's PrefixEncoder with prefix_projection): embedding (n, K) →
 *  Linear(K, H) → tanh → Linear(H, O), K = token_dim, O = L·2·token_dim, by PEFT's names (transform.0, transform.2). */
export interface PrefixEncoderParams {
  E: Vec;
  W0: Vec;
  b0: Vec;
  W2: Vec;
  b2: Vec;
}

export interface PrefixEncoderShape {
  n: number;
  K: number;
  H: number;
  O: number;
}

/** The projection's forward: the key/value table (n, O) and the hidden tanh activation h (n, H). */
export function prefixEncoderRef(p: PrefixEncoderParams, s: PrefixEncoderShape): { h: Float64Array; table: Float64Array } {
  const h = linearRef(p.E, p.W0, p.b0, s.n, s.K, s.H, 'tanh');
  return { h, table: linearRef(h, p.W2, p.b2, s.n, s.H, s.O, false) };
}

/** The gradient of every parameter from dTable (n, O). */
export function prefixEncoderBackwardRef(p: PrefixEncoderParams, s: PrefixEncoderShape, dTable: Vec): Record<keyof PrefixEncoderParams, Float64Array> {
  const { h } = prefixEncoderRef(p, s);
  const dz = gradXRef(dTable, p.W2, s.n, s.H, s.O, h, 'tanh');
  return {
    W2: gradWRef(dTable, h, s.n, s.H, s.O),
    b2: gradBRef(dTable, s.n, s.O),
    W0: gradWRef(dz, p.E, s.n, s.K, s.H),
    b0: gradBRef(dz, s.n, s.H),
    E: gradXRef(dz, p.W0, s.n, s.K, s.H),
  };
}
