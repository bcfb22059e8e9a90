// IA³ against PEFT + transformers (float64, scripts/golden_ia3.py → tests/fixtures/golden/train_ia3_<fixture>.json):
// the same rows, every ia3_l at 1, AdamW at a constant lr with a 1.0 clip. The first 10 losses, the grad norms and the
// step-1 and step-2 gradients must match; the adapter we export after 10 steps must be PEFT's own file, key for key
// (config) and value for value within f32 training noise (tensors); and PeftModel.from_pretrained(our adapter) must
// give our eval loss (1e-4 relative) where the reference Python exists — under CI=true its absence fails.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { ia3SegmentName } from './methods/ia3/config.ts';
import { METHODS } from './methods/registry.ts';
import { mergeModel } from './merge.ts';
import { referencePython, runPeftCheck, writeAdapterFolder, writeOutputFiles } from './peft-check.ts';
import { importPeftAdapter } from './peft.ts';
import { expectGoldenSteps, expectPeftAdapter, goldenConfig, goldenRows, type GoldenRun } from './testing-golden.ts';
import { Trainer } from './trainer.ts';

interface Ia3Golden extends GoldenRun {
  ia3: { target_modules: string[]; feedforward_modules: string[]; fan_in_fan_out: boolean };
  modules: { path: string; in: number; out: number; feedforward: boolean; length: number }[];
  final_loss: number;
  grads: Record<string, Record<string, number[]>>;
}

const python = referencePython();
let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'ia3-golden-'));
/** Per fixture: our exported adapter folder and our eval loss after 10 steps, for the one live PEFT run at the end. */
const exported = new Map<string, { dir: string; mergedDir: string; loss: number; rows: Ia3Golden['rows'] }>();

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

describe.each(RUNS)('golden IA³ run against PEFT: %s, %s kernels', (name, variant) => {
  it('losses, grad norms and step-1/2 gradients match; the exported adapter is PEFT\'s', async () => {
    const g: Ia3Golden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_ia3_${name}.json`), 'utf8'));
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor(variant), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const config = goldenConfig(g, { method: 'ia3', targets: [] });
    const trainer = new Trainer({ engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0 });
    try {
      // PEFT's default modules, in its order, with its vector lengths.
      expect(trainer.modules.map((m) => m.peftPath)).toEqual(g.modules.map((m) => m.path));
      expect(trainer.method.trainableParams).toBe(g.modules.reduce((s, m) => s + m.length, 0));
      await expectGoldenSteps(e, trainer, g, (step) => {
        const want = g.grads[String(step)];
        return want ? new Map(Object.entries(want).map(([path, dl]) => [ia3SegmentName(path), dl])) : undefined;
      });
      const { loss } = await trainer.evaluate();
      expect(Math.abs(loss - g.final_loss)).toBeLessThan(1e-4 * g.final_loss);

      // The export: PEFT's adapter_config.json key for key (but the base path), PEFT's tensors after its own 10 steps.
      const files = METHODS.ia3.exportAdapter({
        tensors: await trainer.trainedTensors(),
        modules: trainer.modules,
        targetModules: trainer.targetModules,
        config,
        model: tf.model.config,
        baseModel: `tests/fixtures/models/${name}`,
      });
      // Ten AdamW steps of f32 against float64: parameters agree to a small fraction of a step (lr 1e-2).
      await expectPeftAdapter(files, join(FIXTURES, 'golden', `train_ia3_${name}_adapter`), 2e-4);
      expect(ia3SegmentName(trainer.modules[0].peftPath)).toBe(trainer.method.layout.segments[0].name);
      if (variant === 'naive') {
        const dir = join(tmp, name);
        await writeAdapterFolder(dir, files);
        // And merged into the base checkpoint (f16), for the comparison with PEFT's own merge_and_unload.
        const mergedDir = join(tmp, `${name}-merged`);
        const merged = await mergeModel(nodeFolder(join(FIXTURES, 'models', name)), await importPeftAdapter(memoryFolder({ ...files }), tf.model.config));
        await writeOutputFiles(mergedDir, merged.files);
        await merged.close();
        exported.set(name, { dir, mergedDir, loss, rows: g.rows });
      }
    } finally {
      trainer.dispose();
    }
  });
});

describe('our IA³ adapters in the real PEFT', () => {
  it('has the reference Python wherever CI runs', () => {
    if (process.env.CI === 'true') expect(python, 'CI creates .venv-ref (scripts/setup-reference-python.sh)').not.toBeNull();
  });

  it.skipIf(!python)('PeftModel.from_pretrained(base, ours) takes every ia3_l and gives our eval loss; our merge is PEFT\'s', async () => {
    const names = [...exported.keys()];
    expect(names.sort()).toEqual(['gpt2', 'llama', 'qwen3']);
    const results = await runPeftCheck(
      names.map((n) => ({ base: join(FIXTURES, 'models', n), adapter: exported.get(n)!.dir, merged: exported.get(n)!.mergedDir, rows: exported.get(n)!.rows })),
    );
    results.forEach((r, i) => {
      const { loss } = exported.get(names[i])!;
      expect(r.load.mismatched, names[i]).toEqual([]);
      expect(r.load.unexpected, names[i]).toEqual([]);
      expect(r.load.missing, names[i]).toEqual([]);
      expect(r.load.matched, names[i]).toBe(r.load.file_tensors);
      expect(r.max_abs_logit_diff.adapter_vs_base, names[i]).toBeGreaterThan(1e-3);
      expect(Math.abs(r.adapter.loss - loss), `${names[i]}: PEFT ${r.adapter.loss} vs ours ${loss}`).toBeLessThan(1e-4 * loss);
      // Our merge (W ⊙ l, biases of output-scaled layers too, stored f16) against PEFT's merge rounded to f16: the same
      // weights but for an occasional one-ulp double rounding (f64 → f32 → f16), far below the adapter's own effect.
      const d = r.max_abs_logit_diff;
      expect(d.merged_vs_peft_merged_f16!, names[i]).toBeLessThan(d.adapter_vs_base / 100);
      expect(Math.abs(r.merged!.loss - r.adapter.loss), names[i]).toBeLessThan(5e-3 * r.adapter.loss);
    });
  }, 180_000);
});
