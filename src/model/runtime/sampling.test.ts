import { describe, expect, it } from 'vitest';
import { Rng } from '../../data/rng.ts';
import { argmax, checkSampling, GREEDY, sampleToken, type SamplingOptions } from './sampling.ts';

const sample = (o: Partial<SamplingOptions>) => ({ ...GREEDY, temperature: 1, ...o });

/** Frequencies of `draws` samples. */
function frequencies(logits: number[], o: SamplingOptions, draws: number, seed = 7): number[] {
  const rng = new Rng(seed);
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < draws; i++) counts[sampleToken(logits, o, rng)]++;
  return counts.map((c) => c / draws);
}

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

// Probabilities 0.5, 0.3, 0.15, 0.05, in a shuffled order so that index order is not rank order.
const PROBS = [0.15, 0.5, 0.05, 0.3];
const LOGITS = PROBS.map(Math.log);

describe('sampleToken', () => {
  it('greedy is argmax, the first on ties, and never touches the rng', () => {
    const rng = new Rng(1);
    const before = rng.state;
    expect(sampleToken([0.1, 3, -2, 3], GREEDY, rng)).toBe(1);
    expect(argmax([0.1, 3, -2, 3])).toBe(1);
    expect(rng.state).toEqual(before);
  });

  it('top-k = 1 and a tiny top-p are greedy whatever the draw', () => {
    for (let seed = 0; seed < 50; seed++) {
      expect(sampleToken(LOGITS, sample({ topK: 1, temperature: 5 }), new Rng(seed))).toBe(1);
      expect(sampleToken(LOGITS, sample({ topP: 1e-6, temperature: 5 }), new Rng(seed))).toBe(1);
    }
  });

  it('plain sampling follows softmax(logits / temperature)', () => {
    const draws = 20000;
    // Binomial standard error ≤ √(0.25/20000) ≈ 0.0035: 0.015 is over 4 of them.
    for (const temperature of [1, 2, 0.5]) {
      const want = softmax(LOGITS.map((x) => x / temperature));
      const got = frequencies(LOGITS, sample({ temperature }), draws);
      got.forEach((f, i) => expect(Math.abs(f - want[i]), `T=${temperature} token ${i}`).toBeLessThan(0.015));
    }
  });

  it('top-k keeps the k most likely (and ties with the k-th), renormalized', () => {
    const got = frequencies(LOGITS, sample({ topK: 2 }), 20000);
    expect(got[0]).toBe(0);
    expect(got[2]).toBe(0);
    expect(Math.abs(got[1] - 0.5 / 0.8)).toBeLessThan(0.015);
    const tied = frequencies([1, 2, 2, 0], sample({ topK: 1 }), 2000);
    expect(tied[1] + tied[2]).toBe(1);
    expect(tied[1]).toBeGreaterThan(0.4);
  });

  it('top-p keeps the smallest most-likely set reaching p, as transformers’ TopPLogitsWarper', () => {
    // Ascending cumulative probabilities 0.05, 0.2, 0.5, 1: transformers drops those ≤ 1 − p.
    const p70 = frequencies(LOGITS, sample({ topP: 0.7 }), 20000);
    expect(p70[0]).toBe(0);
    expect(p70[2]).toBe(0);
    expect(Math.abs(p70[1] - 0.5 / 0.8)).toBeLessThan(0.015);
    const p81 = frequencies(LOGITS, sample({ topP: 0.81 }), 20000);
    expect(p81[2]).toBe(0);
    expect(p81[0]).toBeGreaterThan(0.1);
  });

  it('top-k then top-p, after the temperature', () => {
    // T = 0.5 squares the probabilities: 0.25, 0.09, 0.0225 (top-3) → 0.68, 0.25, 0.06; top-p 0.9 keeps two.
    const got = frequencies(LOGITS, sample({ temperature: 0.5, topK: 3, topP: 0.9 }), 20000);
    expect(got[0]).toBe(0);
    expect(got[2]).toBe(0);
    expect(Math.abs(got[1] - 0.25 / 0.34)).toBeLessThan(0.015);
  });

  it('the same seed draws the same tokens; `vocab` leaves out padded ids', () => {
    const logits = Array.from({ length: 50 }, (_, i) => Math.sin(i));
    const draw = (seed: number) => {
      const rng = new Rng(seed);
      return Array.from({ length: 20 }, () => sampleToken(logits, sample({ temperature: 3 }), rng, 40));
    };
    expect(draw(3)).toEqual(draw(3));
    expect(draw(3)).not.toEqual(draw(4));
    expect(Math.max(...draw(5), ...draw(6))).toBeLessThan(40);
  });

  it('rejects bad options by name', () => {
    expect(() => checkSampling({ ...GREEDY, temperature: -1 })).toThrow(/temperature .* got -1/);
    expect(() => checkSampling({ ...GREEDY, topK: 1.5 })).toThrow(/top-k .* got 1.5/);
    expect(() => checkSampling({ ...GREEDY, topP: 0 })).toThrow(/top-p .* got 0/);
    expect(() => checkSampling({ ...GREEDY, topP: 1.2 })).toThrow(/top-p/);
  });
});
