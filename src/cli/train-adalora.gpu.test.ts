// `lora-studio train --method adalora` end to end on the tiny Llama fixture, with a schedule that reallocates within
// the run (init_r 4 → target_r 2 over 6 steps: tinit 1, tfinal 2, total_step = the run's steps): train → `eval
// --adapter OUT` gives the trainer's final eval loss; OUT is an AdaLoRA adapter with a rank pattern of the budget;
// a run killed after checkpoint-2 resumes (importance EMAs and rank mask from the checkpoint) and continues the same
// curve to the same adapter; `generate --adapter` runs it; `merge` gives the adapter's loss; where the reference venv
// exists, PeftModel.from_pretrained(base, OUT) gives our eval loss.
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
  dir = mkdtempSync(join(tmpdir(), 'train-adalora-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LLAMA = join(FIXTURES, 'models', 'llama');
const quiet: CliIo = { stdout: () => {}, stderr: () => {}, progress: () => {}, tty: false };

// AdaLoRA's kernels and whole-model runs are checked on SwiftShader by the kernel and golden tests: the CLI runs once
// per suite (OTHER_DRIVER).
describe.skipIf(OTHER_DRIVER)('train llama with adalora', () => {
  let out: string;
  let evalData: string;
  let evalRows: Row[];
  let args: string[];
  let run: Awaited<ReturnType<typeof runTrain>>;
  beforeAll(async () => {
    const vocab = (await readModelConfig(nodeFolder(LLAMA))).vocabSize;
    const data = writeJsonl(dir, 'train.jsonl', countingRows(8, 10, vocab, 3));
    evalRows = countingRows(4, 9, vocab, 11);
    evalData = writeJsonl(dir, 'eval.jsonl', evalRows);
    out = join(dir, 'out');
    args = [
      '--model', LLAMA, '--data', data, '--out', out, '--method', 'adalora', '--steps', '6', '--batch', '4', '--lr', '5e-2',
      '--init-r', '4', '--target-r', '2', '--tinit', '1', '--tfinal', '2', '--alpha', '8', '--eval-data', evalData, '--eval-every', '2',
      '--checkpoint-every', '2',
    ];
    run = await runTrain(e, args);
  });

  it('trains, and `eval --adapter OUT` reproduces the final eval loss; OUT is an AdaLoRA adapter at the target budget', async () => {
    expect(run.steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(run.steps.every((s) => Number.isFinite(s.loss) && s.grad_norm > 0)).toBe(true);
    const ours = await runEval(e, ['--model', LLAMA, '--data', evalData, '--adapter', out]);
    expect(rel(ours.loss, run.summary.final_eval_loss), `eval ${ours.loss}, trainer ${run.summary.final_eval_loss}`).toBeLessThan(1e-5);
    const base = await runEval(e, ['--model', LLAMA, '--data', evalData]);
    expect(rel(base.loss, ours.loss)).toBeGreaterThan(1e-4);
    const adapter = await importPeftAdapter(nodeFolder(out), await readModelConfig(nodeFolder(LLAMA)), out);
    if (adapter.kind !== 'lora' || !adapter.adalora) throw new Error('expected an AdaLoRA adapter');
    expect(adapter.config).toMatchObject({ peft_type: 'ADALORA', init_r: 4, target_r: 2, tinit: 1, tfinal: 2, total_step: 6, lora_alpha: 8 });
    // The final budget: target_r per module on average.
    const kept = [...adapter.adalora.tensors.values()].reduce((s, t) => s + t.mask.reduce((a, b) => a + b, 0), 0);
    expect(kept).toBe(2 * adapter.modules.length);
    expect(run.summary.trainable_params).toBe(adapter.modules.reduce((s, m) => s + 4 * (m.inFeatures + m.outFeatures + 1), 0));
  });

  it('a run killed after checkpoint-2 resumes with --resume and continues the same curve to the same adapter', async () => {
    const straight = readFileSync(join(out, 'adapter_model.safetensors'));
    const straightConfig = readFileSync(join(out, 'adapter_config.json'), 'utf8');
    simulateCrash(out, 2);
    const resumed = await runTrain(e, [...args, '--resume']);
    expect(resumed.steps.map((s) => s.step)).toEqual([3, 4, 5, 6]);
    expect(curveOf(resumed.steps)).toEqual(curveOf(run.steps.slice(2)));
    expect(readFileSync(join(out, 'adapter_config.json'), 'utf8')).toBe(straightConfig);
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(straight);
  });

  it('`generate --adapter OUT` runs it (other tokens than the base model), and `merge` evaluates at the adapter\'s loss', async () => {
    const gen = async (extra: string[]) => {
      let text = '';
      await generateCommand(['--model', LLAMA, '--prompt', 'hello world', '--max-new-tokens', '12', '--temperature', '1', '--seed', '3', ...extra], {
        io: { write: (t) => void (text += t), stderr: () => {} }, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive',
      });
      return text;
    };
    expect(await gen(['--adapter', out])).not.toBe(await gen([]));
    const merged = join(dir, 'merged');
    await mergeCommand(['--model', LLAMA, '--adapter', out, '--out', merged, '--dtype', 'f32'], quiet);
    const viaAdapter = await runEval(e, ['--model', LLAMA, '--data', evalData, '--adapter', out]);
    const viaMerge = await runEval(e, ['--model', merged, '--data', evalData]);
    expect(rel(viaMerge.loss, viaAdapter.loss), `merged ${viaMerge.loss}, adapter ${viaAdapter.loss}`).toBeLessThan(1e-5);
  });

  const python = referencePython();
  it('has the reference Python wherever CI runs', () => {
    if (process.env.CI === 'true') expect(python, 'CI creates .venv-ref (scripts/setup-reference-python.sh)').not.toBeNull();
  });
  it.skipIf(!python)('PeftModel.from_pretrained(base, OUT) gives the loss our eval reports', async () => {
    const ours = await runEval(e, ['--model', LLAMA, '--data', evalData, '--adapter', out]);
    const [result] = await runPeftCheck([{ base: LLAMA, adapter: out, rows: evalRows }]);
    expect(result.load.missing).toEqual([]);
    expect(result.load.unexpected).toEqual([]);
    expect(result.load.matched).toBe(result.load.file_tensors);
    expect(result.adapter.tokens).toBe(ours.tokens);
    expect(rel(result.adapter.loss, ours.loss), `PEFT ${result.adapter.loss}, ours ${ours.loss}`).toBeLessThan(1e-4);
  }, 180_000);
});
