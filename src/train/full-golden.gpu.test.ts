// Full fine-tuning against torch + transformers (float64, scripts/golden_full.py → tests/fixtures/golden/
// train_full_<fixture>.json): every parameter trains, AdamW at a constant lr with weight decay 0.1 on matrices only
// and a 1.0 clip. The first 10 losses, the grad norms and every tensor's step-1 gradient must match (tied embeddings:
// the embedding's and the head's gradients summed); the model folder we export after 10 steps must load in
// transformers with no missing or unexpected tensor and give our eval loss (1e-4 relative) where the reference Python
// exists — under CI=true its absence fails. Detaching the run gives the base model back.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { Batcher } from '../data/batcher.ts';
import { FullFineTuningError } from './methods/full/runtime.ts';
import { fullModelFolder } from './methods/full/model-folder.ts';
import { runModelCheck } from './model-check.ts';
import { referencePython, writeOutputFiles } from './peft-check.ts';
import { expectGoldenSteps, goldenConfig, goldenRows, type GoldenRun } from './testing-golden.ts';
import { evaluateLoss, Trainer } from './trainer.ts';

interface FullGolden extends GoldenRun {
  tied: boolean;
  parameters: { name: string; shape: number[]; decay: boolean }[];
  final_loss: number;
  grads: Record<string, Record<string, number[]>>;
}

const python = referencePython();
let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'full-golden-'));
/** Per fixture: our exported model folder and our eval loss after 10 steps, for the one live transformers run. */
const exported = new Map<string, { dir: string; loss: number; rows: FullGolden['rows'] }>();

beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const RUNS = [
  ['gpt2', 'naive'],
  ['llama', 'naive'],
  ['qwen3', 'naive'],
  ['llama', 'blocked4'],
] as const;

describe.each(RUNS)('golden full fine-tuning run against torch: %s, %s kernels', (name, variant) => {
  it('losses, grad norms and step-1 gradients match; the exported folder is the trained model; detaching restores the base', async () => {
    const g: FullGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_full_${name}.json`), 'utf8'));
    const folder = nodeFolder(join(FIXTURES, 'models', name));
    const tf = await loadTransformer(e, folder, kernelChoiceFor(variant), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const config = goldenConfig(g, { method: 'full', targets: [] });
    expect(config.weightDecay).toBeGreaterThan(0);
    const trainer = new Trainer({ engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0 });
    try {
      // Every parameter torch trains, under its name, decayed exactly where torch decays it.
      const segs = trainer.method.layout.segments;
      expect(segs.map((s) => s.name).sort()).toEqual(g.parameters.map((p) => p.name).sort());
      const decay = new Map(g.parameters.map((p) => [p.name, p.decay]));
      for (const s of segs) expect(s.decay, s.name).toBe(decay.get(s.name));
      expect(trainer.method.trainableParams).toBe(g.parameters.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0));

      // Every tensor's step-1 gradient (torch's names are the segments').
      await expectGoldenSteps(e, trainer, g, (step) => (g.grads[String(step)] ? new Map(Object.entries(g.grads[String(step)])) : undefined));
      const { loss } = await trainer.evaluate();
      expect(Math.abs(loss - g.final_loss)).toBeLessThan(1e-4 * g.final_loss);

      if (variant === 'naive') {
        const dir = join(tmp, name);
        const model = await fullModelFolder(folder, await trainer.trainedTensors(), tf.model.config);
        await writeOutputFiles(dir, model.files);
        await model.close();
        expect(model.files.map((f) => f.path)).toContain('tokenizer.json');
        exported.set(name, { dir, loss, rows: g.rows });
      }
    } finally {
      trainer.dispose();
    }
    // The loaded weights were never written: the base model's loss is step 1's again.
    const base = await evaluateLoss(e, tf, new Batcher(rows, { batchSize: rows.length, padId: 0, seed: null }));
    expect(Math.abs(base.loss - g.steps[0].loss)).toBeLessThan(1e-4 * g.steps[0].loss);
  });
});

describe('full fine-tuning refusals', () => {
  it('refuses an NF4 or f16 model and a model over the GPU binding limit, naming why, and leaves the model usable', async () => {
    const g: FullGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', 'train_full_llama.json'), 'utf8'));
    const rows = goldenRows(g);
    const folder = nodeFolder(join(FIXTURES, 'models', 'llama'));
    const nf4 = await loadTransformer(e, folder, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'nf4' });
    expect(() => new Trainer({ engine: e, transformer: nf4, config: goldenConfig(g, { method: 'full', targets: [], quant: 'nf4' }), train: rows, padId: 0 })).toThrow(/full-precision|NF4/);
    const tf = await loadTransformer(e, folder, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const limits = e.gpu.limits;
    const small = { ...e, gpu: { ...e.gpu, limits: { ...limits, maxStorageBufferBindingSize: 64 * 1024 } } } as Engine;
    expect(() => new Trainer({ engine: small, transformer: tf, config: goldenConfig(g, { method: 'full', targets: [] }), train: rows, padId: 0 })).toThrow(FullFineTuningError);
    expect(() => new Trainer({ engine: small, transformer: tf, config: goldenConfig(g, { method: 'full', targets: [] }), train: rows, padId: 0 })).toThrow(/largest binding.*LoRA/);
    // Refused before anything was attached: a LoRA run still trains.
    const lora = new Trainer({ engine: e, transformer: tf, config: goldenConfig(g, { method: 'lora', targets: [], rank: 2, alpha: 4 }), train: rows, padId: 0 });
    try {
      expect(Number.isFinite((await lora.trainStep()).loss)).toBe(true);
    } finally {
      lora.dispose();
    }
  });
});

describe('our fully fine-tuned models in transformers', () => {
  it('has the reference Python wherever CI runs', () => {
    if (process.env.CI === 'true') expect(python, 'CI creates .venv-ref (scripts/setup-reference-python.sh)').not.toBeNull();
  });

  it.skipIf(!python)('from_pretrained(our folder) loads every tensor and gives our eval loss', async () => {
    const names = [...exported.keys()].sort();
    expect(names).toEqual(['gpt2', 'llama', 'qwen3']);
    const results = await runModelCheck(names.map((n) => ({ model: exported.get(n)!.dir, rows: exported.get(n)!.rows })));
    results.forEach((r, i) => {
      const { loss } = exported.get(names[i])!;
      expect(r.load.unexpected, names[i]).toEqual([]);
      expect(r.load.mismatched, names[i]).toEqual([]);
      // A tied model's head is the embedding: transformers lists no tensor for it.
      expect(r.load.missing.filter((k) => k !== 'lm_head.weight'), names[i]).toEqual([]);
      expect(r.load.dtype, names[i]).toBe('F32');
      expect(Math.abs(r.loss! - loss), `${names[i]}: transformers ${r.loss} vs ours ${loss}`).toBeLessThan(1e-4 * loss);
    });
  }, 180_000);
});
