// The golden run: our trainer against PEFT + transformers (float64) on the same set-up — same rows, the same initial
// lora_A, B = 0, AdamW with a constant lr and a 1.0 clip. The first 10 losses and the step-1 and step-2 LoRA
// gradients must match. Goldens: scripts/golden_train.py → tests/fixtures/golden/train_<fixture>.json.
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { mismatches } from '../gpu/ref/testing.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { loraSegmentName } from './lora-names.ts';
import { goldenConfig, goldenRows, type GoldenRun } from './testing-golden.ts';
import { detachLora, readLoraTensors } from './lora-state.ts';
import { Trainer } from './trainer.ts';

interface TrainGolden extends GoldenRun {
  lora: { r: number; lora_alpha: number; target_modules: string[] };
  modules: { path: string; in: number; out: number; A0: number[] }[];
  grads: Record<string, Record<string, { dA: number[]; dB: number[] }>>;
}

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

// naive: the fused LoRA kernels; blocked4: the route a GPU takes (base matmul + the rank-r path, see kernelChoiceFor).
const RUNS = [
  ['gpt2', 'naive'],
  ['llama', 'naive'],
  ['qwen3', 'naive'],
  ['gpt2', 'blocked4'],
  ['llama', 'blocked4'],
] as const;

describe.each(RUNS)('golden LoRA run against PEFT: %s, %s kernels', (name, variant) => {
  it('first 10 losses, grad norms and the step-1/2 gradients match', async () => {
    const g: TrainGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_${name}.json`), 'utf8'));
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor(variant), { dtype: 'f32', quant: 'none' });
    const trainer = new Trainer({
      engine: e,
      transformer: tf,
      config: goldenConfig(g, { rank: g.lora.r, alpha: g.lora.lora_alpha, targets: g.lora.target_modules }),
      train: goldenRows(g),
      padId: 0,
      initial: new Map(g.modules.map((m) => [loraSegmentName(m.path, 'A'), Float32Array.from(m.A0)])),
    });
    const losses: number[] = [];
    const norms: number[] = [];
    for (const s of g.steps) {
      const m = await trainer.trainStep();
      losses.push(m.loss);
      norms.push(m.gradNorm);
      const want = g.grads[String(s.step)];
      if (!want) continue;
      // AdamW reads the gradients and leaves them in place: they are this step's raw (unclipped) gradients.
      const grads = await readLoraTensors(e, trainer.lora, 'grads');
      for (const t of grads) {
        const w = want[t.module.peftPath];
        // f32 sums of ~20 tokens' contributions against float64: within 1e-5 of the gradient's scale, 1e-4 relative.
        const scale = Math.max(...w.dB.map(Math.abs), ...w.dA.map(Math.abs), 1e-12);
        const tol = { abs: 1e-5 * scale, rel: 1e-4 };
        expect(mismatches(t.A, w.dA, tol), `${t.module.peftPath} dA at step ${s.step}`).toEqual([]);
        expect(mismatches(t.B, w.dB, tol), `${t.module.peftPath} dB at step ${s.step}`).toEqual([]);
      }
    }
    detachLora(e, trainer.lora);
    expect(mismatches(losses, g.steps.map((s) => s.loss), { abs: 0, rel: 1e-4 })).toEqual([]);
    expect(mismatches(norms, g.steps.map((s) => s.grad_norm), { abs: 0, rel: 1e-3 })).toEqual([]);
  });
});
