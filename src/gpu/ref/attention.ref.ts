// Plain TypeScript reference for attention.wgsl: the same contract in float64, computed the obvious way — the full
// masked score matrix and a softmax per row (fine at test sizes; the kernel never stores it).
//
// Prefix rows (prefix tuning): with P > 0, every query additionally sees P key/value rows (prefixKV) ahead of its
// own keys, unmasked and shared by every segment. Internally key column c < P is prefix row c, column P + j is token j.

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
  /** Prefix key/value rows every query sees ahead of its segment's keys (prefix tuning); 0 when omitted. */
  P?: number;
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
  /** (P, 2, Hkv, D): row p holds prefix key p, then prefix value p (used as given: no RoPE, no mask). Needed iff P > 0. */
  prefixKV?: ArrayLike<number>;
}

export function attentionScale(shape: AttentionShape): number {
  return shape.scale ?? 1 / Math.sqrt(shape.D);
}

/** Can query token i see key token j? */
export function visible(seg: ArrayLike<number>, i: number, j: number): boolean {
  return j <= i && seg[j] === seg[i];
}

/** Prefix rows of the shape (0 when omitted). */
export function prefixRows(shape: AttentionShape): number {
  return shape.P ?? 0;
}

/** Key column c (prefix rows first, then tokens) of kv head g: its key and value row offsets, and which array. */
function column(x: AttentionRefInputs, c: number, g: number): { keys: ArrayLike<number>; values: ArrayLike<number>; k: number; v: number } {
  const { Hkv, D } = x;
  const P = prefixRows(x);
  if (c < P) {
    const pre = x.prefixKV as ArrayLike<number>;
    return { keys: pre, values: pre, k: ((c * 2) * Hkv + g) * D, v: ((c * 2 + 1) * Hkv + g) * D };
  }
  const o = ((c - P) * Hkv + g) * D;
  return { keys: x.K, values: x.V, k: o, v: o };
}

/** Can query token i see key column c (prefix rows: always)? */
function sees(x: AttentionRefInputs, i: number, c: number): boolean {
  const P = prefixRows(x);
  return c < P || visible(x.seg, i, c - P);
}

/** P[h][i·N + c], N = P + T key columns: each query head's masked softmax, (Hq, T, N), 0 where not visible; and L
 *  (T, Hq). */
function probabilities(x: AttentionRefInputs): { P: Float64Array[]; L: Float64Array } {
  const { T, Hq, Hkv, D } = x;
  const scale = attentionScale(x);
  const G = Hq / Hkv;
  const N = prefixRows(x) + T;
  const L = new Float64Array(T * Hq);
  const P: Float64Array[] = [];
  for (let h = 0; h < Hq; h++) {
    const g = Math.floor(h / G);
    const ph = new Float64Array(T * N);
    for (let i = 0; i < T; i++) {
      const last = prefixRows(x) + i; // columns past the query's own token are never visible
      let max = -Infinity;
      for (let c = 0; c <= last; c++) {
        if (!sees(x, i, c)) continue;
        const { keys, k } = column(x, c, g);
        let s = 0;
        for (let d = 0; d < D; d++) s += x.Q[(i * Hq + h) * D + d] * keys[k + d];
        ph[i * N + c] = s * scale;
        max = Math.max(max, s * scale);
      }
      let sum = 0;
      for (let c = 0; c <= last; c++) if (sees(x, i, c)) sum += Math.exp(ph[i * N + c] - max);
      L[i * Hq + h] = max + Math.log(sum);
      for (let c = 0; c < N; c++) ph[i * N + c] = sees(x, i, c) ? Math.exp(ph[i * N + c] - L[i * Hq + h]) : 0;
    }
    P.push(ph);
  }
  return { P, L };
}

