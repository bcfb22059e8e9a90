import { describe, expect, it } from 'vitest';
import { planRowShards, ShardPlanError } from './sharded.ts';

/** Every row once, in order, each shard's buffer (bytes rounded up to 4) within the limit, all but the last equal
 *  and a multiple of 4 bytes. */
function checkPlan(rows: number, cols: number, bpe: number, limit: number) {
  const plan = planRowShards(rows, cols, bpe, limit);
  let next = 0;
  for (const [i, s] of plan.entries()) {
    expect(s.firstRow).toBe(next);
    expect(s.rows).toBeGreaterThan(0);
    const bytes = s.rows * cols * bpe;
    expect(Math.ceil(bytes / 4) * 4).toBeLessThanOrEqual(limit);
    if (i < plan.length - 1) {
      expect(bytes % 4).toBe(0);
      expect(s.rows).toBe(plan[0].rows);
    }
    next += s.rows;
  }
  expect(next).toBe(rows);
  return plan;
}

describe('planRowShards', () => {
  it('keeps a table that fits as one shard', () => {
    expect(planRowShards(11, 5, 4, 11 * 5 * 4)).toEqual([{ firstRow: 0, rows: 11 }]);
    // f16 with an odd element count: 110 bytes, padded to 112, still one binding of 112.
    expect(planRowShards(11, 5, 2, 112)).toEqual([{ firstRow: 0, rows: 11 }]);
  });

  it('splits at the limit, the last shard taking the remainder', () => {
    expect(checkPlan(11, 5, 4, 3 * 5 * 4)).toEqual([
      { firstRow: 0, rows: 3 },
      { firstRow: 3, rows: 3 },
      { firstRow: 6, rows: 3 },
      { firstRow: 9, rows: 2 },
    ]);
    // A limit between row multiples rounds down.
    expect(checkPlan(11, 5, 4, 3 * 5 * 4 + 19).map((s) => s.rows)).toEqual([3, 3, 3, 2]);
  });

  it('keeps f16 shards 4-byte aligned when rows are 2 bytes off', () => {
    // 5 f16 columns = 10 bytes a row: 3 rows (30 bytes) would leave the next shard starting on an odd element.
    expect(checkPlan(11, 5, 2, 30).map((s) => s.rows)).toEqual([2, 2, 2, 2, 2, 1]);
    expect(checkPlan(11, 6, 2, 36).map((s) => s.rows)).toEqual([3, 3, 3, 2]);
  });

  it('covers odd sizes and limits', () => {
    for (const rows of [1, 2, 7, 50, 151]) {
      for (const cols of [1, 3, 8, 67]) {
        for (const bpe of [2, 4]) {
          // One f16 row of an odd width is never 4-byte aligned alone: two rows at least.
          for (const limitRows of bpe === 2 ? [2, 3, 10] : [1, 2, 3, 10]) checkPlan(rows, cols, bpe, Math.max(4, limitRows * cols * bpe + (limitRows % 3)));
        }
      }
    }
  });

  it('refuses a limit that cannot hold an aligned run of rows, and bad shapes', () => {
    expect(() => planRowShards(11, 5, 4, 19)).toThrow(ShardPlanError);
    expect(() => planRowShards(11, 5, 2, 18)).toThrow(/4-byte-aligned run of rows of 10 bytes/); // 1 row = 10, 2 rows = 20
    expect(() => planRowShards(0, 5, 4, 100)).toThrow(/rows = 0/);
    expect(() => planRowShards(3, 5, 4, 0)).toThrow(/maxBindingBytes/);
  });
});
