import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { fromF16Array, toF16Array } from '../ref/elementwise.ref.ts';
import { embeddingRef, type EmbeddingShape } from '../ref/embedding.ref.ts';
import { mismatches, randomArray, rng } from '../ref/testing.ts';
import { uploadRowSharded, type RowShardedTable } from '../sharded.ts';
import { download, testEngine, upload, zeros } from '../testing-gpu.ts';
import type { ElementType } from '../wgsl.ts';
import type { FoldOptions } from './elementwise.ts';
import { recordEmbedding } from './embedding.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const VOCAB = 11;
const MAX_POS = 9;
const SHAPES: EmbeddingShape[] = [1, 7, 33].flatMap((rows) => [1, 5, 67].map((C) => ({ rows, C, vocab: VOCAB, maxPos: MAX_POS })));

// Ids in range with a few past the vocabulary (VOCAB, 2³²−1); positions restarting every 4 tokens (packed
// sequences) with one past maxPos.
function inputs(rows: number, seed: number) {
  const next = rng(seed);
  const ids = Uint32Array.from({ length: rows }, () => Math.floor(next() * VOCAB));
  const positions = Uint32Array.from({ length: rows }, (_, t) => t % 4);
  if (rows > 3) {
    ids[1] = VOCAB;
    ids[2] = 0xffffffff;
    positions[3] = MAX_POS;
  }
  return { ids, positions };
}

// The output is one f32 value or the f32 sum of two stored values: exact, or one rounding of the sum.
const TOL = { abs: 0, rel: 2 ** -24 };

async function runEmbedding(elem: ElementType, shape: EmbeddingShape, withPos: boolean, fold: FoldOptions, seed: number) {
  const { rows, C } = shape;
  const { ids, positions } = inputs(rows, seed);
  let wte: ArrayLike<number> = randomArray(VOCAB * C, seed + 1);
  let wpe: ArrayLike<number> = randomArray(MAX_POS * C, seed + 2);
  const store = (v: ArrayLike<number>) => (elem === 'f16' ? upload(e, toF16Array(v)) : upload(e, Float32Array.from(v)));
  const wteBuf = store(wte);
  const wpeBuf = store(wpe);
  if (elem === 'f16') [wte, wpe] = [fromF16Array(toF16Array(wte)), fromF16Array(toF16Array(wpe))]; // what the GPU holds
  const out = upload(e, new Float32Array(rows * C + 3).fill(42));
  const rec = e.record();
  recordEmbedding(
    rec,
    shape,
    { ids: upload(e, ids), wte: wteBuf, out, ...(withPos ? { positions: upload(e, positions), wpe: wpeBuf } : {}) },
    { elem, ...fold },
  );
  await rec.submit();
  const got = await download(e, out, rows * C + 3);
  const want = embeddingRef(shape, ids, wte, withPos ? positions : undefined, withPos ? wpe : undefined);
  expect(mismatches(got.subarray(0, rows * C), want, TOL)).toEqual([]);
  expect(Array.from(got.subarray(rows * C)), 'wrote past the output').toEqual([42, 42, 42]);
}

describe.each<ElementType>(['f32', 'f16'])('embedding with %s tables', (elem) => {
  it.for(SHAPES)('matches the reference at rows=$rows C=$C', async (shape, ctx) => {
    if (elem === 'f16' && !e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    await runEmbedding(elem, shape, false, {}, shape.rows * 100 + shape.C);
    await runEmbedding(elem, shape, true, {}, shape.rows * 100 + shape.C + 7);
  });

  it('folds a large dispatch into 2-D', async (ctx) => {
    if (elem === 'f16' && !e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    // 33·67 = 2211 elements = 9 workgroups, at most 4 per dimension: 4×3, three of them past the end.
    await runEmbedding(elem, { rows: 33, C: 67, vocab: VOCAB, maxPos: MAX_POS }, true, { maxWorkgroupsPerDim: 4 }, 5);
  });
});

// A wte split by rows (src/gpu/sharded.ts): one dispatch per shard, each writing only the tokens whose id it holds
// (the first also the ids past the vocabulary). Shards of 3 rows' worth of bytes over 11 rows (4 shards, the last
// short; f16 at odd C rounds down to 2-row shards): the output must equal the single-buffer gather bit for bit.
describe.each<ElementType>(['f32', 'f16'])('embedding with a row-sharded %s wte', (elem) => {
  it.for([1, 5, 67])('equals the single-buffer gather exactly at C=%i', async (C, ctx) => {
    if (elem === 'f16' && !e.gpu.hasF16) ctx.skip(`${e.gpu.adapter.name} has no shader-f16`);
    const rows = 33;
    const shape = { rows, C, vocab: VOCAB, maxPos: MAX_POS };
    const { ids, positions } = inputs(rows, C);
    ids[4] = VOCAB - 1; // the last row of the last, short shard
    const wte = randomArray(VOCAB * C, C + 1);
    const wpe = randomArray(MAX_POS * C, C + 2);
    const host = (v: Float32Array) => (elem === 'f16' ? toF16Array(v) : v);
    const bpe = elem === 'f16' ? 2 : 4;
    const sharded = uploadRowSharded(e.buffers, e.device, host(wte), VOCAB, C, 3 * C * bpe, 'wte');
    expect(sharded.shards.length).toBeGreaterThan(3);
    for (const withPos of [false, true]) {
      const run = async (table: GPUBuffer | RowShardedTable) => {
        const out = upload(e, new Float32Array(rows * C + 3).fill(42));
        const rec = e.record();
        recordEmbedding(
          rec,
          shape,
          { ids: upload(e, ids), wte: table, out, ...(withPos ? { positions: upload(e, positions), wpe: upload(e, host(wpe)) } : {}) },
          { elem },
        );
        await rec.submit();
        return download(e, out, rows * C + 3);
      };
      const want = await run(upload(e, host(wte)));
      const got = await run(sharded);
      expect(new Uint32Array(got.buffer)).toEqual(new Uint32Array(want.buffer));
      // And both are the reference (ids past the vocabulary included): the one-buffer path is not broken either.
      const ref = embeddingRef(
        shape,
        ids,
        elem === 'f16' ? fromF16Array(toF16Array(wte)) : wte,
        withPos ? positions : undefined,
        withPos ? (elem === 'f16' ? fromF16Array(toF16Array(wpe)) : wpe) : undefined,
      );
      expect(mismatches(got.subarray(0, rows * C), ref, TOL)).toEqual([]);
    }
  });
});
