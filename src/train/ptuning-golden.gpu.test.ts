// P-tuning against PEFT + transformers (float64, scripts/golden_prompt.py → tests/fixtures/golden/
// train_ptuning_<fixture>.json): the same rows, PEFT's own draw of the 4-token table and its MLP encoder (hidden 16),
// AdamW at a constant lr with a 1.0 clip. The first 10 losses, the grad norms and the step-1 and step-2 gradients of
// every encoder tensor must match; the adapter we export after 10 steps (the encoder's output as prompt_embeddings)
// must be PEFT's own file; it imports back as plain virtual embeddings that evaluate to the same loss (and so continue
// as prompt tuning); and PeftModel.from_pretrained(our adapter) must give our eval loss (1e-4 relative) and our
// greedy tokens where the reference Python exists — under CI=true its absence fails.
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
import { P_TUNING_TENSORS, pTuningSegmentName, type PTuningTensor } from './methods/p-tuning/config.ts';
import { PROMPT_EMBEDDINGS } from './methods/prompt-tuning/config.ts';
import { writeAdapterFolder } from './peft-check.ts';
import { goldenConfig, goldenRows, trainGoldenAndExport, type EvaluatedGoldenRun } from './testing-golden.ts';
import { describePromptAdaptersInPeft, evaluateImportedPromptAdapter, type ExportedPromptAdapter } from './testing-peft-live.ts';
import { Trainer } from './trainer.ts';

interface PTuningGolden extends EvaluatedGoldenRun {
  num_virtual_tokens: number;
  encoder_hidden_size: number;
  initial: Record<string, number[]>;
  grads: Record<string, Record<string, number[]>>;
}

/** The golden file's names (golden_prompt.py) for our tensors. */
const GOLDEN_NAME: Record<PTuningTensor, string> = {
  'embedding.weight': 'prompt_embeddings',
  'mlp_head.0.weight': 'mlp.0.weight',
  'mlp_head.0.bias': 'mlp.0.bias',
  'mlp_head.2.weight': 'mlp.2.weight',
  'mlp_head.2.bias': 'mlp.2.bias',
  'mlp_head.4.weight': 'mlp.4.weight',
  'mlp_head.4.bias': 'mlp.4.bias',
};

let e: Engine;
const tmp = mkdtempSync(join(tmpdir(), 'ptuning-golden-'));
const GENERATE = { prompt: [5, 17, 3, 9], max_new_tokens: 6 };
const exported = new Map<string, ExportedPromptAdapter>();

beforeAll(async () => {
  e = await testEngine();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.each(['gpt2', 'llama', 'qwen3'])('golden P-tuning run against PEFT: %s', (name) => {
  it('losses, grad norms and step-1/2 gradients of the encoder match; the export is PEFT\'s; it imports back as virtual embeddings', async () => {
    const g: PTuningGolden = JSON.parse(readFileSync(join(FIXTURES, 'golden', `train_ptuning_${name}.json`), 'utf8'));
    const tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', name)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const rows = goldenRows(g);
    const config = goldenConfig(g, { method: 'p-tuning', targets: [], numVirtualTokens: g.num_virtual_tokens, encoderHiddenSize: g.encoder_hidden_size });
    const initial = new Map(P_TUNING_TENSORS.map((t) => [pTuningSegmentName(t), Float32Array.from(g.initial[GOLDEN_NAME[t]])]));
    const files = await trainGoldenAndExport(e, tf, g, {
      config,
      initial,
      gradsAt: (step) => {
        const want = g.grads[String(step)];
        return want ? new Map(P_TUNING_TENSORS.map((t) => [pTuningSegmentName(t), want[GOLDEN_NAME[t]]])) : undefined;
      },
      peftDir: join(FIXTURES, 'golden', `train_ptuning_${name}_adapter`),
      baseModel: `tests/fixtures/models/${name}`,
    });
    expect(tf.model.virtualTokens).toBeUndefined();

    // Imported back: plain virtual embeddings (the encoder's output) that evaluate to the trained loss.
    const { adapter, evalLoss, generated } = await evaluateImportedPromptAdapter(e, tf, files, g, { peftType: 'P_TUNING', generate: GENERATE, batchSize: 3 });
    // ... and continue as prompt tuning from that table: step 1's loss is the loss it evaluates to.
    const more = new Trainer({
      engine: e,
      transformer: tf,
      config: { ...config, method: 'prompt-tuning', maxSteps: 1 },
      train: rows,
      padId: 0,
      initial: new Map([[PROMPT_EMBEDDINGS, adapter.embeddings]]),
    });
    try {
      expect(Math.abs((await more.trainStep()).loss - evalLoss)).toBeLessThan(1e-5 * evalLoss);
    } finally {
      more.dispose();
    }
    const dir = join(tmp, name);
    await writeAdapterFolder(dir, files);
    exported.set(name, { fixture: name, dir, loss: evalLoss, rows: g.rows, generated });
  });
});

describePromptAdaptersInPeft('P-tuning', ['gpt2', 'llama', 'qwen3'], exported, GENERATE);
