// Plain TypeScript reference for lora.wgsl: the LoRA linear layer y = x·Wᵀ + b + s·B(A(dropout(x))) and its
// backward, in float64, plus the dropout hash the kernel uses (the same integer arithmetic, so tests can rebuild the
// kernel's mask bit for bit).

/** Shapes of one LoRA linear layer. */
export interface LoraShape {
  /** Tokens (rows of x). */
  T: number;
  inFeatures: number;
  outFeatures: number;
  /** LoRA rank. */
  r: number;
  /** GPT-2's Conv1D: W stored [in, out] instead of nn.Linear's [out, in]. */
  conv1d?: boolean;
}

// --- dropout mask ---------------------------------------------------------------------------------------------

/** PCG's output permutation (rxs-m-xs) of one 32-bit state: a cheap, well-mixed integer hash. */
function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The kernel's dropout hash of element `index` (row-major index into x) under `seed`: a u32. lora.wgsl's
 *  `dropHash` computes exactly this, so the backward regenerates the forward's mask instead of storing it. */
export function dropoutHash(seed: number, index: number): number {
  return pcgHash((pcgHash(index) ^ seed) >>> 0);
}

/** Dropout probability p ∈ [0, 1) as the kernel's u32 threshold: an element is kept when hash ≥ threshold, so it is
 *  kept with probability 1 − threshold/2³² ≈ 1 − p. p = 0 gives 0: everything kept. */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout: ${p} is not a probability in [0, 1)`);
  return Math.min(0xffffffff, Math.round(p * 2 ** 32));
}

/** The factor kept elements are scaled by, 1/(1 − p), as the f32 the kernel multiplies with. */
export function dropoutKeepScale(p: number): number {
  return Math.fround(1 / (1 - p));
}

/** The kernel's dropout mask over `count` elements: 0 for dropped ones, 1/(1 − p) (f32) for kept ones. */
export function dropoutMask(seed: number, p: number, count: number): Float64Array {
  const threshold = dropoutThreshold(p);
  const keep = dropoutKeepScale(p);
  const mask = new Float64Array(count);
  for (let i = 0; i < count; i++) mask[i] = dropoutHash(seed, i) >= threshold ? keep : 0;
  return mask;
}

// --- forward and backward --------------------------------------------------------------------------------------

export interface LoraRefInputs extends LoraShape {
  x: ArrayLike<number>; // (T, in)
  /** Frozen base weight: [out, in] (nn.Linear), or [in, out] when conv1d. */
  W: ArrayLike<number>;
  bias?: ArrayLike<number>; // (out)
  A: ArrayLike<number>; // [r, in]
  B: ArrayLike<number>; // [out, r]
  /** s = α/r (see loraScale). */
  scale: number;
  /** (T, in) dropout mask multiplying x on the LoRA path (0 or 1/(1−p)); omitted means no dropout. */
  mask?: ArrayLike<number>;
}

/** W[o, i] whichever way it is stored. */
function weight(x: LoraRefInputs, o: number, i: number): number {
  return x.conv1d ? x.W[i * x.outFeatures + o] : x.W[o * x.inFeatures + i];
}

function dropped(x: LoraRefInputs, t: number, i: number): number {
  const k = t * x.inFeatures + i;
  return x.mask ? x.x[k] * x.mask[k] : x.x[k];
}

/** y = x·Wᵀ + b + s·h·Bᵀ with h = drop(x)·Aᵀ; h is what the forward keeps for the backward. */
export function loraForwardRef(x: LoraRefInputs): { y: Float64Array; h: Float64Array } {
  const { T, inFeatures: I, outFeatures: O, r } = x;
  const h = new Float64Array(T * r); // (T, r)
  for (let t = 0; t < T; t++)
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let i = 0; i < I; i++) acc += dropped(x, t, i) * x.A[j * I + i];
      h[t * r + j] = acc;
    }
  const y = new Float64Array(T * O); // (T, out)
  for (let t = 0; t < T; t++)
    for (let o = 0; o < O; o++) {
      let base = 0;
      for (let i = 0; i < I; i++) base += x.x[t * I + i] * weight(x, o, i);
      let lora = 0;
      for (let j = 0; j < r; j++) lora += h[t * r + j] * x.B[o * r + j];
      y[t * O + o] = base + (x.bias ? x.bias[o] : 0) + x.scale * lora;
    }
  return { y, h };
}

export interface LoraGrads {
  g: Float64Array; // (T, r) = dy·B
  dx: Float64Array; // (T, in)
  dA: Float64Array; // [r, in]
  dB: Float64Array; // [out, r]
}

/** Gradients of Σ dy∘y: dx = dy·W + s·(g·A)∘mask, dA = s·gᵀ·drop(x), dB = s·dyᵀ·h, with g = dy·B. W gets none. */
export function loraBackwardRef(x: LoraRefInputs, dy: ArrayLike<number>): LoraGrads {
  const { T, inFeatures: I, outFeatures: O, r, scale: s } = x;
  const { h } = loraForwardRef(x);
  const g = new Float64Array(T * r);
  for (let t = 0; t < T; t++)
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let o = 0; o < O; o++) acc += dy[t * O + o] * x.B[o * r + j];
      g[t * r + j] = acc;
    }
  const dx = new Float64Array(T * I);
  for (let t = 0; t < T; t++)
    for (let i = 0; i < I; i++) {
      let base = 0;
      for (let o = 0; o < O; o++) base += dy[t * O + o] * weight(x, o, i);
      let lora = 0;
      for (let j = 0; j < r; j++) lora += g[t * r + j] * x.A[j * I + i];
      dx[t * I + i] = base + s * lora * (x.mask ? x.mask[t * I + i] : 1);
    }
  const dA = new Float64Array(r * I);
  for (let j = 0; j < r; j++)
    for (let i = 0; i < I; i++) {
      let acc = 0;
      for (let t = 0; t < T; t++) acc += g[t * r + j] * dropped(x, t, i);
      dA[j * I + i] = s * acc;
    }
  const dB = new Float64Array(O * r);
  for (let o = 0; o < O; o++)
    for (let j = 0; j < r; j++) {
      let acc = 0;
      for (let t = 0; t < T; t++) acc += dy[t * O + o] * h[t * r + j];
      dB[o * r + j] = s * acc;
    }
  return { g, dx, dA, dB };
}
