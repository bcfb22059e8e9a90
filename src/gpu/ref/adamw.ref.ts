// Plain TypeScript reference for adamw.wgsl, in float64: torch.optim.AdamW (decoupled weight decay, bias
// correction) after torch.nn.utils.clip_grad_norm_ over all trainable tensors, on flat buffers split into segments.

/** One trainable tensor inside the flat buffers. */
export interface AdamwSegment {
  /** First element in the flat buffers. */
  offset: number;
  length: number;
  /** Multiplies the learning rate (LoRA+: a larger one for B). */
  lrScale: number;
  /** false exempts the tensor from weight decay. */
  decay: boolean;
}

export interface AdamwHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** clip_grad_norm_'s max_norm; ≤ 0 disables clipping. */
  maxGradNorm: number;
}

/** The defaults of torch.optim.AdamW (weight_decay 0.01), no clipping. */
export const ADAMW_DEFAULTS: AdamwHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 0 };

export interface AdamwRefState {
  params: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** ‖g‖₂ over the whole flat gradient buffer (padding gaps are zero). */
export function gradNormRef(grads: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < grads.length; i++) sum += grads[i] * grads[i];
  return Math.sqrt(sum);
}

/** clip_grad_norm_'s scale: min(1, maxNorm / (norm + 1e-6)), or 1 when clipping is off. */
export function clipCoefficient(norm: number, maxGradNorm: number): number {
  return maxGradNorm > 0 ? Math.min(1, maxGradNorm / (norm + 1e-6)) : 1;
}

/** The bias corrections for step t (1-based): 1 − β1ᵗ and √(1 − β2ᵗ). */
export function biasCorrections(h: AdamwHyper, step: number): { bc1: number; bc2Sqrt: number } {
  if (!Number.isInteger(step) || step < 1) throw new Error(`adamw: step must be an integer ≥ 1, got ${step}`);
  return { bc1: 1 - h.beta1 ** step, bc2Sqrt: Math.sqrt(1 - h.beta2 ** step) };
}

/** One AdamW step in place on `state`; returns the gradient norm before clipping and the clip coefficient. */
export function adamwStepRef(
  state: AdamwRefState,
  grads: ArrayLike<number>,
  segments: readonly AdamwSegment[],
  h: AdamwHyper,
  step: number,
): { norm: number; coefficient: number } {
  const norm = gradNormRef(grads);
  const coefficient = clipCoefficient(norm, h.maxGradNorm);
  const { bc1, bc2Sqrt } = biasCorrections(h, step);
  for (const s of segments) {
    const lr = h.lr * s.lrScale;
    for (let i = s.offset; i < s.offset + s.length; i++) {
      const g = grads[i] * coefficient;
      if (s.decay) state.params[i] *= 1 - lr * h.weightDecay;
      state.m[i] += (1 - h.beta1) * (g - state.m[i]);
      state.v[i] = h.beta2 * state.v[i] + (1 - h.beta2) * g * g;
      state.params[i] -= (lr / bc1) * (state.m[i] / (Math.sqrt(state.v[i]) / bc2Sqrt + h.eps));
    }
  }
  return { norm, coefficient };
}
