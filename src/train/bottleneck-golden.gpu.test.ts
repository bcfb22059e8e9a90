// Houlsby and Pfeiffer bottleneck adapters against the PyTorch reference (float64, scripts/golden_bottleneck.py →
// tests/fixtures/golden/train_<method>_<fixture>.json): the same rows, the same initial adapter_down drawn by torch
// (Trainer's `initial`, by segment name), adapter_up at zero, AdamW at a constant lr with weight decay on the weights
// only and a 1.0 clip. The 10 losses, the grad norms, the step-1 and step-2 gradients of every adapter tensor and the
// tensors after 10 steps must match; the exported folder imports back (eval/generate's attachAdapter) and continues
// at our eval loss; and the reference, loading our exported folder into its hooked model, gives our eval loss within
// 1e-4 relative where the reference Python exists — under CI=true its absence fails.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluateRows } from '../cli/eval.ts';
import type { Engine } from '../gpu/engine.ts';
import { mismatches } from '../gpu/ref/testing.ts';
import { driverName, testEngine } from '../gpu/testing-gpu.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { attachAdapter } from './attach-adapter.ts';
import type { TrainConfig } from './config.ts';
import { bottleneckInitial } from './methods/bottleneck/format.ts';
import { METHODS } from './methods/registry.ts';
import { referencePython, writeAdapterFolder } from './peft-check.ts';
import { AdapterError, importAnyAdapter, importPeftAdapter } from './peft.ts';
import { expectGoldenSteps, goldenConfig, goldenRows, type GoldenRun } from './testing-golden.ts';
import { Trainer } from './trainer.ts';

interface BottleneckGolden extends GoldenRun {
  method: 'houlsby' | 'pfeiffer';
  bottleneck: { reduction_factor: number; non_linearity: TrainConfig['adapterActivation']; target_modules: string[] };
  modules: { path: string; out: number; size: number }[];
  initial: Record<string, number[]>;
  final_loss: number;
  grads: Record<string, Record<string, number[]>>;
  final: Record<string, number[]>;
}

interface CheckResult {
  loaded: number;
  adapter: { loss: number; tokens: number };
  base: { loss: number; tokens: number };
  max_abs_logit_diff_vs_base: number;
}

const python = referencePython();
let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'bottleneck-golden-'));
/** Per method and fixture: our exported folder and our eval loss after 10 steps, for the reference's live load. */
const exported = new Map<string, { dir: string; loss: number; rows: BottleneckGolden['rows']; base: string; tensors: number }>();
// The SwiftShader pass of a machine with lavapipe too leaves the live check to the lavapipe pass.
const OTHER_DRIVER = driverName === 'swiftshader' && existsSync(join(process.cwd(), '.webgpu', 'lavapipe', 'env.json'));

beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const RUNS = [
  ['houlsby', 'gpt2', 'naive'],
  ['houlsby', 'llama', 'naive'],
  ['houlsby', 'qwen3', 'naive'],
  ['pfeiffer', 'gpt2', 'naive'],
  ['pfeiffer', 'llama', 'naive'],
  ['pfeiffer', 'qwen3', 'naive'],
  ...(OTHER_DRIVER ? [] : [['houlsby', 'llama', 'blocked4'] as const]),
] as const;

