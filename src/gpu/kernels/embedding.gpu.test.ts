import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../engine.ts';
import { fromF16Array, toF16Array } from '../ref/elementwise.ref.ts';
import { embeddingRef, type EmbeddingShape } from '../ref/embedding.ref.ts';
import { mismatches, randomArray, rng } from '../ref/testing.ts';
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
