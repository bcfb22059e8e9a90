// Plain TypeScript reference for adalora.wgsl (float64), one module's matrices at a time, and AdaLoRA's whole layer
// (PEFT 0.21 SVDLinear) for the finite-difference checks: y = x·Wᵀ + s·(x·(A ⊙ E)ᵀ)·Bᵀ, s = lora_alpha / (ranknum + 1e-5).
//
// A [r, in] (right singular vectors), E (r) (singular values, lora_E [r, 1]), B [out, r] (left singular vectors).

/** A_eff = diag(E)·A: row i of A scaled by E_i. */
export function effectiveARef(r: number, n: number, A: ArrayLike<number>, E: ArrayLike<number>): Float64Array {
  const out = new Float64Array(r * n);
  for (let i = 0; i < r; i++) for (let k = 0; k < n; k++) out[i * n + k] = E[i] * A[i * n + k];
  return out;
}

/** The chain rule through A_eff = diag(E)·A: dA = diag(E)·dA_eff, dE_i = Σ_k dA_eff[i, k]·A[i, k]. */
export function gradThroughERef(r: number, n: number, A: ArrayLike<number>, E: ArrayLike<number>, dAeff: ArrayLike<number>): { dA: Float64Array; dE: Float64Array } {
  const dA = new Float64Array(r * n);
  const dE = new Float64Array(r);
  for (let i = 0; i < r; i++) {
    for (let k = 0; k < n; k++) {
      dA[i * n + k] = E[i] * dAeff[i * n + k];
      dE[i] += dAeff[i * n + k] * A[i * n + k];
    }
  }
  return { dA, dE };
}

export interface OrthModule {
  in: number;
  out: number;
  A: ArrayLike<number>;
  B: ArrayLike<number>;
}

/** ‖V·Vᵀ − I‖_F for r vectors (v_i[k] = at(i, k), length n) and its gradient coefficient matrix N = VVᵀ − I. */
function gramMinusI(r: number, n: number, at: (i: number, k: number) => number): { N: Float64Array; f: number } {
  const N = new Float64Array(r * r);
  let sq = 0;
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += at(i, k) * at(j, k);
      N[i * r + j] = s - (i === j ? 1 : 0);
      sq += N[i * r + j] ** 2;
    }
  }
  return { N, f: Math.sqrt(sq) };
}

/**
 * AdaLoraModel.forward's regulariser: R = mean over every lora_A and lora_B of ‖AAᵀ − I‖_F and ‖BᵀB − I‖_F, and
 * ∂R/∂A = 2·N_A·A / (f_A·2M), ∂R/∂B = 2·B·N_B / (f_B·2M) (N symmetric; nothing where f = 0).
 */
export function orthRegRef(r: number, modules: readonly OrthModule[]): { R: number; dA: Float64Array[]; dB: Float64Array[] } {
  const count = 2 * modules.length;
  let total = 0;
  const dA: Float64Array[] = [];
  const dB: Float64Array[] = [];
  for (const m of modules) {
    const a = gramMinusI(r, m.in, (i, k) => m.A[i * m.in + k]);
    const b = gramMinusI(r, m.out, (i, k) => m.B[k * r + i]);
    total += a.f + b.f;
    const ga = new Float64Array(r * m.in);
    if (a.f > 0) {
      for (let i = 0; i < r; i++) for (let k = 0; k < m.in; k++) {
        let s = 0;
        for (let j = 0; j < r; j++) s += a.N[i * r + j] * m.A[j * m.in + k];
        ga[i * m.in + k] = (2 * s) / (a.f * count);
      }
    }
    const gb = new Float64Array(m.out * r);
    if (b.f > 0) {
      for (let o = 0; o < m.out; o++) for (let k = 0; k < r; k++) {
        let s = 0;
        for (let j = 0; j < r; j++) s += m.B[o * r + j] * b.N[j * r + k];
        gb[o * r + k] = (2 * s) / (b.f * count);
      }
    }
    dA.push(ga);
    dB.push(gb);
  }
  return { R: total / count, dA, dB };
}

