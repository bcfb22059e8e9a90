// AdaLoRA against PEFT + transformers (float64, scripts/golden_adalora.py → tests/fixtures/golden/train_adalora_*.json):
// the same rows, PEFT's drawn lora_A and lora_B, lora_E = 0, AdamW at a constant lr with a 1.0 clip, and a schedule
// that reallocates within the 10 steps (init_r 6 → target_r 2, tinit 2, tfinal 3, deltaT 2, total_step 10). The 10
// losses (the regulariser included: PEFT's outputs.loss), the grad norms, the step-1/2 gradients of A, E and B, and
// the rank pattern after every budget step (4, 6, 7) must match; the adapter we export is PEFT's own file (config with
// its rank_pattern, tensors cut to the kept rows); it imports back (eval) and continues at our eval loss; and
// PeftModel.from_pretrained(our adapter) gives our eval loss (1e-4 relative) where the reference Python exists —
// under CI=true its absence fails.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readF32 } from '../gpu/buffers.ts';
import { countersSince, snapshotCounters } from '../gpu/counters.ts';
import type { Engine } from '../gpu/engine.ts';
import { driverName, testEngine } from '../gpu/testing-gpu.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { evaluateRows } from '../cli/eval.ts';
import { attachAdapter } from './attach-adapter.ts';
import { loraSegmentName } from './lora-names.ts';
import { adaloraSegmentName } from './methods/adalora/config.ts';
import { METHODS } from './methods/registry.ts';
import { importPeftAdapter } from './peft.ts';
import { referencePython, runPeftCheck, writeAdapterFolder } from './peft-check.ts';
import { expectGoldenSteps, expectPeftAdapter, goldenConfig, goldenRows, type GoldenRun } from './testing-golden.ts';
import { Trainer } from './trainer.ts';

export interface AdaloraGolden extends GoldenRun {
  adalora: { init_r: number; target_r: number; tinit: number; tfinal: number; deltaT: number; total_step: number; beta1: number; beta2: number; orth_reg_weight: number; lora_alpha: number };
  modules: { path: string; in: number; out: number; A0: number[]; B0: number[] }[];
  final_loss: number;
  grads: Record<string, Record<string, { dA: number[]; dE: number[]; dB: number[] }>>;
  rank_patterns: Record<string, Record<string, boolean[]>>;
  rank_pattern: Record<string, boolean[]>;
}

const python = referencePython();
// PEFT's side of the live check reads our exported file, which the comparison with PEFT's file already pins on every
// driver: run it once, on lavapipe when the GPU suite also runs on SwiftShader.
const OTHER_DRIVER = driverName === 'swiftshader' && existsSync(join(process.cwd(), '.webgpu', 'lavapipe', 'env.json'));
let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'adalora-golden-'));
const exported = new Map<string, { dir: string; loss: number; rows: AdaloraGolden['rows'] }>();

beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

export function adaloraGoldenConfig(g: AdaloraGolden) {
  const a = g.adalora;
  return goldenConfig(g, {
    method: 'adalora', alpha: a.lora_alpha, targets: [], initR: a.init_r, targetR: a.target_r, tinit: a.tinit, tfinal: a.tfinal,
    deltaT: a.deltaT, totalStep: a.total_step, adaloraBeta1: a.beta1, adaloraBeta2: a.beta2, orthRegWeight: a.orth_reg_weight,
  });
}

