// Pure arithmetic of the benchmarks: robust central values, FLOP counts of the benchmarked operations and the
// units they are reported in. No GPU here, so scripts/bench-lib.test.ts can check every formula.

/** The median of `xs` (the mean of the two middle values for an even count). Throws on an empty list. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of an empty list');
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** FLOPs of an (M, K) × (K, N) product: one multiply and one add per term. */
export function matmulFlops(M: number, N: number, K: number): number {
  return 2 * M * N * K;
}

/** Billions of floating-point operations per second for `flops` done in `ms` milliseconds. */
export function gflops(flops: number, ms: number): number {
  if (!(ms > 0)) throw new RangeError(`gflops: time ${ms} ms must be positive`);
  return flops / (ms * 1e6);
}

export interface LoraLayerShape {
  /** Tokens (rows of x). */
  T: number;
  inFeatures: number;
  outFeatures: number;
  r: number;
}

/** FLOPs of one LoRA linear layer's forward and backward (the base weight frozen, x needing its gradient):
 *  forward  h = x·Aᵀ (T·in·r), y = x·Wᵀ (T·in·out), y += s·h·Bᵀ (T·r·out);
 *  backward g = dy·B (T·out·r), dB = dyᵀ·h (out·T·r), dx = dy·W (T·out·in), dx += g·A (T·r·in), dA = gᵀ·x (r·T·in).
 *  Fused and unfused kernels do the same arithmetic, so one count serves both. */
export function loraForwardBackwardFlops(s: LoraLayerShape): number {
  const { T, inFeatures: i, outFeatures: o, r } = s;
  const forward = T * i * r + T * i * o + T * r * o;
  const backward = T * o * r + o * T * r + T * o * i + T * r * i + r * T * i;
  return 2 * (forward + backward);
}

/** `a / b`, or null when either is missing or b is zero (a ratio that cannot be formed is shown as "–"). */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return null;
  return a / b;
}

// --- formatting ------------------------------------------------------------------------------------------------

const MISSING = '–';

/** A number with `digits` significant digits, without exponent notation for the magnitudes we print. */
export function formatNumber(x: number | null | undefined, digits = 3): string {
  if (x == null || !Number.isFinite(x)) return MISSING;
  if (x === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(x)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return x.toFixed(Math.min(decimals, 6));
}

export function formatMs(ms: number | null | undefined): string {
  return ms == null ? MISSING : `${formatNumber(ms)} ms`;
}

export function formatRatio(x: number | null | undefined): string {
  return x == null || !Number.isFinite(x) ? MISSING : `${x.toFixed(2)}×`;
}

/** Bytes in binary units (KiB, MiB, GiB), three significant digits. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes == null || !Number.isFinite(bytes)) return MISSING;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${formatNumber(v)} ${units[u]}`;
}

/** "512×768×2304" for an M×K×N product. */
export function formatShape(...dims: number[]): string {
  return dims.join('×');
}

/** max |a − b| / max |b|: how far a result is from a reference, relative to the reference's scale (a single number
 *  for a table; the kernel tests do the element-wise tolerance checks). */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`maxRelDiff: lengths ${a.length} and ${b.length} differ`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  if (Number.isNaN(diff)) return NaN;
  return scale === 0 ? diff : diff / scale;
}

export function formatSci(x: number | null | undefined): string {
  return x == null ? MISSING : Number.isFinite(x) ? x.toExponential(1) : String(x);
}

export interface TrainingStepShape {
  /** Batch × sequence length: the tokens one optimizer step processes. */
  tokens: number;
  seqLen: number;
  layers: number;
  /** Σ in·out over every linear layer of the blocks (the frozen base). */
  linearParams: number;
  vocab: number;
  hidden: number;
  /** numHeads · headDim. */
  qDim: number;
}

/** Model FLOPs of one LoRA training step: what the step must compute, not what the kernels happen to do.
 *  Frozen weights need no weight gradient, so each linear (and the LM head) costs a forward and an input-gradient
 *  product, 4·params per token; causal attention costs 2·T·qDim per token forward (QKᵀ and PV, half the square) and
 *  twice that backward, 6·T·qDim per token per layer. The rank-r LoRA terms and the element-wise ops are left out
 *  (2.6–2.7% more at r = 16 on every linear layer of GPT-2 small and Qwen2.5-0.5B). */
export function trainingStepFlops(s: TrainingStepShape): number {
  const dense = 4 * s.tokens * (s.linearParams + s.vocab * s.hidden);
  const attention = 6 * s.layers * s.tokens * s.seqLen * s.qDim;
  return dense + attention;
}
