// Continuing training from a saved adapter: the Trainer's LoRA starts from the adapter's A and B (its `initial`
// tensors), so the first step's loss — computed by the forward before the update — is the adapter's own loss on the
// same rows, as an evaluation with the adapter attached measures it. On Llama (nn.Linear) and GPT-2 (Conv1D); and the
// same for an IA³ adapter (its vectors through Trainer's `initial`).
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { randomArray } from '../gpu/ref/testing.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { Batcher } from '../data/batcher.ts';
import type { TokenizedRow } from '../data/encode.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import type { Transformer } from '../model/runtime/transformer.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { selectTargetModules } from '../model/weights.ts';
import { attachAdapter } from './attach-adapter.ts';
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';
import { attachLora, detachLora, readLoraTensors } from './lora-state.ts';
import { loraSegmentName } from './lora-names.ts';
import { ia3SegmentName } from './methods/ia3/config.ts';
import { METHODS } from './methods/registry.ts';
import { buildAdapterConfig, exportAdapter, importAdapter, importPeftAdapter, type LoraAdapter } from './peft.ts';
import { evaluateLoss, Trainer } from './trainer.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const load = (name: string): Promise<Transformer> =>
  loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });

function rows(n: number, len: number, vocab: number, seed: number): TokenizedRow[] {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) / 16777216;
  return Array.from({ length: n }, () => {
    const ids = Int32Array.from({ length: len }, () => 3 + Math.floor(rnd() * (vocab - 4)));
    return { input_ids: ids, labels: ids.map((id, i) => (i < 2 ? -100 : id)) };
  });
}

/** A PEFT adapter with random A and B (large enough to move the loss), through the export → import round trip. */
async function randomAdapter(tf: Transformer, targets: string[], rank: number, alpha: number): Promise<LoraAdapter> {
  const config = tf.model.config;
  const modules = selectTargetModules(config, targets).map((m, i) => ({
    peftPath: m.peftPath,
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    A: randomArray(rank * m.inFeatures, 100 + i, 0.5),
    B: randomArray(m.outFeatures * rank, 200 + i, 0.5),
  }));
  const files = exportAdapter(modules, buildAdapterConfig({
    baseModel: 'fixture', rank, alpha, dropout: 0, targetModules: targets, fanInFanOut: config.linearLayout === 'conv1d', rslora: false,
  }));
  return importAdapter(memoryFolder({ ...files }, 'random adapter'), config);
}

describe.each([
  ['llama', ['q_proj', 'v_proj']],
  ['gpt2', ['c_attn']],
])('continuing from an adapter on %s', (name, targets) => {
  it('starts from its A and B: the first step\'s loss is the adapter\'s eval loss (1e-5)', async () => {
    const tf = await load(name);
    const data = rows(6, 10, tf.model.config.vocabSize, 11);
    const batcher = new Batcher(data, { batchSize: data.length, padId: 0, seed: null });
    const adapter = await randomAdapter(tf, targets, 4, 8);

    const base = await evaluateLoss(e, tf, batcher);
    const detach = attachAdapter(e, tf.model, adapter);
    const withAdapter = await evaluateLoss(e, tf, batcher);
    detach();
    // B matters: an adapter that left the loss where the base model has it would prove nothing.
    expect(Math.abs(withAdapter.loss - base.loss)).toBeGreaterThan(1e-3);

    const config: TrainConfig = {
      ...DEFAULT_CONFIG, rank: 4, alpha: 8, targets, dropout: 0, lr: 1e-2, batchSize: data.length, maxSteps: 2, warmupRatio: 0, schedule: 'constant',
    };
    const t = new Trainer({
      engine: e, transformer: tf, config, train: data, padId: 0,
      initial: new Map(adapter.modules.flatMap((m) => [[loraSegmentName(m.peftPath, 'A'), m.A], [loraSegmentName(m.peftPath, 'B'), m.B]] as const)),
    });
    try {
      expect(t.lora.scale).toBe(adapter.scale);
      // The initial values are honoured bit for bit.
      const start = await readLoraTensors(e, t.lora);
      expect(start.map((x) => x.module.peftPath)).toEqual(adapter.modules.map((m) => m.peftPath));
      start.forEach((x, i) => {
        expect(x.A).toEqual(adapter.modules[i].A);
        expect(x.B).toEqual(adapter.modules[i].B);
      });
      const first = await t.trainStep();
      expect(Math.abs(first.loss - withAdapter.loss), `step 1 loss ${first.loss}, adapter eval ${withAdapter.loss}`).toBeLessThanOrEqual(1e-5);
      // …and training moves on from there.
      const second = await t.trainStep();
      expect(second.loss).toBeLessThan(first.loss);
    } finally {
      t.dispose();
    }
  });
});