describe.each(['gpt2', 'llama', 'qwen3'] as const)('golden AdaLoRA run against PEFT: %s', (name) => {
  it('losses, grad norms, step-1/2 gradients and rank patterns match; the exported adapter is PEFT\'s, imports and continues', async () => {
    const g: AdaloraGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_adalora_${name}.json`), 'utf8'));
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const config = adaloraGoldenConfig(g);
    const r = g.adalora.init_r;
    const initial = new Map(g.modules.flatMap((m) => [[loraSegmentName(m.path, 'A'), Float32Array.from(m.A0)], [loraSegmentName(m.path, 'B'), Float32Array.from(m.B0)]]));
    const trainer = new Trainer({ engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0, initial });
    try {
      expect(trainer.modules.map((m) => m.peftPath)).toEqual(g.modules.map((m) => m.path));
      expect(trainer.method.trainableParams).toBe(g.modules.reduce((s, m) => s + r * (m.in + m.out + 1), 0));
      // E = 0: step 0 is the base model.
      const before = await trainer.evaluate();
      const segments = new Map(trainer.method.layout.segments.map((x) => [x.name, x]));
      const patterns = new Map<number, Record<string, boolean[]>>();
      await expectGoldenSteps(
        e,
        trainer,
        g,
        (step) => {
          const want = g.grads[String(step)];
          if (!want) return undefined;
          return new Map(
            Object.entries(want).flatMap(([path, w]) => [
              [loraSegmentName(path, 'A'), w.dA],
              [adaloraSegmentName(path, 'E'), w.dE],
              [loraSegmentName(path, 'B'), w.dB],
            ]),
          );
        },
        async (step) => {
          if (!g.rank_patterns[String(step)]) return;
          const flat = await readF32(e.device, trainer.method.params, trainer.method.layout.totalLength);
          patterns.set(step, Object.fromEntries(g.modules.map((m) => {
            const s = segments.get(adaloraSegmentName(m.path, 'mask'))!;
            return [m.path, Array.from(flat.subarray(s.offset, s.offset + s.length), (v) => v !== 0)];
          })));
        },
      );
      expect(before.loss).toBeLessThan(g.steps[0].loss); // the step's loss adds the regulariser
      for (const [step, want] of Object.entries(g.rank_patterns)) expect(patterns.get(Number(step)), `rank pattern after step ${step}`).toEqual(want);
      const { loss } = await trainer.evaluate();
      expect(Math.abs(loss - g.final_loss), `final ${loss} vs PEFT ${g.final_loss}`).toBeLessThan(1e-4 * g.final_loss);

      const files = METHODS.adalora.exportAdapter({
        tensors: await trainer.trainedTensors(),
        modules: trainer.modules,
        targetModules: trainer.targetModules,
        config: trainer.config,
        model: tf.model.config,
        baseModel: `tests/fixtures/models/${name}`,
      });
      // Ten AdamW steps at lr 1e-2 of f32 against float64: measured ≤ 1.7e-7 on lavapipe and SwiftShader.
      await expectPeftAdapter(files, join(FIXTURES, 'golden', `train_adalora_${name}_adapter`), 2e-5);
      const dir = join(tmp, name);
      await writeAdapterFolder(dir, files);
      exported.set(name, { dir, loss, rows: g.rows });
      trainer.dispose();

      // Imported back (rank pattern, α / (init_r + 1e-5)) and put on the model as eval and generate do: our eval loss.
      const adapter = await importPeftAdapter(memoryFolder({ ...files }), tf.model.config, 'ours');
      if (adapter.kind !== 'lora' || !adapter.adalora) throw new Error('not read as AdaLoRA');
      const detach = attachAdapter(e, tf.model, adapter);
      try {
        const again = await evaluateRows(e, tf, rows, { batchTokens: 1 << 20 });
        expect(Math.abs(again.loss - loss), `imported ${again.loss} vs trained ${loss}`).toBeLessThan(1e-6 * loss);
      } finally {
        detach();
      }
      // And continues: a new run from the imported SVD tensors and rank mask evaluates at the adapter's loss.
      const from = new Map(
        [...adapter.adalora.tensors].flatMap(([path, t]) => [
          [loraSegmentName(path, 'A'), t.A],
          [loraSegmentName(path, 'B'), t.B],
          [adaloraSegmentName(path, 'E'), t.E],
          [adaloraSegmentName(path, 'mask'), t.mask],
        ]),
      );
      const next = new Trainer({ engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0, initial: from });
      try {
        const start = await next.evaluate();
        expect(Math.abs(start.loss - loss), `continued ${start.loss} vs trained ${loss}`).toBeLessThan(1e-6 * loss);
        const step = await next.trainStep();
        expect(Number.isFinite(step.loss)).toBe(true);
      } finally {
        next.dispose();
      }
    } finally {
      trainer.dispose();
    }
  });
});

describe('our AdaLoRA adapters in the real PEFT', () => {
  it('has the reference Python wherever CI runs', () => {
    if (process.env.CI === 'true') expect(python, 'CI creates .venv-ref (scripts/setup-reference-python.sh)').not.toBeNull();
  });

  it.skipIf(!python || OTHER_DRIVER)('PeftModel.from_pretrained(base, ours) takes every lora_A, lora_E and lora_B (resized by the rank pattern) and gives our eval loss', async () => {
    const names = [...exported.keys()];
    expect(names.sort()).toEqual(['gpt2', 'llama', 'qwen3']);
    const results = await runPeftCheck(names.map((n) => ({ base: join(FIXTURES, 'models', n), adapter: exported.get(n)!.dir, rows: exported.get(n)!.rows })));
    results.forEach((res, i) => {
      const { loss } = exported.get(names[i])!;
      expect(res.load.mismatched, names[i]).toEqual([]);
      expect(res.load.unexpected, names[i]).toEqual([]);
      expect(res.load.missing, names[i]).toEqual([]);
      expect(res.load.matched, names[i]).toBe(res.load.file_tensors);
      expect(res.max_abs_logit_diff.adapter_vs_base, names[i]).toBeGreaterThan(1e-4);
      expect(Math.abs(res.adapter.loss - loss), `${names[i]}: PEFT ${res.adapter.loss} vs ours ${loss}`).toBeLessThan(1e-4 * loss);
      // PEFT's merge_and_unload of our adapter is the adapter.
      expect(Math.abs(res.peft_merged!.loss - res.adapter.loss), names[i]).toBeLessThan(1e-9 * loss);
    });
  }, 180_000);
});

describe('AdaLoRA\'s reads and submissions per step', () => {
  it('reads back once per step, twice on a budget step (the triplet scores), and creates no buffer after the first step', async () => {
    const g: AdaloraGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', 'train_adalora_llama.json'), 'utf8'));
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', 'llama')), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const trainer = new Trainer({ engine: e, transformer: tf, config: adaloraGoldenConfig(g), train: goldenRows(g), padId: 0 });
    try {
      await trainer.trainStep();
      const reads: number[] = [];
      const submits: number[] = [];
      for (let step = 2; step <= 10; step++) {
        const before = snapshotCounters(e.device);
        await trainer.trainStep();
        const c = countersSince(e.device, before);
        expect(c.buffersCreated, `step ${step}: buffers created`).toBe(0);
        reads.push(c.readbacks);
        submits.push(c.submits);
      }
      // Steps 2–10: budget steps 4 and 6 (every deltaT = 2 in the budget phase) and 7 (total_step − tfinal).
      expect(reads).toEqual([1, 1, 2, 1, 2, 2, 1, 1, 1]);
      // A budget step submits the masking (E and A_eff) besides the step; the scores' copy is in the step's own.
      expect(submits).toEqual([1, 1, 2, 1, 2, 2, 1, 1, 1]);
    } finally {
      trainer.dispose();
    }
  });
});
