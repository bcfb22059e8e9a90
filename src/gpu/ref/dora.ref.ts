// Plain TypeScript reference for dora.wgsl / dora_nf4.wgsl and for the whole DoRA linear layer, in float64, written
// from PEFT 0.21's DoraLinearLayer.forward and DoraLinearVariant.forward (peft/tuners/lora/dora.py, variants.py):
//   n = ‖W + s·B·A‖ per output row, detached (no gradient flows through it); c = m / n
//   without dropout (p = 0, or evaluation): PEFT takes base_result = base(x) − bias, so
//       y = W·x + b + (c − 1)⊙(W·x) + c⊙s·B·A·x = c⊙(W·x + s·B·A·x) + b
//   with dropout: base_result = W·drop(x) (recomputed, no bias), so
//       y = W·x + b + (c − 1)⊙(W·drop(x)) + c⊙s·B·A·drop(x)
// The bias is never scaled. The runtime keeps zl = W·drop(x) + s·B·A·drop(x) (drop = identity without dropout):
//   dm = Σ_t dy ⊙ zl / n;  dB = s·(c⊙dy)ᵀ·h (h = A·drop(x));  dA = s·(B ᵀ(c⊙dy))ᵀ-rows·drop(x)
//   dx = Wᵀ·dy + mask ⊙ (Wᵀ((c − 1)⊙dy) + s·Aᵀ·Bᵀ(c⊙dy))      (with p = 0: Wᵀ(c⊙dy) + s·AᵀBᵀ(c⊙dy))

/** One DoRA weight norm: W [out, in] (or Conv1D [in, out]), A [r, in], B [out, r], s. */
export interface DoraNormShape {
  out: number;
  in: number;
  r: number;
  scale: number;
}

/** W as [out, in] whatever its storage. */
function rowMajor(W: ArrayLike<number>, out: number, inDim: number, conv1d: boolean): Float64Array {
  const w = new Float64Array(out * inDim);
  for (let j = 0; j < out; j++) for (let i = 0; i < inDim; i++) w[j * inDim + i] = conv1d ? W[i * out + j] : W[j * inDim + i];
  return w;
}

/** n = ‖W + s·B·A‖ over each output row (PEFT's get_weight_norm after transpose for fan_in_fan_out). */
export function doraWeightNormRef(s: DoraNormShape, W: ArrayLike<number>, A: ArrayLike<number>, B: ArrayLike<number>, conv1d = false): Float64Array {
  const w = rowMajor(W, s.out, s.in, conv1d);
  const n = new Float64Array(s.out);
  for (let j = 0; j < s.out; j++) {
    let acc = 0;
    for (let i = 0; i < s.in; i++) {
      let ba = 0;
      for (let k = 0; k < s.r; k++) ba += B[j * s.r + k] * A[k * s.in + i];
      const v = w[j * s.in + i] + s.scale * ba;
      acc += v * v;
    }
    n[j] = Math.sqrt(acc);
  }
  return n;
}

/** dora.wgsl's output entry: c ⊙ zl (− z) (+ bias) (+ y0) over (rows, n). */
export function doraOutputRef(
  s: { rows: number; n: number },
  zl: ArrayLike<number>,
  c: ArrayLike<number>,
  o: { z?: ArrayLike<number>; bias?: ArrayLike<number>; y0?: ArrayLike<number> } = {},
): Float64Array {
  const y = new Float64Array(s.rows * s.n);
  for (let t = 0; t < s.rows; t++) {
    for (let j = 0; j < s.n; j++) {
      const i = t * s.n + j;
      y[i] = c[j] * zl[i] - (o.z ? o.z[i] : 0) + (o.bias ? o.bias[j] : 0) + (o.y0 ? o.y0[i] : 0);
    }
  }
  return y;
}

/** dora.wgsl's magnitude_grad entry: Σ_rows dy ⊙ zl / n per column (+ dm0). */
export function doraMagnitudeGradRef(s: { rows: number; n: number }, dy: ArrayLike<number>, zl: ArrayLike<number>, norm: ArrayLike<number>, dm0?: ArrayLike<number>): Float64Array {
  const dm = new Float64Array(s.n);
  for (let j = 0; j < s.n; j++) {
    let sum = 0;
    for (let t = 0; t < s.rows; t++) sum += dy[t * s.n + j] * zl[t * s.n + j];
    dm[j] = sum / norm[j] + (dm0 ? dm0[j] : 0);
  }
  return dm;
}

