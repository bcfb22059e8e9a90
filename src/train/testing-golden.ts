// What the golden training tests (golden.gpu.test.ts, ia3-golden, dora-golden, the prompt methods' …) share: the
// TrainConfig a golden file's set-up stands for, its rows, and the comparison of an adapter we export with the one
// PEFT saved after its own ten steps. Test-only.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { mismatches } from '../gpu/ref/testing.ts';
import { SafetensorsFile } from '../model/safetensors.ts';
import { MemorySource } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import type { TokenizedRow } from '../data/encode.ts';
import { DEFAULT_CONFIG, type TrainConfig } from './config.ts';
import type { AdapterFiles } from './peft.ts';
import { Trainer } from './trainer.ts';
import { METHODS } from './methods/registry.ts';
import type { Transformer } from '../model/runtime/transformer.ts';
import { readF32 } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';

export interface GoldenRun {
  optimizer: { lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number; loraplus_lr_ratio?: number | null };
  rows: { input_ids: number[]; labels: number[] }[];
  steps: { step: number; loss: number; grad_norm: number }[];
}

export function goldenRows(g: GoldenRun): TokenizedRow[] {
  return g.rows.map((r) => ({ input_ids: Int32Array.from(r.input_ids), labels: Int32Array.from(r.labels) }));
}

/** The golden set-up as a TrainConfig: its AdamW at a constant lr with no warmup, every row in one micro-batch, as
 *  many steps as the file has; `method` the method's own fields (method, rank, alpha, targets …). */
export function goldenConfig(g: GoldenRun, method: Partial<TrainConfig>): TrainConfig {
  return {
    ...DEFAULT_CONFIG,
    dropout: 0,
    ...method,
    lr: g.optimizer.lr,
    beta1: g.optimizer.betas[0],
    beta2: g.optimizer.betas[1],
    eps: g.optimizer.eps,
    weightDecay: g.optimizer.weight_decay,
    maxGradNorm: g.optimizer.max_grad_norm,
    loraPlusRatio: g.optimizer.loraplus_lr_ratio ?? 1,
    schedule: 'constant',
    warmupSteps: 0,
    batchSize: g.rows.length,
    maxSteps: g.steps.length,
  };
}

/** Our exported files against the adapter PEFT saved in `peftDir`: adapter_config.json key for key (target_modules as
 *  a set), the same tensor names and shapes, values within `abs` (f32 training against PEFT's float64). */
export async function expectPeftAdapter(files: AdapterFiles, peftDir: string, abs: number): Promise<void> {
  const ours = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
  const theirs = JSON.parse(readFileSync(join(peftDir, 'adapter_config.json'), 'utf8'));
  const sorted = (c: Record<string, unknown>) => (Array.isArray(c.target_modules) ? { ...c, target_modules: [...c.target_modules].sort() } : c);
  expect(sorted(ours)).toEqual(sorted(theirs));
  const mine = await SafetensorsFile.open(new MemorySource('ours', files['adapter_model.safetensors']));
  const peft = await SafetensorsFile.open((await nodeFolder(peftDir).open('adapter_model.safetensors'))!);
  expect(mine.names().sort()).toEqual(peft.names().sort());
  for (const key of peft.names()) {
    expect(mine.info(key).shape, key).toEqual(peft.info(key).shape);
    expect(mismatches(await mine.readTensor(key, 'f32'), await peft.readTensor(key, 'f32'), { abs, rel: 0 }), key).toEqual([]);
  }
}

/**
 * Trains the golden run's steps and holds them to it: at every step `gradsAt` has gradients for (segment name → the
 * raw gradient before clipping), each segment's within 1e-4 relative (1e-5 of its largest value absolute); then the
 * losses within 1e-4 and the gradient norms within 1e-3 relative.
 */
export async function expectGoldenSteps(
  e: Engine,
  trainer: Trainer,
  g: GoldenRun,
  gradsAt: (step: number) => ReadonlyMap<string, ArrayLike<number>> | undefined,
  /** Further checks after each step (AdaLoRA: the rank pattern of a budget step). */
  afterEach?: (step: number) => Promise<void>,
): Promise<void> {
  const losses: number[] = [];
  const norms: number[] = [];
  const segments = new Map(trainer.method.layout.segments.map((x) => [x.name, x]));
  for (const s of g.steps) {
    const m = await trainer.trainStep();
    losses.push(m.loss);
    norms.push(m.gradNorm);
    await afterEach?.(s.step);
    const want = gradsAt(s.step);
    if (!want) continue;
    // AdamW leaves this step's raw gradients in place.
    const flat = await readF32(e.device, trainer.method.grads, trainer.method.layout.totalLength);
    for (const [name, w] of want) {
      const seg = segments.get(name);
      expect(seg, `segment ${name}`).toBeDefined();
      const scale = Math.max(...Array.from(w, Math.abs), 1e-12);
      expect(mismatches(flat.subarray(seg!.offset, seg!.offset + seg!.length), Array.from(w), { abs: 1e-5 * scale, rel: 1e-4 }), `${name} at step ${s.step}`).toEqual([]);
    }
  }
  expect(mismatches(losses, g.steps.map((s) => s.loss), { abs: 0, rel: 1e-4 })).toEqual([]);
  expect(mismatches(norms, g.steps.map((s) => s.grad_norm), { abs: 0, rel: 1e-3 })).toEqual([]);
}

/** A golden file that also records the eval after its steps (every method's but the LoRA-family tables'). */
export interface EvaluatedGoldenRun extends GoldenRun {
  final_loss: number;
  tokens: number;
}

/**
 * The part every method's golden test shares: a Trainer on the golden set-up from PEFT's initial tensors, its steps
 * held to the file (expectGoldenSteps: losses, grad norms, the gradients `gradsAt` gives), the eval after them (its
 * token count and PEFT's final loss, 1e-4 relative), and the adapter exported then — which must be PEFT's own saved
 * one in `peftDir` (expectPeftAdapter, 2e-4: ten f32 AdamW steps against float64). `check` runs on the fresh trainer
 * (what it attached). Returns our files; the trainer is disposed.
 */
export async function trainGoldenAndExport(
  e: Engine,
  tf: Transformer,
  g: EvaluatedGoldenRun,
  o: {
    config: TrainConfig;
    initial: ReadonlyMap<string, Float32Array>;
    gradsAt: (step: number) => ReadonlyMap<string, ArrayLike<number>> | undefined;
    peftDir: string;
    baseModel: string;
    check?: (trainer: Trainer) => void;
  },
): Promise<AdapterFiles> {
  const rows = goldenRows(g);
  const trainer = new Trainer({ engine: e, transformer: tf, config: o.config, train: rows, eval: rows, padId: 0, initial: new Map(o.initial) });
  try {
    expect(trainer.method.trainableParams).toBe([...o.initial.values()].reduce((s, v) => s + v.length, 0));
    o.check?.(trainer);
    await expectGoldenSteps(e, trainer, g, o.gradsAt);
    const { loss, tokens } = await trainer.evaluate();
    expect(tokens).toBe(g.tokens);
    expect(Math.abs(loss - g.final_loss)).toBeLessThan(1e-4 * g.final_loss);
    const files = METHODS[o.config.method].exportAdapter({
      tensors: await trainer.trainedTensors(),
      modules: trainer.modules,
      targetModules: trainer.targetModules,
      config: o.config,
      model: tf.model.config,
      baseModel: o.baseModel,
    });
    await expectPeftAdapter(files, o.peftDir, 2e-4);
    return files;
  } finally {
    trainer.dispose();
  }
}
