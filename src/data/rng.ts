// Seeded randomness for data order: shuffles and eval splits that a seed reproduces exactly, on
// every platform (no Math.random). The generator is SplitMix32-seeded xoshiro128**; its state is
// four uint32s so a checkpoint can store and restore it.

export class Rng {
  private s: Uint32Array;

  constructor(seed: number | readonly number[]) {
    if (typeof seed === 'number') {
      // SplitMix32 spreads one seed over the 128-bit state (never all zero).
      let x = seed >>> 0;
      const next = () => {
        x = (x + 0x9e3779b9) >>> 0;
        let z = x;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        return (z ^ (z >>> 16)) >>> 0;
      };
      this.s = Uint32Array.of(next(), next(), next(), next());
    } else {
      if (seed.length !== 4) throw new RangeError(`Rng state must be 4 uint32s, got ${seed.length}`);
      this.s = Uint32Array.from(seed);
    }
  }

  /** The state, to checkpoint; new Rng(state) continues the same sequence. */
  get state(): number[] {
    return Array.from(this.s);
  }

  /** A uniform uint32. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  below(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 4294967296) throw new RangeError(`below(n) needs 0 < n <= 2^32, got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * A seed derived from a base seed and a stream index (e.g. the epoch). fmix32 is a bijection, so
 * for a fixed stream distinct seeds give distinct derived seeds, and for a fixed seed distinct streams do.
 */
export function deriveSeed(seed: number, stream: number): number {
  const h = fmix32((seed ^ 0x9e3779b9) >>> 0);
  return fmix32((h ^ fmix32((stream + 0x7f4a7c15) >>> 0)) >>> 0);
}

/** MurmurHash3's 32-bit finalizer. */
function fmix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b) >>> 0;
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** Fisher–Yates in place. */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
  return items;
}

/** A shuffled copy. */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  return shuffleInPlace(items.slice(), new Rng(seed));
}

/** A random permutation of 0..n-1. */
export function permutation(n: number, seed: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  return order;
}

/**
 * Hold out round(fraction · n) rows for evaluation (at least 1, and at least 1 left to train on),
 * chosen by a seeded permutation. Both parts keep the original order of the rows.
 */
export function splitEval<T>(rows: readonly T[], fraction: number, seed: number): { train: T[]; eval: T[] } {
  if (!(fraction > 0 && fraction < 1)) throw new RangeError(`eval split fraction must be in (0, 1), got ${fraction}`);
  if (rows.length < 2) throw new RangeError(`an eval split needs at least 2 rows, got ${rows.length}`);
  const nEval = Math.min(rows.length - 1, Math.max(1, Math.round(fraction * rows.length)));
  const order = permutation(rows.length, seed);
  const isEval = new Uint8Array(rows.length);
  for (let k = 0; k < nEval; k++) isEval[order[k]] = 1;
  const train: T[] = [];
  const evalRows: T[] = [];
  rows.forEach((row, i) => (isEval[i] ? evalRows : train).push(row));
  return { train, eval: evalRows };
}
