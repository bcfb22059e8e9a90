// Plain TypeScript reference for attention.wgsl: the same contract in float64, computed the obvious way — the full
// masked score matrix and a softmax per row (fine at test sizes; the kernel never stores it).

export interface AttentionShape {
  /** Tokens, all sequences of the batch packed together. */
  T: number;
  /** Query heads. */
  Hq: number;
  /** Key/value heads; Hq % Hkv == 0 and query head h uses kv head h / (Hq / Hkv). */
  Hkv: number;
  /** head_dim. */
  D: number;
  /** Score scale; 1/√D when omitted. */
  scale?: number;
}

export interface AttentionRefInputs extends AttentionShape {
  /** (T, Hq, D) */
  Q: ArrayLike<number>;
  /** (T, Hkv, D) */
  K: ArrayLike<number>;
  /** (T, Hkv, D) */
  V: ArrayLike<number>;
  /** (T) segment id per token: token i sees j iff j ≤ i and seg[j] == seg[i]. */
  seg: ArrayLike<number>;
}

export function attentionScale(shape: AttentionShape): number {
  return shape.scale ?? 1 / Math.sqrt(shape.D);
}

/** Can query token i see key token j? */
export function visible(seg: ArrayLike<number>, i: number, j: number): boolean {
  return j <= i && seg[j] === seg[i];
}

/** P[h][i·T + j]: each query head's masked softmax, (Hq, T, T), 0 where not visible; and L (T, Hq). */
function probabilities(x: AttentionRefInputs): { P: Float64Array[]; L: Float64Array } {
  const { T, Hq, Hkv, D } = x;
  const scale = attentionScale(x);
  const G = Hq / Hkv;
  const L = new Float64Array(T * Hq);
  const P: Float64Array[] = [];
  for (let h = 0; h < Hq; h++) {
    const g = Math.floor(h / G);
    const ph = new Float64Array(T * T);
    for (let i = 0; i < T; i++) {
      let max = -Infinity;
      for (let j = 0; j <= i; j++) {
        if (!visible(x.seg, i, j)) continue;
        let s = 0;
        for (let d = 0; d < D; d++) s += x.Q[(i * Hq + h) * D + d] * x.K[(j * Hkv + g) * D + d];
        ph[i * T + j] = s * scale;
        max = Math.max(max, s * scale);
      }
      let sum = 0;
      for (let j = 0; j <= i; j++) if (visible(x.seg, i, j)) sum += Math.exp(ph[i * T + j] - max);
      L[i * Hq + h] = max + Math.log(sum);
      for (let j = 0; j < T; j++) ph[i * T + j] = visible(x.seg, i, j) ? Math.exp(ph[i * T + j] - L[i * Hq + h]) : 0;
    }
    P.push(ph);
  }
  return { P, L };
}

/** O (T, Hq, D) and the per-row log-sum-exp L (T, Hq) of the scaled scores. */
export function attentionRef(x: AttentionRefInputs): { O: Float64Array; L: Float64Array } {
  const { T, Hq, Hkv, D } = x;
  checkShape(x);
  const G = Hq / Hkv;
  const { P, L } = probabilities(x);
  const O = new Float64Array(T * Hq * D);
  for (let h = 0; h < Hq; h++) {
    const g = Math.floor(h / G);
    for (let i = 0; i < T; i++)
      for (let j = 0; j < T; j++) {
        const pij = P[h][i * T + j];
        if (pij === 0) continue;
        for (let d = 0; d < D; d++) O[(i * Hq + h) * D + d] += pij * x.V[(j * Hkv + g) * D + d];
      }
  }
  return { O, L };
}

/** dQ (T, Hq, D), dK and dV (T, Hkv, D) for upstream dO (T, Hq, D): the textbook softmax backward. */
export function attentionBackwardRef(x: AttentionRefInputs & { dO: ArrayLike<number> }): {
  dQ: Float64Array;
  dK: Float64Array;
  dV: Float64Array;
} {
  const { T, Hq, Hkv, D } = x;
  checkShape(x);
  const scale = attentionScale(x);
  const G = Hq / Hkv;
  const { P } = probabilities(x);
  const dQ = new Float64Array(T * Hq * D);
  const dK = new Float64Array(T * Hkv * D);
  const dV = new Float64Array(T * Hkv * D);
  const dP = new Float64Array(T);
  for (let h = 0; h < Hq; h++) {
    const g = Math.floor(h / G);
    for (let i = 0; i < T; i++) {
      const qi = (i * Hq + h) * D;
      // dP_ij = dO_i·V_j; softmax backward: dS_ij = P_ij (dP_ij − Σ_k P_ik dP_ik)
      let rowDot = 0;
      for (let j = 0; j < T; j++) {
        dP[j] = 0;
        for (let d = 0; d < D; d++) dP[j] += x.dO[qi + d] * x.V[(j * Hkv + g) * D + d];
        rowDot += P[h][i * T + j] * dP[j];
      }
      for (let j = 0; j < T; j++) {
        const pij = P[h][i * T + j];
        if (pij === 0) continue;
        const dS = pij * (dP[j] - rowDot);
        const kj = (j * Hkv + g) * D;
        for (let d = 0; d < D; d++) {
          dQ[qi + d] += scale * dS * x.K[kj + d];
          dK[kj + d] += scale * dS * x.Q[qi + d];
          dV[kj + d] += pij * x.dO[qi + d];
        }
      }
    }
  }
  return { dQ, dK, dV };
}

export class AttentionShapeError extends Error {
  override name = 'AttentionShapeError';
}

export function checkShape(s: AttentionShape): void {
  const { T, Hq, Hkv, D } = s;
  for (const [k, v] of Object.entries({ T, Hq, Hkv, D })) {
    if (!Number.isInteger(v) || v < (k === 'T' ? 0 : 1)) throw new AttentionShapeError(`attention: ${k} must be a positive integer, got ${v}`);
  }
  if (Hq % Hkv !== 0) throw new AttentionShapeError(`attention: Hq (${Hq}) must be a multiple of Hkv (${Hkv})`);
}
