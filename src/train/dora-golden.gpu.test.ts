// DoRA against PEFT + transformers (float64, scripts/golden_dora.py → tests/fixtures/golden/train_dora_<fixture>.json):
// the same rows, the same initial lora_A, B = 0, m = ‖W‖ per row (ours computed on the GPU by the first forward, and
// checked against PEFT's), AdamW at a constant lr with a 1.0 clip. The first 10 losses, the grad norms and the step-1
// and step-2 gradients of A, B and m must match; the adapter we export after 10 steps must be PEFT's own file, key for
// key (config, use_dora true) and value for value within f32 training noise (tensors, lora_magnitude_vector included);
// our file imports back (eval, generate) and continues at our eval loss; and PeftModel.from_pretrained(our adapter)
// must give our eval loss (1e-4 relative) where the reference Python exists
// — under CI=true its absence fails.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../gpu/engine.ts';
import { mismatches } from '../gpu/ref/testing.ts';
import { driverName, testEngine } from '../gpu/testing-gpu.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { loraSegmentName } from './lora-names.ts';
import { doraMagnitudeSegmentName } from './methods/dora/config.ts';
import { METHODS } from './methods/registry.ts';
import { referencePython, runPeftCheck, writeAdapterFolder } from './peft-check.ts';
import { expectGoldenSteps, expectPeftAdapter, goldenConfig, goldenRows, type GoldenRun } from './testing-golden.ts';
import { Trainer } from './trainer.ts';
import { attachAdapter } from './attach-adapter.ts';
import { importPeftAdapter } from './peft.ts';
import { evaluateRows } from '../cli/eval.ts';

export interface DoraGolden extends GoldenRun {
  lora: { r: number; lora_alpha: number; target_modules: string[]; fan_in_fan_out: boolean };
  modules: { path: string; in: number; out: number; A0: number[]; m0: number[] }[];
  final_loss: number;
  grads: Record<string, Record<string, { dA: number[]; dB: number[]; dm: number[] }>>;
  merged: { path: string; weight: number[] };
}

const python = referencePython();
// PEFT's side of the live check reads our exported file, which the golden comparison above already pins on every
// driver: run it once, on lavapipe when the GPU suite also runs on SwiftShader (as trl-live.gpu.test.ts).
const OTHER_DRIVER = driverName === 'swiftshader' && existsSync(join(process.cwd(), '.webgpu', 'lavapipe', 'env.json'));
let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'dora-golden-'));
const exported = new Map<string, { dir: string; loss: number; rows: DoraGolden['rows'] }>();

beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// The blocked4 run composes the same DoRA kernels with the register-blocked matmul: once per suite (lavapipe when
// both drivers run; its compile alone takes ~10 s on SwiftShader). The naive runs cover DoRA's kernels on each driver.
// llama_loraplus: the Llama run with LoRA+ (ratio 16): B and the magnitudes at 16× lr, as PEFT's
// create_loraplus_optimizer groups them.
type Run = readonly ['gpt2' | 'llama' | 'qwen3' | 'llama_loraplus', 'naive' | 'blocked4'];
const RUNS: Run[] = [['gpt2', 'naive'], ['llama', 'naive'], ['qwen3', 'naive'], ['llama_loraplus', 'naive'], ...(OTHER_DRIVER ? [] : [['llama', 'blocked4'] as const])];

