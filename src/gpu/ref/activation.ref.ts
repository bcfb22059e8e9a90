// Plain TypeScript reference for activation.wgsl (float64): GELU (tanh approximation), SwiGLU, ReLU and SiLU,
// forward and backward.

const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/** GPT-2's gelu_new: ½·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function geluRef(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x as ArrayLike<number>, (v) => 0.5 * v * (1 + Math.tanh(GELU_K * (v + GELU_C * v ** 3))));
}

/** dx = dy · gelu'(x). */
export function geluBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x as ArrayLike<number>, (v, i) => {
    const t = Math.tanh(GELU_K * (v + GELU_C * v ** 3));
    const grad = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_K * (1 + 3 * GELU_C * v * v);
    return dy[i] * grad;
  });
}

function sigmoid(g: number): number {
  return 1 / (1 + Math.exp(-g));
}

/** out = silu(gate) ⊙ up, silu(g) = g·σ(g). */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return Float64Array.from(gate as ArrayLike<number>, (g, i) => g * sigmoid(g) * up[i]);
}

export function swigluBackwardRef(
  gate: ArrayLike<number>,
  up: ArrayLike<number>,
  dout: ArrayLike<number>,
): { dgate: Float64Array; dup: Float64Array } {
  const n = gate.length;
  const dgate = new Float64Array(n);
  const dup = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const s = sigmoid(g);
    dgate[i] = dout[i] * up[i] * s * (1 + g * (1 - s));
    dup[i] = dout[i] * g * s;
  }
  return { dgate, dup };
}

/** max(x, 0). */
export function reluRef(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x as ArrayLike<number>, (v) => Math.max(v, 0));
}

/** dx = dy · [x > 0] (0 at x = 0, as torch's threshold_backward). */
export function reluBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x as ArrayLike<number>, (v, i) => (v > 0 ? dy[i] : 0));
}

/** silu(x) = x·σ(x) (torch's SiLU, the adapters' "swish"). */
export function siluRef(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x as ArrayLike<number>, (v) => v * sigmoid(v));
}

/** dx = dy · σ(x)·(1 + x·(1 − σ(x))). */
export function siluBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  return Float64Array.from(x as ArrayLike<number>, (v, i) => {
    const s = sigmoid(v);
    return dy[i] * s * (1 + v * (1 - s));
  });
}

export type UnaryActivationRef = 'gelu_new' | 'relu' | 'silu';

/** The forward and backward of a bottleneck adapter's non_linearity by name. */
export const UNARY_REF: Record<UnaryActivationRef, { forward: (x: ArrayLike<number>) => Float64Array; backward: (x: ArrayLike<number>, dy: ArrayLike<number>) => Float64Array }> = {
  gelu_new: { forward: geluRef, backward: geluBackwardRef },
  relu: { forward: reluRef, backward: reluBackwardRef },
  silu: { forward: siluRef, backward: siluBackwardRef },
};
