import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { gatherColumnsRef, scatterColumnsRef, type ColumnsShape } from '../ref/columns.ref.ts';
import { mismatches, randomArray } from '../ref/testing.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import { recordGatherColumns, recordScatterColumns } from './columns.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const SHAPES: ColumnsShape[] = [
  { rows: 1, wide: 3, narrow: 1, offset: 2 },
  { rows: 7, wide: 3 * 33, narrow: 33, offset: 33 },
  { rows: 19, wide: 150, narrow: 50, offset: 100 },
  { rows: 5, wide: 13, narrow: 13, offset: 0 },
];

describe('columns (exact copies)', () => {
  it.each(SHAPES)('gather rows=$rows wide=$wide narrow=$narrow offset=$offset', async (s) => {
    const wide = randomArray(s.rows * s.wide, s.wide);
    const out = zeros(e, s.rows * s.narrow);
    const rec = e.record();
    recordGatherColumns(rec, s, { wide: upload(e, wide), narrow: out }, { maxWorkgroupsPerDim: 4 });
    await rec.submit();
    expect(mismatches(await download(e, out, s.rows * s.narrow), gatherColumnsRef(s, wide), { abs: 0, rel: 0 })).toEqual([]);
  });

  it.each(SHAPES)('scatter (and accumulate) rows=$rows wide=$wide narrow=$narrow offset=$offset', async (s) => {
    for (const accumulate of [false, true]) {
      const narrow = randomArray(s.rows * s.narrow, s.narrow + 1);
      const wide0 = randomArray(s.rows * s.wide, s.wide + 2);
      const wide = upload(e, wide0);
      const rec = e.record();
      recordScatterColumns(rec, s, { narrow: upload(e, narrow), wide }, accumulate);
      await rec.submit();
      // Sums are of two f32 values: the GPU rounds once, the float64 reference not at all.
      const want = scatterColumnsRef(s, narrow, wide0, accumulate);
      expect(mismatches(await download(e, wide, s.rows * s.wide), want, { abs: 0, rel: accumulate ? 6e-8 : 0 })).toEqual([]);
    }
  });

  it('refuses a block that runs past the wide matrix', () => {
    expect(() => recordGatherColumns(e.record(), { rows: 1, wide: 4, narrow: 3, offset: 2 }, { wide: e.pipelines.unused, narrow: e.pipelines.unused })).toThrow(
      /2\+3 columns exceed the wide matrix's 4/,
    );
  });
});