describe('initial A and B maps', () => {
  it('refuses a module the targets do not select, and a wrong length, naming them', async () => {
    const tf = await load('llama');
    const spec = { rank: 2, alpha: 4, dropout: 0, rslora: false, targets: ['q_proj'], loraPlusRatio: 1 };
    const k = selectTargetModules(tf.model.config, ['k_proj'])[0];
    const q = selectTargetModules(tf.model.config, ['q_proj'])[0];
    expect(() => attachLora(e, tf.model, spec, 0, undefined, new Map([[k.peftPath, new Float32Array(k.outFeatures * 2)]])))
      .toThrow(`initial lora_B given for ${k.peftPath}`);
    expect(() => attachLora(e, tf.model, spec, 0, undefined, new Map([[q.peftPath, new Float32Array(3)]])))
      .toThrow(`initial lora_B for ${q.peftPath} has 3 values, expected ${q.outFeatures * 2}`);
    // A refused attach leaves the model plain.
    expect(tf.model.modules.every((m) => m.linear.lora === undefined)).toBe(true);
    const ok = attachLora(e, tf.model, spec, 0, undefined, new Map([[q.peftPath, new Float32Array(q.outFeatures * 2).fill(0.25)]]));
    const [got] = await readLoraTensors(e, ok);
    expect(Array.from(got.B).every((v) => v === 0.25)).toBe(true);
    detachLora(e, ok);
  });
});

describe.each(['llama', 'gpt2'])('continuing from an IA³ adapter on %s', (name) => {
  it('starts from its vectors: the first step\'s loss is the adapter\'s loss through export → import (1e-5)', async () => {
    const tf = await load(name);
    const data = rows(6, 9, tf.model.config.vocabSize, 5);
    const config: TrainConfig = { ...DEFAULT_CONFIG, method: 'ia3', lr: 0.1, batchSize: 6, maxSteps: 3, warmupSteps: 0, schedule: 'constant' };
    // Vectors trained off 1, saved as PEFT does, read back.
    const first = new Trainer({ engine: e, transformer: tf, config, train: data, padId: 0 });
    for (let i = 0; i < 3; i++) await first.trainStep();
    const files = METHODS.ia3.exportAdapter({
      tensors: await first.trainedTensors(), modules: first.modules, targetModules: first.targetModules, config, model: tf.model.config, baseModel: name,
    });
    first.dispose();
    const adapter = await importPeftAdapter(memoryFolder({ ...files }, 'ia3 adapter'), tf.model.config);
    if (adapter.kind !== 'ia3') throw new Error('expected IA³');
    const detach = attachAdapter(e, tf.model, adapter);
    const { loss: adapterLoss } = await evaluateLoss(e, tf, new Batcher(data, { batchSize: 6, padId: 0, seed: null }));
    detach();
    const { loss: baseLoss } = await evaluateLoss(e, tf, new Batcher(data, { batchSize: 6, padId: 0, seed: null }));
    expect(Math.abs(adapterLoss - baseLoss)).toBeGreaterThan(1e-3); // the vectors matter

    const next = new Trainer({
      engine: e, transformer: tf, config, train: data, padId: 0,
      initial: new Map(adapter.modules.map((m) => [ia3SegmentName(m.peftPath), m.l])),
    });
    const step = await next.trainStep();
    next.dispose();
    expect(Math.abs(step.loss - adapterLoss)).toBeLessThan(1e-5 * adapterLoss);
  });
});
