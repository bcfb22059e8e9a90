// writeRows streams a table into its shards as the model loader does: chunks of an even number of elements (but the
// last) that start and end anywhere relative to the shard boundaries. Each shard must hold exactly its rows.
import { beforeAll, describe, expect, it } from 'vitest';
import { readBuffer } from './buffers.ts';
import type { Engine } from './engine.ts';
import { allocateRowSharded, releaseRowSharded, ShardPlanError, writeRows } from './sharded.ts';
import { testEngine } from './testing-gpu.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

describe.each(['f32', 'f16'] as const)('writeRows into a row-sharded %s table', (elem) => {
  it.for([
    [11, 5, 3],
    [11, 5, 7],
    [40, 3, 4],
  ])('rows=%i cols=%i, shards of %i rows, in uneven chunks', async ([rows, cols, shardRows]) => {
    const bpe = elem === 'f16' ? 2 : 4;
    const n = rows * cols;
    // Distinct values per element (f16 as raw bits: nothing here interprets them).
    const data = elem === 'f16' ? Uint16Array.from({ length: n }, (_, i) => 1000 + i) : Float32Array.from({ length: n }, (_, i) => i + 0.5);
    const table = allocateRowSharded(e.buffers, rows, cols, elem, shardRows * cols * bpe, 'table');
    expect(table.shards.length).toBeGreaterThan(1);
    const sizes = [6, 2, 10, 4, 14];
    for (let offset = 0, i = 0; offset < n; i++) {
      const size = Math.min(sizes[i % sizes.length], n - offset);
      writeRows(e.device, table, offset, data.subarray(offset, offset + size));
      offset += size;
    }
    for (const s of table.shards) {
      const bytes = await readBuffer(e.device, s.buffer, s.rows * cols * bpe);
      const got = elem === 'f16' ? new Uint16Array(bytes) : new Float32Array(bytes);
      expect(Array.from(got), `shard at row ${s.firstRow}`).toEqual(Array.from(data.subarray(s.firstRow * cols, (s.firstRow + s.rows) * cols)));
    }
    releaseRowSharded(e.buffers, table);
  });
});

describe('writeRows refuses', () => {
  it('writes outside the table, of the wrong element type, or misaligned within a shard', () => {
    const table = allocateRowSharded(e.buffers, 11, 5, 'f16', 20, 'table');
    expect(() => writeRows(e.device, table, 54, new Uint16Array(2))).toThrow(/outside the table's 55/);
    expect(() => writeRows(e.device, table, 0, new Float32Array(2))).toThrow(ShardPlanError);
    expect(() => writeRows(e.device, table, 1, new Uint16Array(2))).toThrow(/not 4-byte aligned/);
    releaseRowSharded(e.buffers, table);
  });
});
