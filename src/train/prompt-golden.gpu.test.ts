// Prompt tuning against PEFT + transformers (float64, scripts/golden_prompt.py → tests/fixtures/golden/
// train_prompt_<fixture>.json): the same rows, PEFT's own random draw of the 4 virtual tokens, AdamW at a constant lr
// with a 1.0 clip. The first 10 losses (the first real token of each row predicted from the last virtual one, as PEFT
// trains it), the grad norms and the step-1 and step-2 gradients of prompt_embeddings must match; the adapter we
// export after 10 steps must be PEFT's own file (config key for key, the table within f32 training noise); it must
// import back, continue, and packing (every packed row with its own virtual tokens) must give the unpacked step.
// TEXT init must be PEFT's table. And PeftModel.from_pretrained(our adapter) must give our eval loss (1e-4 relative)
// and our greedy generation, where the reference Python exists — under CI=true its absence fails.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readF32 } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import { mismatches } from '../gpu/ref/testing.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { readTokenizer } from '../cli/load.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { PROMPT_EMBEDDINGS } from './methods/prompt-tuning/config.ts';
import { METHODS } from './methods/registry.ts';
import { writeAdapterFolder } from './peft-check.ts';
import { goldenConfig, goldenRows, trainGoldenAndExport, type EvaluatedGoldenRun } from './testing-golden.ts';
import { describePromptAdaptersInPeft, evaluateImportedPromptAdapter, type ExportedPromptAdapter } from './testing-peft-live.ts';
import { Trainer } from './trainer.ts';

interface PromptGolden extends EvaluatedGoldenRun {
  num_virtual_tokens: number;
  initial: Record<string, number[]>;
  grads: Record<string, Record<string, number[]>>;
  text_init: { text: string; num_virtual_tokens: number; ids: number[]; prompt_embeddings: number[] };
}

let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'prompt-golden-'));
const GENERATE = { prompt: [5, 17, 3, 9], max_new_tokens: 6 };
/** Per fixture: our exported adapter, our eval loss and greedy tokens after 10 steps, for the live PEFT run. */
const exported = new Map<string, ExportedPromptAdapter>();

beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const read = (name: string): PromptGolden => JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_prompt_${name}.json`), 'utf8'));
const load = (name: string) => loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
const configOf = (g: PromptGolden, extra = {}) => goldenConfig(g, { method: 'prompt-tuning', targets: [], numVirtualTokens: g.num_virtual_tokens, ...extra });
const initialOf = (g: PromptGolden) => new Map([[PROMPT_EMBEDDINGS, Float32Array.from(g.initial.prompt_embeddings)]]);

describe.each(['gpt2', 'llama', 'qwen3'])('golden prompt-tuning run against PEFT: %s', (name) => {
  it('losses, grad norms and step-1/2 gradients match; the export is PEFT\'s; it imports back, generates and continues', async () => {
    const g = read(name);
    const tf = await load(name);
    const rows = goldenRows(g);
    const config = configOf(g);
    const files = await trainGoldenAndExport(e, tf, g, {
      config,
      initial: initialOf(g),
      gradsAt: (step) => {
        const want = g.grads[String(step)]?.prompt_embeddings;
        return want ? new Map([[PROMPT_EMBEDDINGS, want]]) : undefined;
      },
      peftDir: join(FIXTURES, 'golden', `train_prompt_${name}_adapter`),
      baseModel: `tests/fixtures/models/${name}`,
      check: (trainer) => expect(trainer.modules).toEqual([]),
    });
    expect(tf.model.virtualTokens, 'dispose takes the virtual tokens off').toBeUndefined();

    // Imported back and attached as eval and generate do: our eval loss again, and greedy tokens for the live check.
    const { adapter, evalLoss, generated } = await evaluateImportedPromptAdapter(e, tf, files, g, { peftType: 'PROMPT_TUNING', generate: GENERATE, batchSize: 2 });
    expect(adapter.numVirtualTokens).toBe(g.num_virtual_tokens);
    expect(tf.model.virtualTokens).toBeUndefined();
    const dir = join(tmp, name);
    await writeAdapterFolder(dir, files);
    exported.set(name, { fixture: name, dir, loss: evalLoss, rows: g.rows, generated });

    // Continued from the imported table: the first step's loss is the loss the adapter evaluates to.
    const more = new Trainer({ engine: e, transformer: tf, config: { ...config, maxSteps: 1 }, train: rows, padId: 0, initial: new Map([[PROMPT_EMBEDDINGS, adapter.embeddings]]) });
    try {
      expect(Math.abs((await more.trainStep()).loss - evalLoss)).toBeLessThan(1e-5 * evalLoss);
    } finally {
      more.dispose();
    }
  });
});

describe('prompt tuning: packing and TEXT init', () => {
  it('packed, each row keeps its own virtual tokens and positions: the step is the unpacked one', async () => {
    const g = read('llama');
    const tf = await load('llama');
    const rows = goldenRows(g);
    const trainer = new Trainer({ engine: e, transformer: tf, config: configOf(g, { packing: true, maxLength: 64 }), train: rows, padId: 0, initial: initialOf(g) });
    try {
      expect(trainer.batcher.rows.length, 'all rows in one packed row').toBe(1);
      const m = await trainer.trainStep();
      expect(Math.abs(m.loss - g.steps[0].loss)).toBeLessThan(1e-4 * g.steps[0].loss);
      const want = g.grads['1'].prompt_embeddings;
      const got = await readF32(e.device, trainer.method.grads, want.length);
      expect(mismatches(got, want, { abs: 1e-5 * Math.max(...want.map(Math.abs)), rel: 1e-4 })).toEqual([]);
    } finally {
      trainer.dispose();
    }
  });

  it.each(['gpt2', 'llama'])('%s: TEXT init is the word embeddings of the text\'s ids, cycled, as PEFT\'s', async (name) => {
    const g = read(name);
    const tf = await load(name);
    const tok = (await readTokenizer(nodeFolder(join(FIXTURES, 'models', name)), name))!;
    expect(tok.encode(g.text_init.text)).toEqual(g.text_init.ids);
    const config = configOf(g, { numVirtualTokens: g.text_init.num_virtual_tokens, promptInit: 'text', promptInitText: g.text_init.text });
    const rows = goldenRows(g);
    const trainer = new Trainer({ engine: e, transformer: tf, config, train: rows, eval: rows, padId: 0, encode: (t) => tok.encode(t) });
    try {
      await trainer.evaluate(); // the first forward gathers the table
      const got = (await trainer.trainedTensors()).get(PROMPT_EMBEDDINGS)!;
      expect(mismatches(got, Float32Array.from(g.text_init.prompt_embeddings), { abs: 0, rel: 0 }), "exactly PEFT's f32 values").toEqual([]);
      const cfg = JSON.parse(new TextDecoder().decode(METHODS['prompt-tuning'].exportAdapter({ tensors: new Map([[PROMPT_EMBEDDINGS, got]]), modules: [], targetModules: [], config, model: tf.model.config, baseModel: 'b' })['adapter_config.json']));
      expect(cfg).toMatchObject({ prompt_tuning_init: 'TEXT', prompt_tuning_init_text: g.text_init.text, tokenizer_name_or_path: 'b', num_virtual_tokens: 7 });
    } finally {
      trainer.dispose();
    }
  });
});

describePromptAdaptersInPeft('prompt-tuning', ['gpt2', 'llama', 'qwen3'], exported, GENERATE);
