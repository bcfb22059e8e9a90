// `lora-studio train --method houlsby|pfeiffer` end to end on the tiny fixtures: Houlsby on Llama (SiLU, reduction
// factor 4), Pfeiffer over an NF4 base on GPT-2 (`--quant nf4`). train → `eval --adapter OUT` gives the trainer's final
// eval loss; OUT is the documented bottleneck layout; a run killed after checkpoint-2 resumes and continues the same
// curve; `generate --adapter OUT` prints what generate() gives with the adapter attached; `merge` and `export-gguf`
// refuse it by name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { readModelConfig } from '../model/load.ts';
import { generate } from '../model/runtime/generate.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { HfTokenizer } from '../model/tokenizer.ts';
import { attachAdapter } from '../train/attach-adapter.ts';
import { importAnyAdapter } from '../train/peft.ts';
import { exportGgufCommand } from './export-gguf.ts';
import { generateCommand } from './generate.ts';
import type { CliIo } from './load.ts';
import { mergeCommand } from './merge.ts';
import { countingRows, curveOf, memoryCache, OTHER_DRIVER, rel, type Row, runEval, runTrain, writeJsonl, simulateCrash } from './testing-train.ts';

let e: Engine;
let dir: string;
beforeAll(async () => {
  e = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'train-bottleneck-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = (name: string) => join(FIXTURES, 'models', name);
const quiet: CliIo = { stdout: () => {}, stderr: () => {}, progress: () => {}, tty: false };

const train = (args: string[]) => runTrain(e, args);

const evaluate = (args: string[]) => runEval(e, args);

// The CLI is the same on every driver; the kernels, the layer and the goldens run on SwiftShader too.
const curve = curveOf;

describe.skipIf(OTHER_DRIVER).each([
  ['houlsby', 'llama', ['--adapter-activation', 'silu', '--reduction-factor', '4']],
  ['pfeiffer', 'gpt2', ['--quant', 'nf4']],
] as const)('train --method %s on %s %j', (method, name, extra) => {
  let out: string;
  let evalData: string;
  let evalRows: Row[];
  let args: string[];
  let run: Awaited<ReturnType<typeof train>>;
  const quant = extra.includes('nf4' as never) ? ['--quant', 'nf4'] : [];
  beforeAll(async () => {
    const vocab = (await readModelConfig(nodeFolder(model(name)))).vocabSize;
    const data = writeJsonl(dir, `${name}-train.jsonl`, countingRows(8, 10, vocab, 3));
    evalRows = countingRows(4, 9, vocab, 11);
    evalData = writeJsonl(dir, `${name}-eval.jsonl`, evalRows);
    out = join(dir, `${method}-${name}-out`);
    args = [
      '--model', model(name), '--data', data, '--out', out, '--method', method, '--steps', '4', '--batch', '4', '--lr', '1e-2',
      '--eval-data', evalData, '--eval-every', '2', '--checkpoint-every', '2', '--weight-decay', '0.1', ...extra,
    ];
    run = await train(args);
  });

  it('trains, and `eval --adapter OUT` reproduces the final eval loss; OUT is the documented bottleneck layout', async () => {
    expect(run.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(run.steps.every((s) => Number.isFinite(s.loss) && s.grad_norm > 0)).toBe(true);
    const ours = await evaluate(['--model', model(name), '--data', evalData, '--adapter', out, ...quant]);
    expect(rel(ours.loss, run.summary.final_eval_loss), `eval ${ours.loss}, trainer ${run.summary.final_eval_loss}`).toBeLessThan(1e-5);
    const base = await evaluate(['--model', model(name), '--data', evalData, ...quant]);
    expect(rel(base.loss, ours.loss), "the adapter moved the loss (f32 noise is ~1e-6)").toBeGreaterThan(1e-4);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ adapter_type: 'bottleneck', config: method, format: 'lora-studio-bottleneck/1', non_linearity: method === 'houlsby' ? 'silu' : 'relu', reduction_factor: method === 'houlsby' ? 4 : 16 });
    const adapter = await importAnyAdapter(nodeFolder(out), await readModelConfig(nodeFolder(model(name))), out);
    if (adapter.kind !== 'bottleneck') throw new Error(adapter.kind);
    expect(adapter.modules).toHaveLength(method === 'houlsby' ? 4 : 2);
    expect(run.summary.trainable_params).toBe(adapter.modules.reduce((s, m) => s + m.D.length + m.bd.length + m.U.length + m.bu.length, 0));
    for (const m of adapter.modules) expect(m.U.some((x) => x !== 0), m.peftPath).toBe(true);
  });

  it('a run killed after checkpoint-2 resumes with --resume and continues the same curve', async () => {
    const straight = readFileSync(join(out, 'adapter_model.safetensors'));
    simulateCrash(out, 2);
    const resumed = await train([...args, '--resume']);
    expect(resumed.steps.map((s) => s.step)).toEqual([3, 4]);
    expect(curve(resumed.steps)).toEqual(curve(run.steps.slice(2)));
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(straight);
  });

  it('`merge` and `export-gguf` refuse it by name', async () => {
    await expect(mergeCommand(['--model', model(name), '--adapter', out, '--out', join(dir, `${name}-merged`)], quiet)).rejects.toThrow(
      new RegExp(`merge: .* is a ${method === 'houlsby' ? 'Houlsby' : 'Pfeiffer'} bottleneck adapter \\(--method ${method}\\): merging does not take it`),
    );
    await expect(exportGgufCommand(['--model', model(name), '--adapter', out, '--out', join(dir, `${name}.gguf`)], quiet)).rejects.toThrow(
      /export-gguf: .* bottleneck adapter .*: the GGUF export does not take it/,
    );
  });

  it('`generate --adapter OUT` prints what generate() gives with the adapter on the model', async () => {
    if (quant.length || name !== 'llama') return; // the llama fixture has the tokenizer; the NF4 run is covered by eval
    const read = (f: string) => readFileSync(join(model(name), f), 'utf8');
    const tok = HfTokenizer.fromJson(read('tokenizer.json'), read('tokenizer_config.json'));
    let text = '';
    const io = { write: (t: string) => void (text += t), stderr: () => {} };
    const flags = ['--model', model(name), '--prompt', 'the cat sat on', '--max-new-tokens', '8', '--temperature', '1', '--seed', '3'];
    await generateCommand([...flags, '--adapter', out], { io, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive' });
    const tf = await loadTransformer(e, nodeFolder(model(name)), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
    const adapter = await importAnyAdapter(nodeFolder(out), tf.model.config, out);
    const ids = tok.encode('the cat sat on');
    const options = { maxNewTokens: 8, temperature: 1, seed: 3, stopTokenIds: [tok.eosId!], vocabLimit: tok.vocabSize };
    const detach = attachAdapter(e, tf.model, adapter);
    const withAdapter = await generate(e, tf, ids, options);
    detach();
    expect(text).toBe(tok.decode(withAdapter.tokens, { skipSpecialTokens: true }) + '\n');
    expect(withAdapter.tokens.length).toBeGreaterThan(0);
  });
});
