// Plain TypeScript reference for activation.wgsl (float64): GELU (tanh approximation) and SwiGLU, forward and
// backward.

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
