// `lora-studio compare-methods` on a tiny fixture: one row per method with the same data, seed and steps, each a real
// `train` run (its folder evaluates as that run did), the table's numbers from those runs (full fine-tuning trains
// 100 % of the parameters, LoRA r64 more than r8, IA³ the fewest), a greedy generation per row, a CSV and a JSON; a
// row the GPU cannot hold is skipped with the reason and the others still run.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { driverName, testEngine } from '../gpu/testing-gpu.ts';
import { readModelConfig } from '../model/load.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { compareMethodsCommand, type MethodResult } from './compare-methods.ts';
import { evalCommand } from './eval.ts';
import type { CliIo } from './load.ts';
import { countingRows, memoryCache, rel, writeJsonl } from './testing-train.ts';

let e: Engine;
let dir: string;
beforeAll(async () => {
  e = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'compare-methods-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = join(FIXTURES, 'models', 'llama');
const OTHER_DRIVER = driverName === 'swiftshader' && existsSync(join(process.cwd(), '.webgpu', 'lavapipe', 'env.json'));

async function compare(args: string[], engine: Engine = e) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { stdout: (l) => void out.push(l), stderr: (l) => void err.push(l), progress: () => {}, tty: false };
  const results = await compareMethodsCommand(args, { io, engine, tuningCache: memoryCache(), matmulOverride: 'naive' });
  return { results, lines: out.map((l) => JSON.parse(l) as MethodResult), err };
}

describe.skipIf(OTHER_DRIVER)('compare-methods', () => {
  it('runs every method on the same data and reports what each run did', async () => {
    const vocab = (await readModelConfig(nodeFolder(model))).vocabSize;
    const data = writeJsonl(dir, 'train.jsonl', countingRows(8, 10, vocab, 3));
    const evalData = writeJsonl(dir, 'eval.jsonl', countingRows(4, 9, vocab, 11));
    const out = join(dir, 'cmp');
    const { results, lines, err } = await compare([
      '--model', model, '--data', data, '--eval-data', evalData, '--steps', '3', '--batch', '4', '--lr', '1e-2', '--out', out,
      '--methods', 'full,lora-r8,lora-r64,qlora-r8,dora-r8,ia3', '--prompt', 'hello', '--max-new-tokens', '4',
    ]);
    expect(lines).toEqual(results);
    expect(results.map((r) => [r.method, r.status])).toEqual([
      ['full', 'done'], ['lora-r8', 'done'], ['lora-r64', 'done'], ['qlora-r8', 'done'], ['dora-r8', 'done'], ['ia3', 'done'],
    ]);
    const by = new Map(results.map((r) => [r.method, r]));
    expect(by.get('full')!.trainable_pct).toBeCloseTo(100, 3);
    expect(by.get('lora-r64')!.trainable_params!).toBe(8 * by.get('lora-r8')!.trainable_params!);
    expect(by.get('ia3')!.trainable_params!).toBeLessThan(by.get('lora-r8')!.trainable_params!);
    expect(by.get('full')!.lr).toBeCloseTo(1e-3, 12);
    expect(by.get('ia3')!.lr).toBeCloseTo(1e-1, 12);
    for (const r of results) {
      expect(r.peak_bytes!, r.method).toBeGreaterThan(0);
      expect(r.file_bytes!, r.method).toBeGreaterThan(0);
      expect(r.ms_per_step!, r.method).toBeGreaterThan(0);
      expect(typeof r.generation, r.method).toBe('string');
    }
    // The full model's file holds every weight; an adapter far less.
    expect(by.get('full')!.file_bytes!).toBeGreaterThan(by.get('lora-r8')!.file_bytes!);
    // Each row is the real run: its folder evaluates at the eval loss the row reports.
    const evaluate = async (args: string[]) => {
      const lines: string[] = [];
      await evalCommand(args, { io: { stdout: (l) => void lines.push(l), stderr: () => {}, progress: () => {}, tty: false }, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive' });
      return (JSON.parse(lines.at(-1)!) as { loss: number }).loss;
    };
    expect(rel(await evaluate(['--model', join(out, 'full'), '--data', evalData]), by.get('full')!.final_eval_loss!)).toBeLessThan(1e-5);
    expect(rel(await evaluate(['--model', model, '--adapter', join(out, 'dora-r8'), '--data', evalData]), by.get('dora-r8')!.final_eval_loss!)).toBeLessThan(1e-5);
    // One line per row (a generation's own newlines are inside its quoted field).
    const csv = readFileSync(join(out, 'comparison.csv'), 'utf8');
    expect(csv).toMatch(/^method,status,trainable params/);
    expect(csv.match(/^(Full FT|LoRA r8|LoRA r64|QLoRA r8|DoRA r8|IA³),done,/gm)).toHaveLength(6);
    expect(JSON.parse(readFileSync(join(out, 'comparison.json'), 'utf8'))).toEqual(results);
    expect(err.join('\n')).toMatch(/Full FT\s+done/);
  });

  it('skips a row the GPU cannot hold, saying why, and runs the rest', async () => {
    const vocab = (await readModelConfig(nodeFolder(model))).vocabSize;
    const data = writeJsonl(dir, 'train2.jsonl', countingRows(4, 8, vocab, 5));
    const small = { ...e, gpu: { ...e.gpu, limits: { ...e.gpu.limits, maxStorageBufferBindingSize: 64 * 1024 } } } as Engine;
    const { results } = await compare(['--model', model, '--data', data, '--steps', '1', '--batch', '4', '--out', join(dir, 'cmp2'), '--methods', 'full,ia3'], small);
    expect(results.map((r) => [r.method, r.status])).toEqual([['full', 'skipped'], ['ia3', 'done']]);
    expect(results[0].reason).toMatch(/largest binding/);
  });

  it('compares the bottleneck adapters: Houlsby (attention and MLP) trains twice the parameters of Pfeiffer (MLP only)', async () => {
    const vocab = (await readModelConfig(nodeFolder(model))).vocabSize;
    const data = writeJsonl(dir, 'train4.jsonl', countingRows(4, 8, vocab, 7));
    const { results } = await compare(['--model', model, '--data', data, '--steps', '1', '--batch', '4', '--out', join(dir, 'cmp4'), '--methods', 'houlsby,pfeiffer']);
    expect(results.map((r) => [r.method, r.status])).toEqual([['houlsby', 'done'], ['pfeiffer', 'done']]);
    expect(results[0].trainable_params).toBe(2 * results[1].trainable_params!);
  });

  it('refuses unknown rows and a second comparison into the same folder', async () => {
    await expect(compare(['--model', model, '--data', 'x.jsonl', '--steps', '1', '--out', join(dir, 'cmp3'), '--methods', 'lora-r8,prefix'])).rejects.toThrow(/unknown prefix/);
    await expect(compare(['--model', model, '--data', 'x.jsonl', '--steps', '1', '--out', join(dir, 'cmp')])).rejects.toThrow(/already holds a comparison/);
  });
});
