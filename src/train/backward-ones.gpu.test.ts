// GpuModel.backwardNeedsOnes — whether recordBackward fills the ones vector that bias gradients (onesᵀ·dy) take — is
// decided where the hooks change, not per backward: set by full fine-tuning's and a bottleneck run's attach, and by
// putting an imported bottleneck adapter on the model; cleared by each one's detach or undo; never set by a method
// without bias gradients. The numbers of those runs are the golden tests'; a bottleneck layer would still find a ones
// vector of its own without the flag (bottleneck.ts), so only this test sees a flag that goes stale.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { attachAdapter } from './attach-adapter.ts';
import type { TrainConfig } from './config.ts';
import { METHODS } from './methods/registry.ts';
import { importAnyAdapter } from './peft.ts';
import { goldenConfig, goldenRows, type GoldenRun } from './testing-golden.ts';
import { Trainer } from './trainer.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const golden = (file: string) => JSON.parse(readFileSync(join(FIXTURES, 'golden', `${file}.json`), 'utf8')) as GoldenRun;

describe('the backward\'s ones vector, decided when hooks change', () => {
  it('full fine-tuning and houlsby set it while attached, LoRA does not; an imported bottleneck adapter sets it until undone', async () => {
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', 'llama')), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const needsOnes = () => tf.model.backwardNeedsOnes ?? false;
    expect(needsOnes(), 'freshly loaded').toBe(false);
    const runs: [string, Partial<TrainConfig>, boolean][] = [
      ['train_full_llama', { method: 'full', targets: [] }, true],
      ['train_houlsby_llama', { method: 'houlsby', targets: [], reductionFactor: 8 }, true],
      ['train_llama', { method: 'lora' }, false],
    ];
    for (const [file, method, want] of runs) {
      const g = golden(file);
      const trainer = new Trainer({ engine: e, transformer: tf, config: goldenConfig(g, method), train: goldenRows(g), eval: goldenRows(g), padId: 0 });
      try {
        expect(needsOnes(), `${method.method} attached`).toBe(want);
        if (method.method === 'houlsby') {
          // A step through the backward, then the adapter it trained, put on the model as eval and generate do.
          await trainer.trainStep();
          const config = goldenConfig(g, method);
          const files = METHODS.houlsby.exportAdapter({
            tensors: await trainer.trainedTensors(),
            modules: trainer.modules,
            targetModules: trainer.targetModules,
            config,
            model: tf.model.config,
            baseModel: 'tests/fixtures/models/llama',
          });
          trainer.dispose();
          expect(needsOnes(), 'houlsby detached').toBe(false);
          const undo = attachAdapter(e, tf.model, await importAnyAdapter(memoryFolder({ ...files }), tf.model.config, 'ours'));
          expect(needsOnes(), 'imported bottleneck adapter on').toBe(true);
          undo();
        }
      } finally {
        trainer.dispose();
      }
      expect(needsOnes(), `${method.method} detached`).toBe(false);
    }
  });
});
