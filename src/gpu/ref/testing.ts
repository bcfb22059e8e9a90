// Helpers shared by the kernel tests: seeded random inputs and an explicit-tolerance comparison that reports the
// first mismatches (llm.c's validate_result). Used by tests only.

/** mulberry32: a small seeded PRNG, so every test input is reproducible from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` values uniform in [-scale, scale). */
export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() * 2 - 1) * scale;
  return out;
}

export interface Tolerance {
  abs: number;
  rel: number;
}

/** Indices where |actual − expected| > abs + rel·|expected|, described, at most `show` of them. */
export function mismatches(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, show = 5): string[] {
  const out: string[] = [];
  if (actual.length !== expected.length) return [`length ${actual.length} ≠ expected ${expected.length}`];
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const ok = Number.isFinite(a) && Math.abs(a - e) <= tol.abs + tol.rel * Math.abs(e);
    if (!ok) {
      count++;
      if (out.length < show) out.push(`[${i}] got ${a}, expected ${e} (diff ${Math.abs(a - e).toExponential(2)})`);
    }
  }
  if (count > show) out.push(`… ${count - show} more of ${expected.length}`);
  return out;
}

/** ∂loss/∂x[i] by float64 central differences, one coordinate at a time: the independent check of every
 *  reference backward. `loss` may keep the array it is given only for the duration of the call. */
export function numericGrad(loss: (x: Float64Array) => number, x0: ArrayLike<number>, h = 1e-6): Float64Array {
  const x = Float64Array.from(x0 as ArrayLike<number>);
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = v + h;
    const up = loss(x);
    x[i] = v - h;
    const down = loss(x);
    x[i] = v;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}