export interface DoraLayerInputs {
  T: number;
  inFeatures: number;
  outFeatures: number;
  r: number;
  scale: number;
  x: ArrayLike<number>; // (T, in)
  /** [out, in], or [in, out] when conv1d. */
  W: ArrayLike<number>;
  conv1d?: boolean;
  bias?: ArrayLike<number>; // (out)
  A: ArrayLike<number>; // [r, in]
  B: ArrayLike<number>; // [out, r]
  m: ArrayLike<number>; // (out)
  /** Dropout mask over x's elements (0 or 1/(1−p)); omitted: no dropout (PEFT's base_result path). */
  mask?: ArrayLike<number>;
  /** The detached norm, held at these values (finite differences of A and B); omitted: computed from W, A, B. */
  norm?: ArrayLike<number>;
}

/** The DoRA layer's forward as PEFT computes it (see the file header). */
export function doraLayerForwardRef(p: DoraLayerInputs): { y: Float64Array; n: Float64Array } {
  const { T, inFeatures: I, outFeatures: O, r } = p;
  const w = rowMajor(p.W, O, I, !!p.conv1d);
  const n = p.norm ? Float64Array.from(p.norm) : doraWeightNormRef({ out: O, in: I, r, scale: p.scale }, w, p.A, p.B);
  const y = new Float64Array(T * O);
  for (let t = 0; t < T; t++) {
    const xd = new Float64Array(I);
    for (let i = 0; i < I; i++) xd[i] = p.x[t * I + i] * (p.mask ? p.mask[t * I + i] : 1);
    const h = new Float64Array(r);
    for (let k = 0; k < r; k++) for (let i = 0; i < I; i++) h[k] += p.A[k * I + i] * xd[i];
    for (let j = 0; j < O; j++) {
      let wx = 0;
      let wxd = 0;
      for (let i = 0; i < I; i++) {
        wx += w[j * I + i] * p.x[t * I + i];
        wxd += w[j * I + i] * xd[i];
      }
      let v = 0;
      for (let k = 0; k < r; k++) v += p.B[j * r + k] * h[k];
      const c = p.m[j] / n[j];
      y[t * O + j] = wx + (p.bias ? p.bias[j] : 0) + (c - 1) * wxd + c * p.scale * v;
    }
  }
  return { y, n };
}

export interface DoraLayerGrads {
  dx: Float64Array;
  dA: Float64Array;
  dB: Float64Array;
  dm: Float64Array;
}

/** Gradients of Σ y ⊙ dy with respect to x, A, B and m, n held constant (PEFT detaches it). */
export function doraLayerBackwardRef(p: DoraLayerInputs, dy: ArrayLike<number>): DoraLayerGrads {
  const { T, inFeatures: I, outFeatures: O, r, scale: s } = p;
  const w = rowMajor(p.W, O, I, !!p.conv1d);
  const n = p.norm ? Float64Array.from(p.norm) : doraWeightNormRef({ out: O, in: I, r, scale: s }, w, p.A, p.B);
  const c = Float64Array.from({ length: O }, (_, j) => p.m[j] / n[j]);
  const dx = new Float64Array(T * I);
  const dA = new Float64Array(r * I);
  const dB = new Float64Array(O * r);
  const dm = new Float64Array(O);
  for (let t = 0; t < T; t++) {
    const mk = (i: number) => (p.mask ? p.mask[t * I + i] : 1);
    const xd = Float64Array.from({ length: I }, (_, i) => p.x[t * I + i] * mk(i));
    const h = new Float64Array(r);
    for (let k = 0; k < r; k++) for (let i = 0; i < I; i++) h[k] += p.A[k * I + i] * xd[i];
    const dyc = Float64Array.from({ length: O }, (_, j) => dy[t * O + j] * c[j]);
    // dm: zl = W·xd + s·B·h
    for (let j = 0; j < O; j++) {
      let zl = 0;
      for (let i = 0; i < I; i++) zl += w[j * I + i] * xd[i];
      for (let k = 0; k < r; k++) zl += s * p.B[j * r + k] * h[k];
      dm[j] += (dy[t * O + j] * zl) / n[j];
    }
    // g = Bᵀ·dyc (r)
    const g = new Float64Array(r);
    for (let k = 0; k < r; k++) for (let j = 0; j < O; j++) g[k] += p.B[j * r + k] * dyc[j];
    for (let j = 0; j < O; j++) for (let k = 0; k < r; k++) dB[j * r + k] += s * dyc[j] * h[k];
    for (let k = 0; k < r; k++) for (let i = 0; i < I; i++) dA[k * I + i] += s * g[k] * xd[i];
    for (let i = 0; i < I; i++) {
      let direct = 0;
      let dropped = 0;
      for (let j = 0; j < O; j++) {
        direct += w[j * I + i] * dy[t * O + j];
        dropped += w[j * I + i] * (c[j] - 1) * dy[t * O + j];
      }
      for (let k = 0; k < r; k++) dropped += s * p.A[k * I + i] * g[k];
      dx[t * I + i] = direct + mk(i) * dropped;
    }
  }
  return { dx, dA, dB, dm };
}