describe.each(RUNS)('golden DoRA run against PEFT: %s, %s kernels', (name, variant) => {
  it('m0, losses, grad norms and step-1/2 gradients match; the exported adapter is PEFT\'s', async () => {
    const g: DoraGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_dora_${name}.json`), 'utf8'));
    const fixture = name === 'llama_loraplus' ? 'llama' : name;
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', fixture)), kernelChoiceFor(variant), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const config = goldenConfig(g, { method: 'dora', rank: g.lora.r, alpha: g.lora.lora_alpha, targets: [] });
    const trainer = new Trainer({
      engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0,
      initial: new Map(g.modules.map((m) => [loraSegmentName(m.path, 'A'), Float32Array.from(m.A0)])),
    });
    try {
      expect(trainer.modules.map((m) => m.peftPath)).toEqual(g.modules.map((m) => m.path));
      expect(trainer.method.trainableParams).toBe(g.modules.reduce((s, m) => s + g.lora.r * (m.in + m.out) + m.out, 0));
      // The first forward sets m to the row norms of W, as PEFT does when it wraps the model; B = 0, so the loss is
      // the base model's.
      const before = await trainer.evaluate();
      expect(Math.abs(before.loss - g.steps[0].loss)).toBeLessThan(1e-5 * g.steps[0].loss);
      const m0 = await trainer.trainedTensors();
      for (const m of g.modules) {
        expect(mismatches(m0.get(doraMagnitudeSegmentName(m.path))!, m.m0, { abs: 0, rel: 2e-6 }), `m0 of ${m.path}`).toEqual([]);
      }
      await expectGoldenSteps(e, trainer, g, (step) => {
        const want = g.grads[String(step)];
        if (!want) return undefined;
        return new Map(
          Object.entries(want).flatMap(([path, w]) => [
            [loraSegmentName(path, 'A'), w.dA],
            [loraSegmentName(path, 'B'), w.dB],
            [doraMagnitudeSegmentName(path), w.dm],
          ]),
        );
      });
      const { loss } = await trainer.evaluate();
      expect(Math.abs(loss - g.final_loss)).toBeLessThan(1e-4 * g.final_loss);

      const files = METHODS.dora.exportAdapter({
        tensors: await trainer.trainedTensors(),
        modules: trainer.modules,
        targetModules: trainer.targetModules,
        config,
        model: tf.model.config,
        baseModel: `tests/fixtures/models/${fixture}`,
      });
      // Ten AdamW steps (lr 1e-3) of f32 against float64: within a small fraction of one step.
      await expectPeftAdapter(files, join(FIXTURES, 'golden', `train_dora_${name}_adapter`), 2e-5);
      if (variant === 'naive' && fixture === name) {
        const dir = join(tmp, name);
        await writeAdapterFolder(dir, files);
        exported.set(name, { dir, loss, rows: g.rows });
      }
      trainer.dispose();
      // Imported back (use_dora, the magnitudes) and put on the model as eval and generate do: our eval loss again.
      const adapter = await importPeftAdapter(memoryFolder({ ...files }), tf.model.config, 'ours');
      expect(adapter.kind === 'lora' && adapter.dora).toBe(true);
      const detach = attachAdapter(e, tf.model, adapter);
      try {
        const again = await evaluateRows(e, tf, rows, { batchTokens: 1 << 20 });
        expect(Math.abs(again.loss - loss), `imported ${again.loss} vs trained ${loss}`).toBeLessThan(1e-6 * loss);
      } finally {
        detach();
      }
      // And continues: a new run started from the imported tensors (magnitudes included, as the worker's
      // continuation passes them) evaluates at the adapter's loss before its first step.
      if (adapter.kind === 'ia3') throw new Error('unreachable');
      const initial = new Map(
        adapter.modules.flatMap((m) => [
          [loraSegmentName(m.peftPath, 'A'), m.A],
          [loraSegmentName(m.peftPath, 'B'), m.B],
          [doraMagnitudeSegmentName(m.peftPath), m.magnitude!],
        ]),
      );
      const next = new Trainer({ engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0, initial });
      try {
        const start = await next.evaluate();
        expect(Math.abs(start.loss - loss), `continued ${start.loss} vs trained ${loss}`).toBeLessThan(1e-6 * loss);
      } finally {
        next.dispose();
      }
    } finally {
      trainer.dispose();
    }
  });
});

describe('our DoRA adapters in the real PEFT', () => {
  it('has the reference Python wherever CI runs', () => {
    if (process.env.CI === 'true') expect(python, 'CI creates .venv-ref (scripts/setup-reference-python.sh)').not.toBeNull();
  });

  it.skipIf(!python || OTHER_DRIVER)('PeftModel.from_pretrained(base, ours) takes every lora_A, lora_B and lora_magnitude_vector and gives our eval loss', async () => {
    const names = [...exported.keys()];
    expect(names.sort()).toEqual(['gpt2', 'llama', 'qwen3']);
    const results = await runPeftCheck(
      names.map((n) => ({ base: join(FIXTURES, 'models', n), adapter: exported.get(n)!.dir, rows: exported.get(n)!.rows })),
    );
    results.forEach((r, i) => {
      const { loss } = exported.get(names[i])!;
      expect(r.load.mismatched, names[i]).toEqual([]);
      expect(r.load.unexpected, names[i]).toEqual([]);
      expect(r.load.missing, names[i]).toEqual([]);
      expect(r.load.matched, names[i]).toBe(r.load.file_tensors);
      expect(r.max_abs_logit_diff.adapter_vs_base, names[i]).toBeGreaterThan(1e-4);
      expect(Math.abs(r.adapter.loss - loss), `${names[i]}: PEFT ${r.adapter.loss} vs ours ${loss}`).toBeLessThan(1e-4 * loss);
    });
  }, 180_000);
});
