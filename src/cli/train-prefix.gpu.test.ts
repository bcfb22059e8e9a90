// `lora-studio train --method prefix-tuning` end to end on the tiny fixtures: GPT-2 with packed rows (learned
// positions; every packed row starts at position P behind the same prefix) and Llama through the projection
// (--prefix-projection, GQA). train → `eval --adapter OUT` gives the trainer's final eval loss over the same tokens as
// the base model (the prefix adds none); OUT is PEFT's PREFIX_TUNING adapter (the table after the projection);
// `generate --adapter OUT` runs behind the prefix; a run killed after checkpoint-2 resumes the same curve; `merge`
// refuses; and, where the reference venv exists, PeftModel.from_pretrained(base, OUT) gives our eval loss.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { readModelConfig } from '../model/load.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { referencePython, runPeftCheck } from '../train/peft-check.ts';
import { importPeftAdapter } from '../train/peft.ts';
import { generateCommand } from './generate.ts';
import type { CliIo } from './load.ts';
import { mergeCommand } from './merge.ts';
import { countingRows, curveOf, memoryCache, OTHER_DRIVER, rel, type Row, runEval, runTrain, simulateCrash, writeJsonl } from './testing-train.ts';

let e: Engine;
let dir: string;
beforeAll(async () => {
  e = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'train-prefix-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = (name: string) => join(FIXTURES, 'models', name);
const quiet: CliIo = { stdout: () => {}, stderr: () => {}, progress: () => {}, tty: false };

// The same CLI on every driver; the kernels and goldens run on both: once per suite, on lavapipe when both run.
describe.skipIf(OTHER_DRIVER).each([
  ['gpt2', ['--packing', '--max-len', '24']],
  ['llama', ['--prefix-projection', '--encoder-hidden-size', '16']],
] as const)('train %s with prefix-tuning %j', (name, extra) => {
  let out: string;
  let evalData: string;
  let evalRows: Row[];
  let args: string[];
  let run: Awaited<ReturnType<typeof runTrain>>;
  beforeAll(async () => {
    const vocab = (await readModelConfig(nodeFolder(model(name)))).vocabSize;
    const data = writeJsonl(dir, `${name}-train.jsonl`, countingRows(8, 10, vocab, 3));
    evalRows = countingRows(4, 9, vocab, 11);
    evalData = writeJsonl(dir, `${name}-eval.jsonl`, evalRows);
    out = join(dir, `${name}-out`);
    args = [
      '--model', model(name), '--data', data, '--out', out, '--method', 'prefix-tuning', '--num-virtual-tokens', '5', '--steps', '4',
      '--batch', '4', '--lr', '1e-2', '--eval-data', evalData, '--eval-every', '2', '--checkpoint-every', '2', ...extra,
    ];
    run = await runTrain(e, args);
  });

  it('trains, and `eval --adapter OUT` reproduces the final eval loss; OUT is a PREFIX_TUNING adapter', async () => {
    expect(run.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(run.steps.every((s) => Number.isFinite(s.loss) && s.grad_norm > 0)).toBe(true);
    const ours = await runEval(e, ['--model', model(name), '--data', evalData, '--adapter', out]);
    expect(rel(ours.loss, run.summary.final_eval_loss), `eval ${ours.loss}, trainer ${run.summary.final_eval_loss}`).toBeLessThan(1e-5);
    const base = await runEval(e, ['--model', model(name), '--data', evalData]);
    expect(rel(base.loss, ours.loss)).toBeGreaterThan(1e-3);
    expect(ours.tokens).toBe(base.tokens); // the prefix adds no token to the rows
    const config = await readModelConfig(nodeFolder(model(name)));
    const adapter = await importPeftAdapter(nodeFolder(out), config, out);
    if (adapter.kind !== 'prompt') throw new Error(`expected a prompt-learning adapter, got ${adapter.kind}`);
    const K = config.numKvHeads * config.headDim;
    const width = config.numLayers * 2 * K;
    expect(adapter.embeddings.length).toBe(5 * width);
    const projection = (extra as readonly string[]).includes('--prefix-projection');
    expect(adapter.config).toMatchObject({ peft_type: 'PREFIX_TUNING', num_virtual_tokens: 5, token_dim: K, num_attention_heads: config.numKvHeads, prefix_projection: projection });
    expect(run.summary.trainable_params).toBe(projection ? 5 * K + (16 * K + 16) + (width * 16 + width) : 5 * width);
  });

  it('`generate --adapter OUT` runs behind the prefix (what it writes differs from the base model)', async () => {
    const gen = async (adapter: string[]) => {
      let text = '';
      await generateCommand(['--model', model(name), '--prompt', 'one two', '--max-new-tokens', '6', '--temperature', '0', ...adapter], {
        io: { write: (t) => void (text += t), stderr: () => {} }, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive',
      });
      return text;
    };
    expect(await gen(['--adapter', out])).not.toEqual(await gen([]));
  });

  it('a run killed after checkpoint-2 resumes with --resume and continues the same curve', async () => {
    const straight = readFileSync(join(out, 'adapter_model.safetensors'));
    simulateCrash(out, 2);
    const resumed = await runTrain(e, [...args, '--resume']);
    expect(resumed.steps.map((s) => s.step)).toEqual([3, 4]);
    expect(curveOf(resumed.steps)).toEqual(curveOf(run.steps.slice(2)));
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(straight);
  });

  it('`merge` refuses: the prefix is attention input, not a weight', async () => {
    await expect(mergeCommand(['--model', model(name), '--adapter', out, '--out', join(dir, `${name}-merged`)], quiet)).rejects.toThrow(/nothing to merge/);
  });

  const python = referencePython();
  it.skipIf(!python)('PeftModel.from_pretrained(base, OUT) gives the loss our eval reports', async () => {
    const ours = await runEval(e, ['--model', model(name), '--data', evalData, '--adapter', out]);
    const [result] = await runPeftCheck([{ base: model(name), adapter: out, rows: evalRows }]);
    expect(result.load).toMatchObject({ missing: [], unexpected: [], mismatched: [], matched: 1 });
    expect(result.adapter.tokens).toBe(ours.tokens);
    expect(rel(result.adapter.loss, ours.loss), `PEFT ${result.adapter.loss}, ours ${ours.loss}`).toBeLessThan(1e-4);
  }, 180_000);
});
