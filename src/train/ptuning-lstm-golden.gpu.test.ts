// P-tuning with the LSTM encoder against PEFT + transformers (float64, scripts/golden_ptuning_lstm.py → tests/fixtures/
// golden/train_ptuning_lstm_<fixture>.json): the same rows, PEFT's own draw of the 4-token table, its bidirectional LSTM
// (H 8; gpt2 two stacked layers, llama one) and its head, AdamW at a constant lr with a 1.0 clip. The first 10 losses,
// the grad norms and the step-1 and step-2 gradients of every encoder tensor must match; the adapter we export after 10
// steps (the encoder's output as prompt_embeddings) must be PEFT's own file, and it imports back as plain virtual
// embeddings that evaluate to the same loss; PeftModel.from_pretrained(our adapter) gives our eval loss (1e-4 relative)
// and our greedy tokens where the reference Python exists — under CI=true its absence fails.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { METHODS } from './methods/registry.ts';
import { writeAdapterFolder } from './peft-check.ts';
import { expectGoldenSteps, goldenConfig, goldenRows, trainGoldenAndExport, type EvaluatedGoldenRun } from './testing-golden.ts';
import { describePromptAdaptersInPeft, evaluateImportedPromptAdapter, type ExportedPromptAdapter } from './testing-peft-live.ts';
import { Trainer } from './trainer.ts';

interface PTuningLstmGolden extends EvaluatedGoldenRun {
  num_virtual_tokens: number;
  encoder_hidden_size: number;
  encoder_num_layers: number;
  /** By PEFT's names under prompt_encoder.default, as our segments (prompt_encoder.<name>). */
  initial: Record<string, number[]>;
  grads: Record<string, Record<string, number[]>>;
}

const CASES = ['gpt2', 'llama'];
let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'ptuning-lstm-golden-'));
const GENERATE = { prompt: [5, 17, 3, 9], max_new_tokens: 6 };
const exported = new Map<string, ExportedPromptAdapter>();
const segments = (byName: Record<string, number[]>) => new Map(Object.entries(byName).map(([name, v]) => [`prompt_encoder.${name}`, v]));

beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.each(CASES)('golden P-tuning run with the LSTM encoder against PEFT: %s', (name) => {
  it('losses, grad norms and step-1/2 gradients of every LSTM and head tensor match; the export is PEFT\'s; it imports back', async () => {
    const g: PTuningLstmGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_ptuning_lstm_${name}.json`), 'utf8'));
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const config = goldenConfig(g, {
      method: 'p-tuning',
      targets: [],
      numVirtualTokens: g.num_virtual_tokens,
      encoderType: 'lstm',
      encoderHiddenSize: g.encoder_hidden_size,
      encoderNumLayers: g.encoder_num_layers,
    });
    const ours = METHODS['p-tuning'].ownTensors!(tf.model.config, config).map((t) => t.name);
    expect(ours, 'our tensors are PEFT\'s, in its order').toEqual([...segments(g.initial).keys()]);
    const initial = new Map([...segments(g.initial)].map(([k, v]) => [k, Float32Array.from(v)]));
    const files = await trainGoldenAndExport(e, tf, g, {
      config,
      initial,
      gradsAt: (step) => (g.grads[String(step)] ? segments(g.grads[String(step)]) : undefined),
      peftDir: join(FIXTURES, 'golden', `train_ptuning_lstm_${name}_adapter`),
      baseModel: `tests/fixtures/models/${name}`,
    });
    expect(tf.model.virtualTokens).toBeUndefined();

    // Imported back: plain virtual embeddings (the encoder's output) that evaluate to the trained loss.
    const { evalLoss, generated } = await evaluateImportedPromptAdapter(e, tf, files, g, { peftType: 'P_TUNING', generate: GENERATE, batchSize: 3 });
    const dir = join(tmp, name);
    await writeAdapterFolder(dir, files);
    exported.set(name, { fixture: name, dir, loss: evalLoss, rows: g.rows, generated });
  });
});

describe.each(CASES)('the LSTM encoder\'s gradients accumulate over micro-batches: %s', (name) => {
  it('one row at a time, 3 micro-batches, gives PEFT\'s whole-batch step-1 loss, grad norm and gradients', async () => {
    const g: PTuningLstmGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_ptuning_lstm_${name}.json`), 'utf8'));
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const config = {
      ...goldenConfig(g, { method: 'p-tuning', targets: [], numVirtualTokens: g.num_virtual_tokens, encoderType: 'lstm', encoderHiddenSize: g.encoder_hidden_size, encoderNumLayers: g.encoder_num_layers }),
      batchSize: 1,
      gradAccum: rows.length,
    } as const;
    const initial = new Map([...segments(g.initial)].map(([k, v]) => [k, Float32Array.from(v)]));
    const trainer = new Trainer({ engine: e, transformer: tf, config, train: rows, padId: 0, initial });
    try {
      await expectGoldenSteps(e, trainer, { ...g, steps: g.steps.slice(0, 1) }, (step) => (step === 1 ? segments(g.grads['1']) : undefined));
    } finally {
      trainer.dispose();
    }
  });
});

describePromptAdaptersInPeft('P-tuning LSTM', CASES, exported, GENERATE);