/** RankAllocator.update_ipt for one tensor: ipt = |p·g| (g the clipped gradient), then the two EMAs (in place). */
export function importanceRef(p: ArrayLike<number>, g: ArrayLike<number>, ipt: Float64Array, unc: Float64Array, beta1: number, beta2: number): void {
  for (let i = 0; i < p.length; i++) {
    const x = Math.abs(p[i] * g[i]);
    ipt[i] = beta1 * ipt[i] + (1 - beta1) * x;
    unc[i] = beta2 * unc[i] + (1 - beta2) * Math.abs(x - ipt[i]);
  }
}

/**
 * RankAllocator.mask_to_budget's triplet scores for one module, from the element scores s = ipt_ema·unc of A [r, in],
 * E (r) and B [out, r]: s_E[i] + mean_k s_A[i, k] + mean_o s_B[o, i].
 */
export function tripletScoresRef(r: number, n: number, out: number, sA: ArrayLike<number>, sE: ArrayLike<number>, sB: ArrayLike<number>): Float64Array {
  const scores = new Float64Array(r);
  for (let i = 0; i < r; i++) {
    let a = 0;
    for (let k = 0; k < n; k++) a += sA[i * n + k];
    let b = 0;
    for (let o = 0; o < out; o++) b += sB[o * r + i];
    scores[i] = sE[i] + (a / n + b / out);
  }
  return scores;
}

/** PEFT's scaling of the SVD product: lora_alpha / (ranknum + 1e-5), ranknum = init_r (kept by a resized load). */
export function adaloraScale(alpha: number, initR: number): number {
  return alpha / (initR + 1e-5);
}

export interface AdaloraLayerInputs {
  T: number;
  inFeatures: number;
  outFeatures: number;
  r: number;
  scale: number;
  x: ArrayLike<number>;
  W: ArrayLike<number>;
  A: ArrayLike<number>;
  E: ArrayLike<number>;
  B: ArrayLike<number>;
}

/** SVDLinear.forward without dropout: y = x·Wᵀ + s·(x·(A ⊙ E)ᵀ)·Bᵀ. */
export function adaloraLayerForwardRef(o: AdaloraLayerInputs): Float64Array {
  const { T, inFeatures: n, outFeatures: out, r } = o;
  const Aeff = effectiveARef(r, n, o.A, o.E);
  const y = new Float64Array(T * out);
  for (let t = 0; t < T; t++) {
    const h = new Float64Array(r);
    for (let i = 0; i < r; i++) for (let k = 0; k < n; k++) h[i] += o.x[t * n + k] * Aeff[i * n + k];
    for (let j = 0; j < out; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += o.x[t * n + k] * o.W[j * n + k];
      let l = 0;
      for (let i = 0; i < r; i++) l += h[i] * o.B[j * r + i];
      y[t * out + j] = s + o.scale * l;
    }
  }
  return y;
}

/** The layer's backward to A, E and B given dy: LoRA's dA_eff and dB on A_eff, then gradThroughERef. */
export function adaloraLayerBackwardRef(o: AdaloraLayerInputs, dy: ArrayLike<number>): { dA: Float64Array; dE: Float64Array; dB: Float64Array } {
  const { T, inFeatures: n, outFeatures: out, r } = o;
  const Aeff = effectiveARef(r, n, o.A, o.E);
  const dAeff = new Float64Array(r * n);
  const dB = new Float64Array(out * r);
  for (let t = 0; t < T; t++) {
    const h = new Float64Array(r);
    for (let i = 0; i < r; i++) for (let k = 0; k < n; k++) h[i] += o.x[t * n + k] * Aeff[i * n + k];
    const g = new Float64Array(r); // g = s·dy·B
    for (let i = 0; i < r; i++) for (let j = 0; j < out; j++) g[i] += o.scale * dy[t * out + j] * o.B[j * r + i];
    for (let i = 0; i < r; i++) for (let k = 0; k < n; k++) dAeff[i * n + k] += g[i] * o.x[t * n + k];
    for (let j = 0; j < out; j++) for (let i = 0; i < r; i++) dB[j * r + i] += o.scale * dy[t * out + j] * h[i];
  }
  return { ...gradThroughERef(r, n, o.A, o.E, dAeff), dB };
}
