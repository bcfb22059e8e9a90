// Plain TypeScript reference for xent.wgsl: token-level cross-entropy of the LM head's logits, computed in float64
// from the final hidden states and the head weight, forward (loss sum and count) and backward (dhs).

/** Label value meaning "no loss at this position" (PyTorch's ignore_index). */
export const IGNORE_INDEX = -100;

export interface XentShape {
  /** Positions (rows of hs). */
  T: number;
  /** Hidden size. */
  C: number;
  /** Vocabulary size (rows of Wh). */
  V: number;
}

export interface XentRefInputs extends XentShape {
  hs: ArrayLike<number>; // (T, C) final hidden states
  Wh: ArrayLike<number>; // [V, C] head weight (wte when tied)
  /** (T) already shifted: labels[t] is the token at position t+1, or IGNORE_INDEX. */
  labels: ArrayLike<number>;
}

/** Whether position t has a loss: a label in [0, V) (anything else, −100 included, is ignored). */
export function isCounted(label: number, V: number): boolean {
  return Number.isInteger(label) && label >= 0 && label < V;
}

/** logits (rows, V) = hs[row0 : row0+rows] · Whᵀ. */
export function logitsRef(x: XentRefInputs, row0 = 0, rows = x.T): Float64Array {
  const { C, V } = x;
  const out = new Float64Array(rows * V);
  for (let m = 0; m < rows; m++)
    for (let v = 0; v < V; v++) {
      let acc = 0;
      for (let k = 0; k < C; k++) acc += x.hs[(row0 + m) * C + k] * x.Wh[v * C + k];
      out[m * V + v] = acc;
    }
  return out;
}

function logSumExp(row: Float64Array): number {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

export interface XentForward {
  /** Σ over counted positions of logsumexp(logits_t) − logits_t[label_t]. */
  lossSum: number;
  /** Number of counted positions. */
  count: number;
  /** (T) per-position loss, 0 where ignored. */
  rowLoss: Float64Array;
}

export function xentForwardRef(x: XentRefInputs): XentForward {
  const { T, V } = x;
  const logits = logitsRef(x);
  const rowLoss = new Float64Array(T);
  let lossSum = 0;
  let count = 0;
  for (let t = 0; t < T; t++) {
    const label = x.labels[t];
    if (!isCounted(label, V)) continue;
    const row = logits.subarray(t * V, (t + 1) * V);
    rowLoss[t] = logSumExp(row) - row[label];
    lossSum += rowLoss[t];
    count++;
  }
  return { lossSum, count, rowLoss };
}

/** Gradient of gradScale·lossSum with respect to hs: dhs_t = gradScale·Σ_v (softmax_v − onehot_v)·Wh[v], 0 where ignored. */
export function xentBackwardRef(x: XentRefInputs, gradScale: number): Float64Array {
  return xentGradientsRef(x, gradScale).dhs;
}

/** dhs (T, C) and the LM head's own gradient dWh [V, C] = Σ_t coeff_t ⊗ hs_t (what full fine-tuning of the head
 *  needs), coeff_t = gradScale·(softmax − onehot) on counted rows. */
export function xentGradientsRef(x: XentRefInputs, gradScale: number): { dhs: Float64Array; dWh: Float64Array } {
  const { T, C, V } = x;
  const logits = logitsRef(x);
  const dhs = new Float64Array(T * C);
  const dWh = new Float64Array(V * C);
  for (let t = 0; t < T; t++) {
    const label = x.labels[t];
    if (!isCounted(label, V)) continue;
    const row = logits.subarray(t * V, (t + 1) * V);
    const lse = logSumExp(row);
    for (let v = 0; v < V; v++) {
      const coeff = gradScale * (Math.exp(row[v] - lse) - (v === label ? 1 : 0));
      for (let c = 0; c < C; c++) {
        dhs[t * C + c] += coeff * x.Wh[v * C + c];
        dWh[v * C + c] += coeff * x.hs[t * C + c];
      }
    }
  }
  return { dhs, dWh };
}