describe.each(RUNS)('golden %s run against the PyTorch reference: %s, %s kernels', (method, name, variant) => {
  it('losses, grad norms, step-1/2 gradients and the trained tensors match; the export imports back and continues', async () => {
    const g: BottleneckGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_${method}_${name}.json`), 'utf8'));
    expect(g.method).toBe(method);
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor(variant), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const config = goldenConfig(g, { method, targets: [], reductionFactor: g.bottleneck.reduction_factor, adapterActivation: g.bottleneck.non_linearity });
    const initial = new Map(Object.entries(g.initial).map(([k, v]) => [k, Float32Array.from(v)]));
    const trainer = new Trainer({ engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0, initial });
    try {
      // The reference's modules, in its order, with its bottleneck sizes.
      expect(trainer.modules.map((m) => m.peftPath)).toEqual(g.modules.map((m) => m.path));
      expect(trainer.method.trainableParams).toBe(g.modules.reduce((s, m) => s + 2 * m.out * m.size + m.out + m.size, 0));
      // Every segment has its golden gradient (the reference's names are the segments').
      await expectGoldenSteps(e, trainer, g, (step) => {
        const want = g.grads[String(step)];
        if (!want) return undefined;
        for (const seg of trainer.method.layout.segments) expect(want[seg.name], seg.name).toBeDefined();
        return new Map(Object.entries(want));
      });
      const { loss } = await trainer.evaluate();
      expect(Math.abs(loss - g.final_loss)).toBeLessThan(1e-4 * g.final_loss);

      const trained = await trainer.trainedTensors();
      // Ten AdamW steps (lr 5e-3) of f32 against float64: within a small fraction of one step (measured on lavapipe:
      // ≤ 2.4e-6; losses ≤ 1.2e-7 and grad norms ≤ 4e-7 relative).
      for (const [seg, want] of Object.entries(g.final)) {
        expect(mismatches(trained.get(seg)!, want, { abs: 2e-5, rel: 0 }), `${seg} after 10 steps`).toEqual([]);
      }
      const files = METHODS[method].exportAdapter({
        tensors: trained,
        modules: trainer.modules,
        targetModules: trainer.targetModules,
        config,
        model: tf.model.config,
        baseModel: `tests/fixtures/models/${name}`,
      });
      const written = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
      expect(written).toEqual({
        adapter_type: 'bottleneck',
        config: method,
        reduction_factor: g.bottleneck.reduction_factor,
        bottleneck_size: g.modules[0].size,
        non_linearity: g.bottleneck.non_linearity,
        target_modules: g.bottleneck.target_modules,
        base_model_name_or_path: `tests/fixtures/models/${name}`,
        format: 'lora-studio-bottleneck/1',
      });
      if (variant === 'naive') {
        const dir = join(tmp, `${method}-${name}`);
        await writeAdapterFolder(dir, files);
        exported.set(`${method}-${name}`, { dir, loss, rows: g.rows, base: join(FIXTURES, 'models', name), tensors: 4 * g.modules.length });
      }
      trainer.dispose();

      // Imported back and put on the model as eval and generate do: our eval loss again.
      const adapter = await importAnyAdapter(memoryFolder({ ...files }), tf.model.config, 'ours');
      if (adapter.kind !== 'bottleneck') throw new Error(`imported as ${adapter.kind}`);
      expect(adapter.method).toBe(method);
      expect(adapter.activation).toBe(g.bottleneck.non_linearity);
      const detach = attachAdapter(e, tf.model, adapter);
      try {
        const again = await evaluateRows(e, tf, rows, { batchTokens: 1 << 20 });
        expect(Math.abs(again.loss - loss), `imported ${again.loss} vs trained ${loss}`).toBeLessThan(1e-6 * loss);
      } finally {
        detach();
      }
      // Detached: the base model again (step 0's loss).
      const base = await evaluateRows(e, tf, rows, { batchTokens: 1 << 20 });
      expect(Math.abs(base.loss - g.steps[0].loss)).toBeLessThan(1e-4 * base.loss);
      // And continues: a new run from the imported tensors evaluates at the adapter's loss before its first step.
      const next = new Trainer({ engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0, initial: bottleneckInitial(adapter) });
      try {
        const start = await next.evaluate();
        expect(Math.abs(start.loss - loss), `continued ${start.loss} vs trained ${loss}`).toBeLessThan(1e-6 * loss);
      } finally {
        next.dispose();
      }
      // What takes PEFT adapters only (merge, GGUF, the studio's runs) refuses it by name.
      await expect(importPeftAdapter(memoryFolder({ ...files }), tf.model.config, 'ours')).rejects.toThrow(AdapterError);
      await expect(importPeftAdapter(memoryFolder({ ...files }), tf.model.config, 'ours')).rejects.toThrow(/bottleneck adapter.*cannot be merged/);
    } finally {
      trainer.dispose();
    }
  });
});

describe('a bottleneck run initialised from its seed', () => {
  it('draws D and b_d in ±1/√out (different per seed), starts U and b_u at zero: step 0 is the base model', async () => {
    const g: BottleneckGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', 'train_houlsby_llama.json'), 'utf8'));
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', 'llama')), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const base = await evaluateRows(e, tf, rows, { batchTokens: 1 << 20 });
    const draws: Float32Array[] = [];
    for (const seed of [1, 2]) {
      const config = goldenConfig(g, { method: 'houlsby', targets: [], reductionFactor: 8, seed });
      const trainer = new Trainer({ engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0 });
      try {
        const tensors = await trainer.trainedTensors();
        for (const m of trainer.modules) {
          const bound = 1 / Math.sqrt(m.outFeatures);
          for (const part of ['adapter_down.weight', 'adapter_down.bias']) {
            const v = tensors.get(`${m.peftPath}.${part}`)!;
            expect(v.every((x) => Math.abs(x) <= bound) && v.some((x) => x !== 0), `${m.peftPath}.${part}`).toBe(true);
          }
          for (const part of ['adapter_up.weight', 'adapter_up.bias']) expect(tensors.get(`${m.peftPath}.${part}`)!.every((x) => x === 0)).toBe(true);
        }
        draws.push(tensors.get(`${trainer.modules[0].peftPath}.adapter_down.weight`)!);
        const start = await trainer.evaluate();
        expect(Math.abs(start.loss - base.loss), `step 0 ${start.loss} vs base ${base.loss}`).toBeLessThan(1e-6 * base.loss);
      } finally {
        trainer.dispose();
      }
    }
    expect(Array.from(draws[0])).not.toEqual(Array.from(draws[1]));
  });
});

/** scripts/golden_bottleneck.py --check on `jobs` (one Python start for all of them). */
function runReferenceCheck(jobs: { base: string; adapter: string; rows: BottleneckGolden['rows'] }[]): Promise<CheckResult[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(python!, [join(process.cwd(), 'scripts', 'golden_bottleneck.py'), '--check'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`golden_bottleneck.py --check exited with ${code}:\n${stderr.slice(-4000)}`));
      try {
        resolve(JSON.parse(stdout) as CheckResult[]);
      } catch (err) {
        reject(new Error(`golden_bottleneck.py --check printed no JSON (${(err as Error).message}):\n${stdout.slice(0, 2000)}\n${stderr.slice(-2000)}`));
      }
    });
    child.stdin.end(JSON.stringify(jobs));
  });
}

describe('our bottleneck adapters in the PyTorch reference', () => {
  it('has the reference Python wherever CI runs', () => {
    if (process.env.CI === 'true') expect(python, 'CI creates .venv-ref (scripts/setup-reference-python.sh)').not.toBeNull();
  });

  it.skipIf(!python || OTHER_DRIVER)('the hooked torch model, loading our exported folder, takes every tensor and gives our eval loss', async () => {
    const keys = [...exported.keys()].sort();
    expect(keys).toEqual(['houlsby-gpt2', 'houlsby-llama', 'houlsby-qwen3', 'pfeiffer-gpt2', 'pfeiffer-llama', 'pfeiffer-qwen3']);
    const results = await runReferenceCheck(keys.map((k) => ({ base: exported.get(k)!.base, adapter: exported.get(k)!.dir, rows: exported.get(k)!.rows })));
    results.forEach((r, i) => {
      const { loss, tensors } = exported.get(keys[i])!;
      expect(r.loaded, keys[i]).toBe(tensors);
      expect(r.max_abs_logit_diff_vs_base, keys[i]).toBeGreaterThan(1e-3);
      expect(Math.abs(r.adapter.loss - loss), `${keys[i]}: reference ${r.adapter.loss} vs ours ${loss}`).toBeLessThan(1e-4 * loss);
    });
  }, 180_000);
});
