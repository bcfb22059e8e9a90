// Prefix tuning (P-tuning v2) against PEFT + transformers (float64, scripts/golden_prefix.py → tests/fixtures/golden/
// train_prefix_<case>.json): gpt2 with a plain table (learned positions), llama through the projection (GQA: 2 of 4
// key/value heads), qwen3 with a plain table (GQA, q/k norms, head_dim ≠ hidden / heads); the same rows, PEFT's own
// draw of the 4-row prefix (and of its MLP), AdamW at a constant lr with a 1.0 clip. The 10 losses, the grad norms
// and the step-1 and step-2 gradients of every tensor must match; the adapter we export after 10 steps (the table
// after the projection) must be PEFT's own file; it imports back as a plain table that evaluates to the same loss and
// continues as plain prefix tuning; generation with the prefix (the KV cache primed with it) gives the full forward's
// next-token logits; and PeftModel.from_pretrained(our adapter) must give our eval loss (1e-4 relative) and our
// greedy tokens where the reference Python exists — under CI=true its absence fails.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readF32 } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import { recordLogits } from '../gpu/kernels/xent.ts';
import { mismatches } from '../gpu/ref/testing.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { createKvCache, decodeStep, generate, primeKvCache, releaseKvCache } from '../model/runtime/generate.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { recordForward, releaseActs, releaseBatch, uploadBatch, type Transformer } from '../model/runtime/transformer.ts';
import { Batcher } from '../data/batcher.ts';
import { attachAdapter } from './attach-adapter.ts';
import { prefixSegmentName } from './methods/prefix-tuning/config.ts';
import { PROMPT_EMBEDDINGS } from './methods/prompt-tuning/config.ts';
import { writeAdapterFolder } from './peft-check.ts';
import { importPeftAdapter } from './peft.ts';
import { goldenConfig, goldenRows, trainGoldenAndExport, type EvaluatedGoldenRun } from './testing-golden.ts';
import { describePromptAdaptersInPeft, type ExportedPromptAdapter } from './testing-peft-live.ts';
import { evaluateLoss, Trainer } from './trainer.ts';

interface PrefixGolden extends EvaluatedGoldenRun {
  fixture: string;
  num_virtual_tokens: number;
  prefix_projection: boolean;
  encoder_hidden_size?: number;
  initial: Record<string, number[]>;
  grads: Record<string, Record<string, number[]>>;
}

/** Our segment names for the golden file's (PEFT's) tensor names. */
function ourName(g: PrefixGolden, name: string): string {
  if (!g.prefix_projection) return PROMPT_EMBEDDINGS;
  return name === 'prompt_embeddings' ? prefixSegmentName('embedding.weight') : `prompt_encoder.${name}`;
}

let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'prefix-golden-'));
const GENERATE = { prompt: [5, 17, 3, 9], max_new_tokens: 6 };
const CASES = ['prefix_gpt2', 'prefix_llama_proj', 'prefix_qwen3'];
const exported = new Map<string, ExportedPromptAdapter>();

beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The last position's logits (V) of the training forward over `ids`, positions from the prefix's P on. */
async function fullForwardLogits(tf: Transformer, ids: number[]): Promise<Float32Array> {
  const P = tf.model.attentionPrefix?.count ?? 0;
  const T = ids.length;
  const host = {
    tokens: Uint32Array.from(ids),
    positions: Uint32Array.from(ids, (_, i) => P + i),
    segments: new Uint32Array(T),
    targets: new Int32Array(T).fill(-100),
    firstPosition: P,
  };
  const batch = uploadBatch(e, host);
  const rec = e.record('full-forward');
  const acts = recordForward(rec, e, tf, batch, true);
  const { hiddenSize: C, vocabSize: V } = tf.model.config;
  const logits = e.buffers.acquire(V * 4, undefined, 'logits');
  recordLogits(rec, { T, C, V }, { hs: acts.hs, Wh: tf.model.head, logits }, { elem: tf.model.dtype, row0: T - 1, rows: 1 });
  await rec.submit();
  const out = await readF32(e.device, logits, V);
  e.buffers.release(logits);
  releaseActs(e, acts);
  releaseBatch(e, batch);
  return out;
}

