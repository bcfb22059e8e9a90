// `lora-studio train --method full` end to end on the tiny fixtures (GPT-2: tied head and learned positions; Qwen3:
// q/k norms): --out becomes a plain model folder (model.safetensors in the base's dtype, config.json, the tokenizer
// files) that `eval --model OUT` evaluates at the trainer's final eval loss and `generate --model OUT` runs; a run
// killed after checkpoint-2 resumes and writes the same model; what full fine-tuning cannot do is refused by name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { readModelConfig } from '../model/load.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { countingRows, curveOf, OTHER_DRIVER, rel, runEval, runTrain, writeJsonl, simulateCrash } from './testing-train.ts';

let e: Engine;
let dir: string;
beforeAll(async () => {
  e = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'train-full-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = (name: string) => join(FIXTURES, 'models', name);

const train = (args: string[]) => runTrain(e, args);

const evaluate = (args: string[]) => runEval(e, args);

// The engine's full fine-tuning is checked on both drivers by full-golden.gpu.test.ts; the CLI around it runs once
// per suite, on lavapipe when both run.
const curve = curveOf;

describe.skipIf(OTHER_DRIVER).each([['gpt2'], ['qwen3']] as const)('train %s with --method full', (name) => {
  let out: string;
  let evalData: string;
  let args: string[];
  let run: Awaited<ReturnType<typeof train>>;
  beforeAll(async () => {
    const vocab = (await readModelConfig(nodeFolder(model(name)))).vocabSize;
    const data = writeJsonl(dir, `${name}-train.jsonl`, countingRows(8, 10, vocab, 3));
    evalData = writeJsonl(dir, `${name}-eval.jsonl`, countingRows(4, 9, vocab, 11));
    out = join(dir, `${name}-out`);
    args = [
      '--model', model(name), '--data', data, '--out', out, '--method', 'full', '--steps', '4', '--batch', '4', '--lr', '1e-3',
      '--weight-decay', '0.01', '--eval-data', evalData, '--eval-every', '2', '--checkpoint-every', '2',
    ];
    run = await train(args);
  });

  it('writes a model folder that `eval --model OUT` evaluates at the final eval loss', async () => {
    expect(run.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    const files = readdirSync(out);
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json']) expect(files, f).toContain(f);
    expect(files).not.toContain('adapter_model.safetensors');
    expect(readdirSync(join(out, 'checkpoint-2')).sort()).toEqual(['optimizer.safetensors', 'trainer_state.json']);
    const ours = await evaluate(['--model', out, '--data', evalData]);
    expect(rel(ours.loss, run.summary.final_eval_loss), `eval ${ours.loss}, trainer ${run.summary.final_eval_loss}`).toBeLessThan(1e-5);
    const base = await evaluate(['--model', model(name), '--data', evalData]);
    expect(ours.loss, 'four steps of full fine-tuning lower the eval loss').toBeLessThan(base.loss);
    const config = await readModelConfig(nodeFolder(model(name)));
    const expected = config.vocabSize * config.hiddenSize; // the embedding alone
    expect(run.summary.trainable_params).toBeGreaterThan(expected);
  });

  it('a run killed after checkpoint-2 resumes with --resume and writes the same model', async () => {
    const straight = readFileSync(join(out, 'model.safetensors'));
    simulateCrash(out, 2);
    const resumed = await train([...args, '--resume']);
    expect(resumed.steps.map((s) => s.step)).toEqual([3, 4]);
    expect(curve(resumed.steps)).toEqual(curve(run.steps.slice(2)));
    expect(readFileSync(join(out, 'model.safetensors'))).toEqual(straight);
  });
});

describe('train --method full refusals', () => {
  const data = () => writeJsonl(dir, 'refuse.jsonl', countingRows(4, 8, 64, 5));
  it('refuses an NF4 base and a target list, naming the flag', async () => {
    const base = ['--model', model('llama'), '--data', data(), '--method', 'full', '--steps', '1'];
    await expect(train([...base, '--out', join(dir, 'r1'), '--quant', 'nf4'])).rejects.toThrow(/quant.*full fine-tuning/);
    await expect(train([...base, '--out', join(dir, 'r2'), '--targets', 'q_proj'])).rejects.toThrow(/targets.*every layer/);
  });
});
