import { describe, expect, it } from 'vitest';
import { embeddingRef } from './embedding.ref.ts';

// The embedding has no backward (frozen weights), so there is no finite-difference check; these pin the gather.
describe('embedding reference', () => {
  const wte = [1, 2, 10, 20, 100, 200]; // (vocab 3, C 2)
  const wpe = [0.5, 0.25, -1, -2]; // (maxPos 2, C 2)

  it('gathers token rows', () => {
    expect(Array.from(embeddingRef({ rows: 3, C: 2, vocab: 3 }, [2, 0, 2], wte))).toEqual([100, 200, 1, 2, 100, 200]);
  });

  it('adds learned positions, which may restart within the batch (packed sequences)', () => {
    const out = embeddingRef({ rows: 3, C: 2, vocab: 3, maxPos: 2 }, [1, 1, 1], wte, [0, 1, 0], wpe);
    expect(Array.from(out)).toEqual([10.5, 20.25, 9, 18, 10.5, 20.25]);
  });

  it('gives zeros for an id or position out of range', () => {
    const out = embeddingRef({ rows: 3, C: 2, vocab: 3, maxPos: 2 }, [3, 0, 0xffffffff], wte, [1, 2, 0], wpe);
    expect(Array.from(out)).toEqual([-1, -2, 1, 2, 0.5, 0.25]);
  });
});
