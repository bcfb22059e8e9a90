// Trainer.dispose(): a finished run gives back every GPU buffer it took (loss total, LoRA params, grads, moments,
// AdamW scratch), steps included, and leaves the model plain (no LoRA attached) for the next run.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { DEFAULT_CONFIG } from './config.ts';
import { Trainer } from './trainer.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

describe('Trainer.dispose', () => {
  it('releases the loss buffer and the LoRA state, once', async () => {
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', 'llama')), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const rows = Array.from({ length: 4 }, (_, r) => {
      const ids = Int32Array.from({ length: 8 }, (_, i) => 3 + r + i);
      return { input_ids: ids, labels: ids.map((id, i) => (i < 2 ? -100 : id)) };
    });
    const before = e.buffers.stats().liveBytes;
    const t = new Trainer({ engine: e, transformer: tf, config: { ...DEFAULT_CONFIG, rank: 4, alpha: 8, batchSize: 2, maxSteps: 2 }, train: rows, padId: 0 });
    await t.trainStep();
    expect(e.buffers.stats().liveBytes).toBeGreaterThan(before);
    expect(tf.model.blocks.some((b) => [...b.linears.values()].some((l) => l.lora))).toBe(true);

    t.dispose();
    expect(e.buffers.stats().liveBytes).toBe(before);
    for (const b of tf.model.blocks) for (const l of b.linears.values()) expect(l.lora).toBeUndefined();
    t.dispose(); // a second call must not release the buffers twice (the pool would count them negative)
    expect(e.buffers.stats().liveBytes).toBe(before);
  });
});
