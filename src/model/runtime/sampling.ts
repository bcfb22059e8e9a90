// Choosing the next token from one row of logits, on the CPU, as transformers' generate() does: greedy at
// temperature 0; otherwise the logits are divided by the temperature, filtered by top-k then top-p (the order of
// transformers' logits warpers), and one token is drawn from the softmax of what remains with a seeded RNG.
import type { Rng } from '../../data/rng.ts';

export interface SamplingOptions {
  /** 0: greedy (argmax; top-k and top-p do not matter). Otherwise logits / temperature. */
  temperature: number;
  /** Keep the k highest logits (ties with the k-th kept too, as transformers); 0 = no limit. */
  topK: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (at least one); 1 = no limit. */
  topP: number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topK: 0, topP: 1 };

export class SamplingError extends Error {
  override name = 'SamplingError';
}

/** Checks each option once, naming the bad one and its value. */
export function checkSampling(o: SamplingOptions): void {
  if (!(Number.isFinite(o.temperature) && o.temperature >= 0)) {
    throw new SamplingError(`temperature must be a finite number ≥ 0 (0 = greedy), got ${o.temperature}`);
  }
  if (!(Number.isInteger(o.topK) && o.topK >= 0)) throw new SamplingError(`top-k must be an integer ≥ 0 (0 = off), got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new SamplingError(`top-p must be in (0, 1] (1 = off), got ${o.topP}`);
}

/** The index of the largest of logits[0..n), the first on ties (torch.argmax). */
export function argmax(logits: ArrayLike<number>, n = logits.length): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * The next token from logits[0..vocab). `vocab` below logits.length leaves out ids past the tokenizer's vocabulary
 * (embeddings padded to a round size).
 */
export function sampleToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng, vocab = logits.length): number {
  if (o.temperature === 0) return argmax(logits, vocab);
  // Candidates by descending score; top-k and top-p each keep a prefix of this order.
  const order = Array.from({ length: vocab }, (_, i) => i);
  const score = (i: number) => logits[i] / o.temperature;
  order.sort((a, b) => score(b) - score(a) || a - b);
  let kept = vocab;
  if (o.topK > 0 && o.topK < vocab) {
    const threshold = score(order[o.topK - 1]);
    kept = o.topK;
    while (kept < vocab && score(order[kept]) >= threshold) kept++;
  }
  const max = score(order[0]);
  const weights = new Float64Array(kept);
  let total = 0;
  for (let r = 0; r < kept; r++) total += weights[r] = Math.exp(score(order[r]) - max);
  if (o.topP < 1) {
    // transformers' TopPLogitsWarper drops a token when the probability of it and everything less likely is
    // ≤ 1 − p, i.e. keeps it while the probability of everything more likely is < p.
    let above = 0;
    let r = 0;
    while (r < kept && above < o.topP * total) above += weights[r++];
    kept = Math.max(1, r);
    total = 0;
    for (let i = 0; i < kept; i++) total += weights[i];
  }
  let u = rng.next() * total;
  for (let r = 0; r < kept; r++) {
    u -= weights[r];
    if (u < 0) return order[r];
  }
  return order[kept - 1]; // u landed on the rounding slack of the last weight
}
