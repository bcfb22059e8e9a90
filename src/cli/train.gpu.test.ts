// `lora-studio train` end to end on the tiny fixtures: the JSON lines and --out's files; train → `eval --adapter`
// gives the trainer's final eval loss (LoRA and QLoRA); a killed run resumes from its last complete checkpoint and
// continues the same curve, passing over half-written checkpoints; bad flags, QLoRA + dropout, a changed config on
// --resume and a diverged run fail with messages that say what and where; the exported folder loads with
// importAdapter and, where the reference venv exists, with the real PeftModel.from_pretrained at our eval loss.
// (The golden run against PEFT's losses and gradients is src/train/golden.gpu.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeBuffer } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import type { StepProfile } from '../gpu/profiler.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { readModelConfig } from '../model/load.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { referencePython, runPeftCheck } from '../train/peft-check.ts';
import { importAdapter, importPeftAdapter } from '../train/peft.ts';
import type { Trainer } from '../train/trainer.ts';
import { evalCommand } from './eval.ts';
import type { CliIo } from './load.ts';
import { main } from './main.ts';
import { trainCommand, type TrainDeps } from './train.ts';
import { countingRows, memoryCache, rel, writeJsonl, type Row, simulateCrash } from './testing-train.ts';

let e: Engine;
let dir: string;
beforeAll(async () => {
  e = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'train-gpu-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const model = (name: string) => join(FIXTURES, 'models', name);
const jsonl = (name: string, rows: object[]) => writeJsonl(dir, name, rows);

/** Runs `train` on the shared engine, capturing its output. */
async function train(args: string[], deps: Omit<TrainDeps, 'io' | 'engine'> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { stdout: (l) => void out.push(l), stderr: (l) => void err.push(l), progress: () => {}, tty: false };
  await trainCommand(args, { io, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive', ...deps });
  const summary = JSON.parse(out.at(-1)!) as Record<string, unknown>;
  const steps = out.slice(0, -1).map((l) => JSON.parse(l) as Record<string, number>);
  return { out, err, summary, steps };
}

/** `train` expected to fail: its error and what it wrote to stderr. */
async function trainError(args: string[], deps: Omit<TrainDeps, 'io' | 'engine'> = {}) {
  const err: string[] = [];
  const io: CliIo = { stdout: () => {}, stderr: (l) => void err.push(l), progress: () => {}, tty: false };
  const error = await trainCommand(args, { io, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive', ...deps }).then(
    () => null,
    (x: Error) => x,
  );
  expect(error, 'train should have failed').not.toBeNull();
  return { message: error!.message, err };
}

async function evaluate(args: string[]) {
  const out: string[] = [];
  const io: CliIo = { stdout: (l) => void out.push(l), stderr: () => {}, progress: () => {}, tty: false };
  await evalCommand(args, { io, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive' });
  return JSON.parse(out.at(-1)!) as { loss: number; tokens: number };
}

const readMetrics = (out: string) =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

/** The parts of a step's metrics that a reproducible run must repeat exactly (not its timings or memory). */
const curve = (steps: Record<string, number>[]) => steps.map((s) => ({ step: s.step, loss: s.loss, lr: s.lr, grad_norm: s.grad_norm, eval_loss: s.eval_loss }));

const STEP_KEYS = ['step', 'loss', 'lr', 'grad_norm', 'tokens_per_s', 'ms', 'mem_bytes', 'peak_bytes'];

// The trainer evaluates padded batches of --batch rows, eval packs whole rows along T: the same positions and
// targets, summed in another order in f32 (a few hundred terms of ~5): agreement to ~1e-6 relative is expected;
// 1e-5 leaves room without hiding a wrong mask or a wrong adapter (those move the loss by > 1e-3).
const EVAL_REL_TOL = 1e-5;
// How far 4 steps move the eval loss off the base model's, at least: IA³'s vectors barely move this random fixture's
// loss (~5e-4 relative after 4 steps at lr 0.1), still 50× the eval tolerance.
const ADAPTER_EFFECT = { lora: 1e-3, qlora: 1e-3, ia3: 2e-4 } as const;

describe.each([
  ['llama', 'lora', ['--targets', 'all-linear', '--dropout', '0.1']],
  ['gpt2', 'lora', []],
  ['llama', 'qlora', []],
  // IA³ moves ~100× fewer parameters than LoRA: a larger step (the later --lr wins) so 4 steps change the loss visibly.
  ['qwen2', 'ia3', ['--lr', '0.1']],
] as const)('train %s with %s', (name, method, extra) => {
  let out: string;
  let evalData: string;
  let evalRows: Row[];
  let run: Awaited<ReturnType<typeof train>>;
  beforeAll(async () => {
    const vocab = (await readModelConfig(nodeFolder(model(name)))).vocabSize;
    const data = jsonl(`${name}-${method}-train.jsonl`, countingRows(8, 10, vocab, 3));
    evalRows = countingRows(4, 9, vocab, 11);
    evalData = jsonl(`${name}-${method}-eval.jsonl`, evalRows);
    out = join(dir, `${name}-${method}-out`);
    run = await train([
      '--model', model(name), '--data', data, '--out', out, '--method', method, '--steps', '4', '--batch', '4', '--lr', '1e-2',
      '--rank', '4', '--alpha', '8', '--eval-data', evalData, '--eval-every', '2', '--checkpoint-every', '2', ...extra,
    ]);
  });

  it('one JSON line per step, then the summary; metrics.jsonl holds the same lines; checkpoints every 2 steps', () => {
    expect(run.steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    for (const s of run.steps) {
      expect(Object.keys(s).slice(0, STEP_KEYS.length)).toEqual(STEP_KEYS);
      expect(Number.isFinite(s.loss) && s.grad_norm > 0 && s.mem_bytes > 0 && s.peak_bytes >= s.mem_bytes).toBe(true);
    }
    // Evaluated at steps 2 and 4 only.
    expect(run.steps.map((s) => s.eval_loss !== undefined)).toEqual([false, true, false, true]);
    expect(readMetrics(out)).toEqual(run.steps);
    expect(run.summary).toMatchObject({ final_loss: run.steps[3].loss, final_eval_loss: run.steps[3].eval_loss, steps: 4, out });
    expect(run.summary.trainable_params).toBeGreaterThan(0);
    expect(run.err.join('\n')).toMatch(/trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: [\d.]+/);
    expect(run.err.join('\n')).toContain('8 rows');
    const entries = readdirSync(out).sort();
    expect(entries).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'checkpoint-2', 'checkpoint-4', 'metrics.jsonl']);
    expect(readdirSync(join(out, 'checkpoint-4')).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
    // The final adapter is the last checkpoint's (no early stopping).
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(readFileSync(join(out, 'checkpoint-4', 'adapter_model.safetensors')));
    const state = JSON.parse(readFileSync(join(out, 'checkpoint-2', 'trainer_state.json'), 'utf8'));
    expect(state).toMatchObject({ step: 2, epoch: 1, batchIndex: 0, config: { method: method === 'qlora' ? 'lora' : method, quant: method === 'qlora' ? 'nf4' : 'none', rank: 4, maxSteps: 4 } });
    expect(state.history).toHaveLength(2);
  });

  it('`eval --adapter OUT` reproduces the trainer\'s final eval loss', async () => {
    // qlora: the run's base is the NF4 model `eval --quant nf4` loads, so the same loss is expected.
    const quant = method === 'qlora' ? ['--quant', 'nf4'] : [];
    const ours = await evaluate(['--model', model(name), '--data', evalData, '--adapter', out, ...quant]);
    const final = run.summary.final_eval_loss as number;
    expect(rel(ours.loss, final), `eval ${ours.loss}, trainer ${final}`).toBeLessThan(EVAL_REL_TOL);
    // And the adapter matters: the base model scores differently.
    const base = await evaluate(['--model', model(name), '--data', evalData, ...quant]);
    expect(rel(base.loss, ours.loss)).toBeGreaterThan(ADAPTER_EFFECT[method]);
  });

  it('the exported folder imports as a PEFT adapter with the run\'s rank, alpha, targets and dropout', async () => {
    const config = await readModelConfig(nodeFolder(model(name)));
    if (method === 'ia3') {
      // PEFT's IA³ defaults for Qwen2: q_proj and v_proj scale their outputs, down_proj its input; all trained off 1.
      const ia3 = await importPeftAdapter(nodeFolder(out), config, out);
      if (ia3.kind !== 'ia3') throw new Error(`expected an IA³ adapter, got ${ia3.kind}`);
      expect(ia3.config).toMatchObject({ peft_type: 'IA3', target_modules: ['down_proj', 'q_proj', 'v_proj'], feedforward_modules: ['down_proj'] });
      expect(ia3.modules.map((m) => [m.module.targetName, m.feedforward])).toEqual(
        Array.from({ length: config.numLayers }, () => [['q_proj', false], ['v_proj', false], ['down_proj', true]]).flat(),
      );
      for (const m of ia3.modules) expect(m.l.some((x) => x !== 1)).toBe(true);
      return;
    }
    const adapter = await importAdapter(nodeFolder(out), config, out);
    expect(adapter.warnings).toEqual([]);
    expect([adapter.rank, adapter.alpha, adapter.scale]).toEqual([4, 8, 2]);
    expect(adapter.dropout).toBe(extra.includes('--dropout' as never) ? 0.1 : 0);
    expect(adapter.config.base_model_name_or_path).toBe(model(name));
    expect(adapter.config.fan_in_fan_out).toBe(name === 'gpt2');
    const expected = name === 'gpt2' ? ['c_attn'] : extra.includes('all-linear' as never) ? 'many' : ['q_proj', 'v_proj'];
    if (expected === 'many') expect(adapter.modules.length).toBe(7 * config.numLayers);
    else expect(adapter.config.target_modules).toEqual(expected);
    // Trained: B moved away from its zero init in every module.
    for (const m of adapter.modules) expect(m.B.some((x) => x !== 0)).toBe(true);
  });

  // PEFT's QLoRA needs bitsandbytes on CUDA: the NF4 case is checked against our own `eval --quant nf4` only.
  if (method === 'qlora') return;
  const python = referencePython();
  if (!python) console.warn('train.gpu.test.ts: PeftModel.from_pretrained check skipped: no reference Python at .venv-ref/bin/python');
  it.skipIf(!python)('PeftModel.from_pretrained(base, OUT) gives the loss our eval reports', async () => {
    const ours = await evaluate(['--model', model(name), '--data', evalData, '--adapter', out]);
    const [result] = await runPeftCheck([{ base: model(name), adapter: out, rows: evalRows }]);
    expect(result.load.missing).toEqual([]);
    expect(result.load.unexpected).toEqual([]);
    expect(result.load.matched).toBe(result.load.file_tensors);
    expect(result.adapter.tokens).toBe(ours.tokens);
    // PEFT runs the f32 model on the CPU, we on the GPU in f32: the losses agree to f32 rounding of a few layers.
    expect(rel(result.adapter.loss, ours.loss), `PEFT ${result.adapter.loss}, ours ${ours.loss}`).toBeLessThan(ADAPTER_EFFECT[method] / 10);
    expect(rel(result.base.loss, ours.loss)).toBeGreaterThan(ADAPTER_EFFECT[method]);
  }, 180_000);
});

describe('kill and resume (llama)', () => {
  let vocab: number;
  let data: string;
  let evalData: string;
  beforeAll(async () => {
    vocab = (await readModelConfig(nodeFolder(model('llama')))).vocabSize;
    data = jsonl('resume-train.jsonl', countingRows(10, 9, vocab, 5));
    evalData = jsonl('resume-eval.jsonl', countingRows(3, 9, vocab, 6));
  });
  // Dropout, warmup + cosine, 3 rows per batch over 10 rows (epochs wrap mid-run): everything a resume must restore.
  const args = (out: string, steps: number, every: number) => [
    '--model', model('llama'), '--data', data, '--out', out, '--steps', String(steps), '--checkpoint-every', String(every),
    '--batch', '3', '--lr', '5e-3', '--dropout', '0.05', '--warmup', '2', '--rank', '4', '--eval-data', evalData, '--eval-every', '2',
  ];

  it('a run killed after checkpoint-3 resumes with --resume and continues the uninterrupted curve', async () => {
    const out = join(dir, 'resume');
    const straight = await train(args(out, 6, 3));
    const straightMetrics = readMetrics(out);
    const straightAdapter = readFileSync(join(out, 'adapter_model.safetensors'));
    // The crash: after step 5 was logged, before checkpoint-6 and the final files were written.
    simulateCrash(out, 5);

    const resumed = await train([...args(out, 6, 3), '--resume']);
    expect(resumed.err.join('\n')).toContain(`resuming from ${join(out, 'checkpoint-3')} (step 3 of 6)`);
    expect(resumed.steps.map((s) => s.step)).toEqual([4, 5, 6]);
    expect(curve(resumed.steps)).toEqual(curve(straight.steps.slice(3)));
    expect(curve(readMetrics(out))).toEqual(curve(straightMetrics));
    expect(readMetrics(out)).toHaveLength(6);
    expect(resumed.summary).toMatchObject({ final_loss: straight.summary.final_loss, final_eval_loss: straight.summary.final_eval_loss, steps: 6 });
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(straightAdapter);
  });

  it('--resume passes over half-written checkpoints: a leftover temporary folder, a folder without all its files', async () => {
    const out = join(dir, 'half-written');
    const straight = await train(args(out, 4, 2));
    const straightAdapter = readFileSync(join(out, 'adapter_model.safetensors'));
    rmSync(join(out, 'checkpoint-4'), { recursive: true });
    rmSync(join(out, 'adapter_model.safetensors'));
    // A write of checkpoint-4 interrupted before its rename: the temporary folder with some of the files.
    const tmp = join(out, '.tmp-checkpoint-4-99999');
    mkdirSync(tmp);
    cpSync(join(out, 'checkpoint-2', 'adapter_config.json'), join(tmp, 'adapter_config.json'));
    writeFileSync(join(tmp, 'trainer_state.json'), '{"version": 1, "step": 4, "hist');
    // A checkpoint folder missing its optimizer state (e.g. copied by hand), and one whose state is garbage.
    cpSync(join(out, 'checkpoint-2'), join(out, 'checkpoint-5'), { recursive: true });
    rmSync(join(out, 'checkpoint-5', 'optimizer.safetensors'));
    cpSync(join(out, 'checkpoint-2'), join(out, 'checkpoint-7'), { recursive: true });
    writeFileSync(join(out, 'checkpoint-7', 'trainer_state.json'), '{"version": 1, "st');

    const resumed = await train([...args(out, 4, 2), '--resume']);
    const err = resumed.err.join('\n');
    expect(err).toContain(`resuming from ${join(out, 'checkpoint-2')} (step 2 of 4)`);
    expect(err).toContain('unfinished write');
    expect(err).toMatch(/checkpoint-5 is incomplete/);
    expect(err).toMatch(/checkpoint-7\/trainer_state\.json: not valid JSON.*checkpoint-7 ignored/);
    expect(curve(resumed.steps)).toEqual(curve(straight.steps.slice(2)));
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(straightAdapter);
  });

  it('--resume refuses another config, naming the flag and both values; refuses an empty --out; a run refuses to overwrite', async () => {
    const out = join(dir, 'resume-config');
    await train(args(out, 2, 2));
    const changed = await trainError([...args(out, 2, 2), '--resume', '--lr', '1e-3']);
    expect(changed.message).toContain(`--resume: ${join(out, 'checkpoint-2')} was written with another configuration`);
    expect(changed.message).toContain('--lr 0.001 (checkpoint: 0.005)');
    const otherData = jsonl('resume-other.jsonl', countingRows(10, 9, vocab, 99));
    const dataChanged = await trainError([...args(out, 2, 2).map((a) => (a === data ? otherData : a)), '--resume']);
    expect(dataChanged.message).toMatch(/--resume: the data differ from the run in .*checkpoint-2/);
    const overwrite = await trainError(args(out, 2, 2));
    expect(overwrite.message).toContain('already holds a run (checkpoint-2); pass --resume');
    const empty = await trainError([...args(join(dir, 'empty-out'), 2, 2), '--resume']);
    expect(empty.message).toContain('holds no complete checkpoint-<step> folder');
  });

  it('early stopping: stops after --early-stopping evaluations without improvement and exports the best adapter', async () => {
    const out = join(dir, 'early');
    // Step 4's evaluation reports a worse loss than step 2's (the trainer's own tracking is tested with it; here the
    // CLI's plumbing: stop, summary, which adapter is exported).
    const worseAtStep4 = (t: Trainer) => {
      if (t.step === 4) t.evaluate = async () => ({ loss: 99, tokens: 1 });
    };
    const run = await train([...args(out, 8, 2), '--early-stopping', '1'], { afterStep: worseAtStep4 });
    expect(run.steps.map((s) => [s.step, s.eval_loss !== undefined])).toEqual([[1, false], [2, true], [3, false], [4, true]]);
    expect(run.summary).toMatchObject({ steps: 4, best_step: 2, best_eval_loss: run.steps[1].eval_loss, stopped_early: true });
    expect(run.err.join('\n')).toContain('early stopping at step 4');
    // checkpoint-4 is where the run stopped; the exported adapter is the best one, step 2's.
    const ck = JSON.parse(readFileSync(join(out, 'checkpoint-4', 'trainer_state.json'), 'utf8'));
    expect([ck.step, ck.bestStep, ck.bestEvalLoss]).toEqual([4, 2, run.steps[1].eval_loss]);
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(readFileSync(join(out, 'checkpoint-2', 'adapter_model.safetensors')));
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).not.toEqual(readFileSync(join(out, 'checkpoint-4', 'adapter_model.safetensors')));
    const best = await evaluate(['--model', model('llama'), '--data', evalData, '--adapter', out]);
    expect(rel(best.loss, run.steps[1].eval_loss)).toBeLessThan(EVAL_REL_TOL);
  });

  it('a NaN loss stops the run naming the step and the last good checkpoint; nothing after it is written', async () => {
    const out = join(dir, 'diverged');
    // After step 3 the adapter is poisoned (as an overflow would): step 4's loss is NaN.
    const poison = (t: Trainer) => {
      if (t.step === 3) writeBuffer(e.device, t.lora.params, new Float32Array(t.lora.layout.totalLength).fill(NaN));
    };
    const { message } = await trainError(args(out, 6, 2), { afterStep: poison });
    expect(message).toMatch(/^train: step 4: the loss became NaN/);
    expect(message).toContain(`The last good checkpoint is ${join(out, 'checkpoint-2')}`);
    expect(readdirSync(out).sort()).toEqual(['checkpoint-2', 'metrics.jsonl']);
  });
});

describe('flag errors (before the GPU is opened)', () => {
  const base = () => ['--model', model('llama'), '--data', jsonl('flags.jsonl', countingRows(4, 6, 400, 1)), '--out', join(dir, 'flags-out')];
  const cases: [string[], string | RegExp][] = [
    [['--rank', '0'], 'train: --rank "0": must be an integer ≥ 1 and ≤ 1024'],
    [['--lr', 'fast'], 'train: --lr "fast": must be a number > 0 and ≤ 1'],
    [['--dropout', '0.95', '--batch', '2.5'], /--dropout "0.95": must be a number ≥ 0 and ≤ 0.9; --batch "2.5": must be an integer ≥ 1/],
    [['--schedule', 'step'], 'train: --schedule "step": must be cosine, linear or constant'],
    [['--method', 'dora2'], 'train: --method "dora2": must be one of lora'],
    [['--quant', 'int4'], 'train: --quant "int4": must be none or nf4'],
    [['--method', 'qlora', '--quant', 'none'], 'train: --quant "none": contradicts method qlora (LoRA over an NF4 base)'],
    [['--eval-split', '0.7'], 'train: --eval-split "0.7": must be a number ≥ 0 and ≤ 0.5'],
    [['--double-quant'], 'train: --double-quant: only applies to quant nf4 (QLoRA)'],
    [['--steps', '3', '--epochs', '2'], 'give --steps or --epochs, not both'],
    [['--early-stopping', '2'], '--early-stopping needs an eval set'],
    [['--targets', 'q_proj,nope'], 'train: --targets q_proj,nope: target_modules ["nope"] matches no linear layer of this llama model (its linear layers: q_proj,'],
    [['--rank'], /train: Option '--rank <value>' argument missing/],
  ];
  for (const [flags, want] of cases) {
    it(`${flags.join(' ')}`, async () => {
      const { message } = await trainError([...base(), ...flags]);
      if (typeof want === 'string') expect(message).toContain(want);
      else expect(message).toMatch(want);
    });
  }

  it('--method qlora --double-quant trains LoRA over the double-quantized NF4 base', async () => {
    const out = join(dir, 'double-quant');
    const run = await train([...base().slice(0, 4), '--out', out, '--method', 'qlora', '--double-quant', '--steps', '1', '--batch', '4']);
    expect(run.steps).toHaveLength(1);
    expect(Number.isFinite(run.steps[0].loss)).toBe(true);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint-1', 'trainer_state.json'), 'utf8'));
    expect(state.config).toMatchObject({ method: 'lora', quant: 'nf4', doubleQuant: true });
  });

  it('--packing trains on rows packed into --max-len blocks', async () => {
    const out = join(dir, 'packing');
    const run = await train([...base().slice(0, 4), '--out', out, '--packing', '--max-len', '16', '--steps', '2', '--batch', '1']);
    // 4 rows of 6 tokens in blocks of 16: 2 rows per block, 2 blocks per epoch.
    expect(run.err.join('\n')).toContain('2 batches per epoch');
    expect(run.steps.map((s) => Number.isFinite(s.loss))).toEqual([true, true]);
    expect(JSON.parse(readFileSync(join(out, 'checkpoint-2', 'trainer_state.json'), 'utf8')).config).toMatchObject({ packing: true, maxLength: 16 });
  });

  it('a learned-position model refuses a longer --max-len and lowers the default', async () => {
    const args = ['--model', model('gpt2'), '--data', jsonl('gpt2-flags.jsonl', countingRows(4, 6, 320, 1)), '--out', join(dir, 'gpt2-flags')];
    const { message } = await trainError([...args, '--max-len', '100']);
    expect(message).toContain("--max-len 100 exceeds");
  });

  it('on a terminal: a progress bar on stderr, no step lines on stdout, the summary last', async () => {
    const out: string[] = [];
    const progress: string[] = [];
    const io: CliIo = { stdout: (l) => void out.push(l), stderr: () => {}, progress: (t) => void progress.push(t), tty: true };
    await trainCommand([...base().slice(0, 4), '--out', join(dir, 'tty'), '--steps', '2', '--batch', '2'], { io, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive' });
    expect(out).toHaveLength(1);
    expect(JSON.parse(out[0])).toMatchObject({ steps: 2 });
    expect(progress.filter((p) => p.startsWith('train: [')).map((p) => p.split(' loss')[0])).toEqual([
      `train: [${'#'.repeat(12)}${'-'.repeat(12)}] 1/2`,
      `train: [${'#'.repeat(24)}] 2/2`,
    ]);
    expect(progress.at(-1)).toBe('');
  });

  it('--profile: a {"profile": …} line after each step\'s line off a terminal; the tables at the end on one', async () => {
    const args = [...base().slice(0, 4), '--steps', '2', '--batch', '2', '--profile'];
    const { out } = await train([...args, '--out', join(dir, 'profiled')]);
    expect(out).toHaveLength(5);
    const lines = out.slice(0, 4).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => ('profile' in l ? `profile ${(l.profile as { step: number }).step}` : `step ${l.step}`))).toEqual([
      'step 1',
      'profile 1',
      'step 2',
      'profile 2',
    ]);
    const timed = e.gpu.features.has('timestamp-query');
    for (const { profile: p } of [lines[1], lines[3]] as { profile: StepProfile }[]) {
      expect(Object.keys(p).slice(0, 10)).toEqual([
        'step', 'dispatches', 'passes', 'submits', 'buffers_created', 'bind_groups_created', 'readbacks', 'gpu_ms', 'span_ms', 'idle_ms',
      ]);
      expect(p.dispatches).toBeGreaterThan(10);
      expect(p.passes).toBe(p.dispatches); // a pass per dispatch while profiling
      expect(p.submits).toBeGreaterThanOrEqual(1);
      expect(p.cpu.record_ms).toBeGreaterThanOrEqual(0);
      expect(p.cpu.wait_ms).toBeGreaterThanOrEqual(0);
      expect(p.kernels.map((k) => k.name)).toEqual(expect.arrayContaining(['matmul.naive', 'flash_attention.forward', 'adamw.update']));
      expect(p.kernels.reduce((n, k) => n + k.calls, 0)).toBe(p.dispatches);
      expect(p.gpu_ms === null).toBe(!timed);
      if (timed) expect(p.kernels.every((k) => k.ms! >= 0 && k.share! >= 0)).toBe(true);
    }
    // The step lines and metrics.jsonl are the same without the profile.
    expect(readMetrics(join(dir, 'profiled'))).toEqual([lines[0], lines[2]]);

    const tty: string[] = [];
    const io: CliIo = { stdout: (l) => void tty.push(l), stderr: () => {}, progress: () => {}, tty: true };
    await trainCommand([...args, '--out', join(dir, 'profiled-tty')], { io, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive' });
    expect(tty).toHaveLength(2);
    expect(tty[0]).toMatch(/^step 2 profile: \d+ dispatches/);
    expect(tty[0]).toMatch(/^kernel\s+calls\s+ms\s+share\s+TFLOP\/s\s+GB\/s$/m);
    expect(tty[0]).toContain('matmul.naive');
    expect(JSON.parse(tty[1])).toMatchObject({ steps: 2 });
  });

  it('main() prints the error on one line and exits 1', async () => {
    const errors: string[] = [];
    const original = console.error;
    console.error = (...a: unknown[]) => void errors.push(a.join(' '));
    try {
      expect(await main(['train', ...base(), '--rank=-3'])).toBe(1);
    } finally {
      console.error = original;
    }
    expect(errors).toEqual(['error: train: --rank "-3": must be an integer ≥ 1 and ≤ 1024']);
  });
});
