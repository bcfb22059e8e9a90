// Plain TypeScript reference for rope.wgsl: the same contract, in float64 except the angle, which is rounded to f32
// as transformers computes it (`inv_freq @ position_ids` in f32), so large positions compare tightly.

export interface RopeShape {
  /** Tokens. */
  T: number;
  /** Heads of this tensor (Hq for Q, Hkv for K). */
  H: number;
  /** head_dim, even. */
  D: number;
}

export interface RopeRefInputs extends RopeShape {
  /** (T, H, D) */
  x: ArrayLike<number>;
  /** (T) position of each token within its sequence. */
  positions: ArrayLike<number>;
  /** (D/2) from ropeInvFreq. */
  invFreq: ArrayLike<number>;
  /** Rotate by −θ: the backward pass. */
  inverse?: boolean;
}

/** y = x·cos θ + rotate_half(x)·sin θ per (token, head), θ[t, i] = f32(pos[t]·invFreq[i]); (T, H, D). */
export function ropeRef(r: RopeRefInputs): Float64Array {
  const { T, H, D } = r;
  const half = D / 2;
  const y = new Float64Array(T * H * D);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const theta = Math.fround(Math.fround(r.positions[t]) * Math.fround(r.invFreq[i]));
      const c = Math.cos(theta);
      const s = r.inverse ? -Math.sin(theta) : Math.sin(theta);
      for (let h = 0; h < H; h++) {
        const lo = (t * H + h) * D + i;
        const x1 = r.x[lo];
        const x2 = r.x[lo + half];
        y[lo] = x1 * c - x2 * s;
        y[lo + half] = x2 * c + x1 * s;
      }
    }
  }
  return y;
}
