// `lora-studio train --method prompt-tuning|p-tuning` end to end on the tiny fixtures: prompt tuning on GPT-2 (learned
// positions, packed rows: every packed row with its own virtual tokens) and Qwen3 (RoPE), P-tuning on Llama (MLP) and
// GPT-2 (LSTM encoder). train → `eval --adapter OUT` gives the trainer's
// final eval loss; OUT is PEFT's PROMPT_TUNING adapter; `generate --adapter OUT` runs with the virtual tokens ahead of
// the prompt; a run killed after checkpoint-2 resumes the same curve; `merge` refuses (nothing to merge); TEXT init
// from the model's tokenizer; and, where the reference venv exists, PeftModel.from_pretrained(base, OUT) gives our
// eval loss.
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
import { countingRows, curveOf, memoryCache, OTHER_DRIVER, rel, type Row, runEval, runTrain, writeJsonl, simulateCrash } from './testing-train.ts';

let e: Engine;
let dir: string;
beforeAll(async () => {
  e = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'train-prompt-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = (name: string) => join(FIXTURES, 'models', name);
const quiet: CliIo = { stdout: () => {}, stderr: () => {}, progress: () => {}, tty: false };

const train = (args: string[]) => runTrain(e, args);

const evaluate = (args: string[]) => runEval(e, args);

// The same CLI on every driver; the kernels and goldens run on both: once per suite, on lavapipe when both run.
const curve = curveOf;

describe.skipIf(OTHER_DRIVER).each([
  ['gpt2', 'prompt-tuning', ['--packing', '--max-len', '24']],
  ['qwen3', 'prompt-tuning', []],
  ['llama', 'p-tuning', ['--encoder-hidden-size', '16']],
  ['gpt2', 'p-tuning', ['--encoder-type', 'lstm', '--encoder-hidden-size', '6']],
] as const)('train %s with %s %j', (name, method, extra) => {
  let out: string;
  let evalData: string;
  let evalRows: Row[];
  let args: string[];
  let run: Awaited<ReturnType<typeof train>>;
  beforeAll(async () => {
    const vocab = (await readModelConfig(nodeFolder(model(name)))).vocabSize;
    const data = writeJsonl(dir, `${name}-train.jsonl`, countingRows(8, 10, vocab, 3));
    evalRows = countingRows(4, 9, vocab, 11);
    evalData = writeJsonl(dir, `${name}-eval.jsonl`, evalRows);
    out = join(dir, `${name}-${method}-out`);
    args = [
      '--model', model(name), '--data', data, '--out', out, '--method', method, '--num-virtual-tokens', '5', '--steps', '4',
      '--batch', '4', '--lr', '3e-2', '--eval-data', evalData, '--eval-every', '2', '--checkpoint-every', '2', ...extra,
    ];
    run = await train(args);
  });

  it('trains, and `eval --adapter OUT` reproduces the final eval loss; OUT is a PROMPT_TUNING / P_TUNING adapter', async () => {
    expect(run.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(run.steps.every((s) => Number.isFinite(s.loss) && s.grad_norm > 0)).toBe(true);
    const ours = await evaluate(['--model', model(name), '--data', evalData, '--adapter', out]);
    expect(rel(ours.loss, run.summary.final_eval_loss), `eval ${ours.loss}, trainer ${run.summary.final_eval_loss}`).toBeLessThan(1e-5);
    const base = await evaluate(['--model', model(name), '--data', evalData]);
    expect(rel(base.loss, ours.loss)).toBeGreaterThan(1e-3);
    // With the virtual tokens each row's first token is trained too (predicted from the last virtual one).
    expect(ours.tokens).toBe(base.tokens + evalRows.filter((r) => r.labels[0] !== -100).length);
    const config = await readModelConfig(nodeFolder(model(name)));
    const adapter = await importPeftAdapter(nodeFolder(out), config, out);
    if (adapter.kind !== 'prompt') throw new Error(`expected a prompt adapter, got ${adapter.kind}`);
    expect(adapter.embeddings.length).toBe(5 * config.hiddenSize);
    if (method === 'prompt-tuning') {
      expect(adapter.config).toMatchObject({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 5, token_dim: config.hiddenSize, prompt_tuning_init: 'RANDOM' });
      expect(run.summary.trainable_params).toBe(5 * config.hiddenSize);
    } else if (!(extra as readonly string[]).includes('lstm')) {
      // The table and the encoder train; the file holds the encoder's output only.
      const C = config.hiddenSize;
      expect(adapter.config).toMatchObject({ peft_type: 'P_TUNING', num_virtual_tokens: 5, token_dim: C, encoder_hidden_size: 16, encoder_reparameterization_type: 'MLP' });
      expect(run.summary.trainable_params).toBe(5 * C + (16 * C + 16) + (16 * 16 + 16) + (C * 16 + C));
    } else {
      // The LSTM encoder: PEFT's default two bidirectional layers of H = 6, and its 2H-wide head.
      const C = config.hiddenSize;
      const direction = (K: number) => 4 * 6 * K + 4 * 6 * 6 + 2 * 4 * 6;
      expect(adapter.config).toMatchObject({ peft_type: 'P_TUNING', num_virtual_tokens: 5, token_dim: C, encoder_hidden_size: 6, encoder_num_layers: 2, encoder_reparameterization_type: 'LSTM' });
      expect(run.summary.trainable_params).toBe(5 * C + 2 * direction(C) + 2 * direction(12) + (12 * 12 + 12) + (C * 12 + C));
    }
  });

  it('`generate --adapter OUT` puts the virtual tokens ahead of the prompt (what it writes differs from the base model)', async () => {
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
    const resumed = await train([...args, '--resume']);
    expect(resumed.steps.map((s) => s.step)).toEqual([3, 4]);
    expect(curve(resumed.steps)).toEqual(curve(run.steps.slice(2)));
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(straight);
  });

  it('`merge` refuses: the virtual tokens are inputs, not weights', async () => {
    await expect(mergeCommand(['--model', model(name), '--adapter', out, '--out', join(dir, `${name}-${method}-merged`)], quiet)).rejects.toThrow(/nothing to merge/);
  });

  const python = referencePython();
  it.skipIf(!python)('PeftModel.from_pretrained(base, OUT) gives the loss our eval reports', async () => {
    const ours = await evaluate(['--model', model(name), '--data', evalData, '--adapter', out]);
    const [result] = await runPeftCheck([{ base: model(name), adapter: out, rows: evalRows }]);
    expect(result.load).toMatchObject({ missing: [], unexpected: [], mismatched: [], matched: 1 });
    expect(result.adapter.tokens).toBe(ours.tokens);
    expect(rel(result.adapter.loss, ours.loss), `PEFT ${result.adapter.loss}, ours ${ours.loss}`).toBeLessThan(1e-4);
  }, 180_000);
});

describe.skipIf(OTHER_DRIVER)('train --prompt-init text', () => {
  it('starts from the word embeddings of the text and says so in adapter_config.json', async () => {
    const vocab = (await readModelConfig(nodeFolder(model('llama')))).vocabSize;
    const data = writeJsonl(dir, 'text-train.jsonl', countingRows(4, 10, vocab, 5));
    const out = join(dir, 'text-out');
    await train(['--model', model('llama'), '--data', data, '--out', out, '--method', 'prompt-tuning', '--num-virtual-tokens', '3', '--steps', '1', '--prompt-init', 'text', '--prompt-init-text', 'Count up']);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'Count up', tokenizer_name_or_path: model('llama'), num_virtual_tokens: 3 });
    await expect(train(['--model', model('llama'), '--data', data, '--out', join(dir, 'bad'), '--method', 'prompt-tuning', '--prompt-init', 'text'])).rejects.toThrow(/TEXT init needs a text/);
  });
});
