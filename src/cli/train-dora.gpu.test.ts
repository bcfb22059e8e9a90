// `lora-studio train --method dora` end to end on the tiny fixtures: with LoRA dropout on Llama (the dropout form of
// PEFT's DoRA forward), over an NF4 base on GPT-2 (`--quant nf4`: our own NF4, bitsandbytes is not installable here).
// train → `eval --adapter OUT` gives the trainer's final eval loss; OUT imports as a DoRA adapter (use_dora, a trained
// magnitude per module); `merge` gives a model that evaluates at the adapter's loss and generates what the adapter
// generates; a run killed after checkpoint-2 resumes and continues the same curve (the magnitudes come
// from the checkpoint, not re-initialised); where the reference venv exists, PeftModel.from_pretrained(base, OUT)
// gives our eval loss.
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
import type { CliIo } from './load.ts';
import { mergeCommand } from './merge.ts';
import { attachAdapter } from '../train/attach-adapter.ts';
import { generate } from '../model/runtime/generate.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { countingRows, curveOf, OTHER_DRIVER, rel, type Row, runEval, runTrain, writeJsonl, simulateCrash } from './testing-train.ts';

let e: Engine;
let dir: string;
beforeAll(async () => {
  e = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'train-dora-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = (name: string) => join(FIXTURES, 'models', name);
const jsonl = (name: string, rows: object[]) => writeJsonl(dir, name, rows);

const train = (args: string[]) => runTrain(e, args);
const evaluate = (args: string[]) => runEval(e, args);
// The CLI around DoRA is the same on every driver, and DoRA's kernels and whole-model runs are checked on SwiftShader
// by the kernel, layer, golden and NF4 tests: these end-to-end runs go once per suite (OTHER_DRIVER).
const curve = curveOf;

describe.skipIf(OTHER_DRIVER).each([
  ['llama', ['--dropout', '0.1']],
  ['gpt2', ['--quant', 'nf4']],
] as const)('train %s with dora %j', (name, extra) => {
  let out: string;
  let evalData: string;
  let evalRows: Row[];
  let args: string[];
  let run: Awaited<ReturnType<typeof train>>;
  const quant = extra.includes('nf4' as never) ? ['--quant', 'nf4'] : [];
  beforeAll(async () => {
    const vocab = (await readModelConfig(nodeFolder(model(name)))).vocabSize;
    const data = jsonl(`${name}-train.jsonl`, countingRows(8, 10, vocab, 3));
    evalRows = countingRows(4, 9, vocab, 11);
    evalData = jsonl(`${name}-eval.jsonl`, evalRows);
    out = join(dir, `${name}-out`);
    args = [
      '--model', model(name), '--data', data, '--out', out, '--method', 'dora', '--steps', '4', '--batch', '4', '--lr', '1e-2',
      '--rank', '4', '--alpha', '8', '--eval-data', evalData, '--eval-every', '2', '--checkpoint-every', '2', ...extra,
    ];
    run = await train(args);
  });

  it('trains, and `eval --adapter OUT` reproduces the final eval loss; OUT is a DoRA adapter', async () => {
    expect(run.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(run.steps.every((s) => Number.isFinite(s.loss) && s.grad_norm > 0)).toBe(true);
    const ours = await evaluate(['--model', model(name), '--data', evalData, '--adapter', out, ...quant]);
    expect(rel(ours.loss, run.summary.final_eval_loss), `eval ${ours.loss}, trainer ${run.summary.final_eval_loss}`).toBeLessThan(1e-5);
    const base = await evaluate(['--model', model(name), '--data', evalData, ...quant]);
    expect(rel(base.loss, ours.loss)).toBeGreaterThan(1e-3);
    const config = await readModelConfig(nodeFolder(model(name)));
    const adapter = await importPeftAdapter(nodeFolder(out), config, out);
    if (adapter.kind !== 'lora') throw new Error('expected a DoRA adapter');
    expect(adapter.dora).toBe(true);
    expect(adapter.config).toMatchObject({ peft_type: 'LORA', use_dora: true, r: 4, lora_alpha: 8, fan_in_fan_out: name === 'gpt2' });
    expect(run.summary.trainable_params).toBe(adapter.modules.reduce((s, m) => s + m.A.length + m.B.length + m.magnitude!.length, 0));
    for (const m of adapter.modules) expect(m.B.some((x) => x !== 0), m.peftPath).toBe(true);
  });

  it('a run killed after checkpoint-2 resumes with --resume and continues the same curve', async () => {
    const straightAdapter = readFileSync(join(out, 'adapter_model.safetensors'));
    simulateCrash(out, 2);
    const resumed = await train([...args, '--resume']);
    expect(resumed.steps.map((s) => s.step)).toEqual([3, 4]);
    expect(curve(resumed.steps)).toEqual(curve(run.steps.slice(2)));
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(straightAdapter);
  });

  it('`merge` bakes it into the weights (m / ‖W + s·B·A‖ ⊙ (W + s·B·A)): the merged model evaluates at the adapter\'s loss', async () => {
    if (quant.length) return; // merging writes the dense base; the NF4 run's base is quantized
    const merged = join(dir, `${name}-merged`);
    const io: CliIo = { stdout: () => {}, stderr: () => {}, progress: () => {}, tty: false };
    await mergeCommand(['--model', model(name), '--adapter', out, '--out', merged, '--dtype', 'f32'], io);
    const viaAdapter = await evaluate(['--model', model(name), '--data', evalData, '--adapter', out]);
    const viaMerge = await evaluate(['--model', merged, '--data', evalData]);
    expect(rel(viaMerge.loss, viaAdapter.loss), `merged ${viaMerge.loss}, adapter ${viaAdapter.loss}`).toBeLessThan(1e-5);
  });

  it('generates with the adapter as the merged model does; the norm computed once (frozen) gives the same tokens as per token', async () => {
    if (quant.length) return;
    const merged = join(dir, `${name}-merged-gen`);
    await mergeCommand(['--model', model(name), '--adapter', out, '--out', merged, '--dtype', 'f32'], { stdout: () => {}, stderr: () => {}, progress: () => {}, tty: false });
    const config = await readModelConfig(nodeFolder(model(name)));
    const adapter = await importPeftAdapter(nodeFolder(out), config, out);
    const prompt = evalRows[0].input_ids.slice(0, 5);
    // Sampled (a fixed seed): the draws follow the probabilities, which greedy argmax on this tiny model does not show.
    const options = { maxNewTokens: 16, temperature: 1, seed: 3 };
    const tf = await loadTransformer(e, nodeFolder(model(name)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const detach = attachAdapter(e, tf.model, adapter);
    const frozen = await generate(e, tf, prompt, options);
    for (const m of tf.model.modules) if (m.linear.dora) m.linear.dora.frozen = m.linear.dora.scalesReady = false;
    const perToken = await generate(e, tf, prompt, options);
    detach();
    const viaMerge = await generate(e, await loadTransformer(e, nodeFolder(merged), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' }), prompt, options);
    expect(frozen.tokens).toEqual(perToken.tokens);
    expect(frozen.tokens).toEqual(viaMerge.tokens);
    const base = await generate(e, tf, prompt, options);
    expect(base.tokens, 'the adapter changes what is generated').not.toEqual(frozen.tokens);
  });

  // PEFT's NF4 needs bitsandbytes on CUDA: the NF4 run is checked against our own `eval --quant nf4` only.
  const python = referencePython();
  it.skipIf(!python || quant.length > 0)('PeftModel.from_pretrained(base, OUT) gives the loss our eval reports', async () => {
    const ours = await evaluate(['--model', model(name), '--data', evalData, '--adapter', out]);
    const [result] = await runPeftCheck([{ base: model(name), adapter: out, rows: evalRows }]);
    expect(result.load.missing).toEqual([]);
    expect(result.load.unexpected).toEqual([]);
    expect(result.load.matched).toBe(result.load.file_tensors);
    expect(result.adapter.tokens).toBe(ours.tokens);
    expect(rel(result.adapter.loss, ours.loss), `PEFT ${result.adapter.loss}, ours ${ours.loss}`).toBeLessThan(1e-4);
    expect(rel(result.base.loss, ours.loss)).toBeGreaterThan(1e-3);
  }, 180_000);
});
