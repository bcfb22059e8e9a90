import { describe, expect, it } from 'vitest';
import { linesAt } from './line-text.ts';

describe('linesAt', () => {
  it('returns the asked lines, cut, and stops reading after the last one', async () => {
    let chunksRead = 0;
    async function* chunks() {
      for (const c of ['{"a": 1}\n{"b"', ': 2}\n', 'x'.repeat(50) + '\n', 'never\n']) {
        chunksRead++;
        yield c;
      }
    }
    const got = await linesAt(chunks(), [2, 3], 10);
    expect(got).toEqual(new Map([[2, '{"b": 2}'], [3, 'xxxxxxxxxx…']]));
    expect(chunksRead).toBe(3);
    expect((await linesAt([], [])).size).toBe(0);
  });
});