/** O (T, Hq, D) and the per-row log-sum-exp L (T, Hq) of the scaled scores (prefix rows included). */
export function attentionRef(x: AttentionRefInputs): { O: Float64Array; L: Float64Array } {
  const { T, Hq, Hkv, D } = x;
  checkInputs(x);
  const G = Hq / Hkv;
  const N = prefixRows(x) + T;
  const { P, L } = probabilities(x);
  const O = new Float64Array(T * Hq * D);
  for (let h = 0; h < Hq; h++) {
    const g = Math.floor(h / G);
    for (let i = 0; i < T; i++)
      for (let c = 0; c < N; c++) {
        const pij = P[h][i * N + c];
        if (pij === 0) continue;
        const { values, v } = column(x, c, g);
        for (let d = 0; d < D; d++) O[(i * Hq + h) * D + d] += pij * values[v + d];
      }
  }
  return { O, L };
}

/** dQ (T, Hq, D), dK and dV (T, Hkv, D), and dPrefixKV (P, 2, Hkv, D; empty when P = 0) for upstream dO (T, Hq, D):
 *  the textbook softmax backward. */
export function attentionBackwardRef(x: AttentionRefInputs & { dO: ArrayLike<number> }): {
  dQ: Float64Array;
  dK: Float64Array;
  dV: Float64Array;
  dPrefixKV: Float64Array;
} {
  const { T, Hq, Hkv, D } = x;
  checkInputs(x);
  const scale = attentionScale(x);
  const G = Hq / Hkv;
  const Pn = prefixRows(x);
  const N = Pn + T;
  const { P } = probabilities(x);
  const dQ = new Float64Array(T * Hq * D);
  const dK = new Float64Array(T * Hkv * D);
  const dV = new Float64Array(T * Hkv * D);
  const dPrefixKV = new Float64Array(Pn * 2 * Hkv * D);
  const dP = new Float64Array(N);
  for (let h = 0; h < Hq; h++) {
    const g = Math.floor(h / G);
    for (let i = 0; i < T; i++) {
      const qi = (i * Hq + h) * D;
      // dP_ic = dO_i·V_c; softmax backward: dS_ic = P_ic (dP_ic − Σ_k P_ik dP_ik)
      let rowDot = 0;
      for (let c = 0; c < N; c++) {
        const { values, v } = column(x, c, g);
        dP[c] = 0;
        for (let d = 0; d < D; d++) dP[c] += x.dO[qi + d] * values[v + d];
        rowDot += P[h][i * N + c] * dP[c];
      }
      for (let c = 0; c < N; c++) {
        const pij = P[h][i * N + c];
        if (pij === 0) continue;
        const dS = pij * (dP[c] - rowDot);
        const { keys, k, v } = column(x, c, g);
        const [gk, gv] = c < Pn ? [dPrefixKV, dPrefixKV] : [dK, dV];
        for (let d = 0; d < D; d++) {
          dQ[qi + d] += scale * dS * keys[k + d];
          gk[k + d] += scale * dS * x.Q[qi + d];
          gv[v + d] += pij * x.dO[qi + d];
        }
      }
    }
  }
  return { dQ, dK, dV, dPrefixKV };
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
  if (s.P !== undefined && (!Number.isInteger(s.P) || s.P < 0)) {
    throw new AttentionShapeError(`attention: P (prefix rows) must be a non-negative integer, got ${s.P}`);
  }
}

/** checkShape, and the prefix rows' buffer present with (P, 2, Hkv, D) elements exactly when P > 0. */
function checkInputs(x: AttentionRefInputs): void {
  checkShape(x);
  const P = prefixRows(x);
  if (P === 0) {
    if (x.prefixKV !== undefined && x.prefixKV.length > 0) throw new AttentionShapeError('attention: prefixKV given but P is 0');
    return;
  }
  const want = P * 2 * x.Hkv * x.D;
  if (x.prefixKV === undefined) throw new AttentionShapeError(`attention: P = ${P} prefix rows need prefixKV (P, 2, Hkv, D)`);
  if (x.prefixKV.length !== want) {
    throw new AttentionShapeError(`attention: prefixKV has ${x.prefixKV.length} elements, (P, 2, Hkv, D) = (${P}, 2, ${x.Hkv}, ${x.D}) needs ${want}`);
  }
}
