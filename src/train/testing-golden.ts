// What the golden training tests (golden.gpu.test.ts, ia3-golden.gpu.test.ts, dora-golden.gpu.test.ts) share: the
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