describe.each(CASES)('golden prefix-tuning run against PEFT: %s', (name) => {
  it('losses, grad norms and step-1/2 gradients match; the export is PEFT\'s; it imports back, generates and continues as a plain prefix', async () => {
    const g: PrefixGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_${name}.json`), 'utf8'));
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', g.fixture)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const config = goldenConfig(g, {
      method: 'prefix-tuning',
      targets: [],
      numVirtualTokens: g.num_virtual_tokens,
      prefixProjection: g.prefix_projection,
      encoderHiddenSize: g.encoder_hidden_size ?? null,
    });
    const initial = new Map(Object.entries(g.initial).map(([k, v]) => [ourName(g, k), Float32Array.from(v)]));
    const files = await trainGoldenAndExport(e, tf, g, {
      config,
      initial,
      gradsAt: (step) => {
        const want = g.grads[String(step)];
        return want ? new Map(Object.entries(want).map(([k, v]) => [ourName(g, k), v])) : undefined;
      },
      peftDir: join(FIXTURES, 'golden', `train_${name}_adapter`),
      baseModel: `tests/fixtures/models/${g.fixture}`,
    });
    expect(tf.model.attentionPrefix).toBeUndefined();

    // Imported back: the table (after the projection), attached as the model's prefix, evaluates to the trained loss.
    const adapter = await importPeftAdapter(memoryFolder({ ...files }), tf.model.config, 'ours');
    if (adapter.kind !== 'prompt') throw new Error(`imported as ${adapter.kind}`);
    expect(adapter.peftType).toBe('PREFIX_TUNING');
    const base = await fullForwardLogits(tf, GENERATE.prompt);
    const detach = attachAdapter(e, tf.model, adapter);
    let evalLoss: number;
    let generated: number[];
    try {
      evalLoss = (await evaluateLoss(e, tf, new Batcher(rows, { batchSize: 3, padId: 0, seed: null }))).loss;
      expect(Math.abs(evalLoss - g.final_loss)).toBeLessThan(1e-4 * g.final_loss);
      // Generation: the cache primed with the prefix gives the full forward's next-token logits (and the prefix
      // matters: they moved).
      const want = await fullForwardLogits(tf, GENERATE.prompt);
      const P = g.num_virtual_tokens;
      const cache = createKvCache(e, tf.model.config, P + GENERATE.prompt.length);
      let got: Float32Array;
      try {
        await primeKvCache(e, tf, cache, tf.model.attentionPrefix!);
        got = await decodeStep(e, tf, cache, GENERATE.prompt, P);
      } finally {
        releaseKvCache(e, cache);
      }
      expect(mismatches(got, want, { abs: 1e-4, rel: 1e-4 })).toEqual([]);
      expect(Math.max(...want.map((v, i) => Math.abs(v - base[i])))).toBeGreaterThan(1e-2);
      generated = (await generate(e, tf, GENERATE.prompt, { maxNewTokens: GENERATE.max_new_tokens, stopTokenIds: [] })).tokens;
      // The prefix's positions count against the model's: a request that fits without them is refused, named.
      const room = tf.model.config.maxPositions - GENERATE.prompt.length;
      await expect(generate(e, tf, GENERATE.prompt, { maxNewTokens: room })).rejects.toThrow(new RegExp(`the ${P} prefix positions \\+ the prompt .* exceed the model's ${tf.model.config.maxPositions} positions; lower max new tokens to ${room - P}`));
    } finally {
      detach();
    }
    expect(tf.model.attentionPrefix).toBeUndefined();
    // ... and continue as plain prefix tuning from that table (without an MLP): step 1's loss is the loss it
    // evaluates to.
    const more = new Trainer({
      engine: e,
      transformer: tf,
      config: { ...config, prefixProjection: false, encoderHiddenSize: null, maxSteps: 1 },
      train: rows,
      padId: 0,
      initial: new Map([[PROMPT_EMBEDDINGS, adapter.embeddings]]),
    });
    try {
      expect(Math.abs((await more.trainStep()).loss - evalLoss)).toBeLessThan(1e-5 * evalLoss);
    } finally {
      more.dispose();
    }
    const dir = join(tmp, name);
    await writeAdapterFolder(dir, files);
    exported.set(name, { fixture: g.fixture, dir, loss: evalLoss, rows: g.rows, generated });
  });
});

describePromptAdaptersInPeft('prefix-tuning', CASES, exported, GENERATE);
