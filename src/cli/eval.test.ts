// `lora-studio eval` without a GPU: flag and input errors (all raised before the GPU is opened) as main() reports
// them, and the batch planning. The losses themselves are in eval.gpu.test.ts.
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './main.ts';
import { packForEval, planBatches } from './eval.ts';

const FIXTURE = join(process.cwd(), 'tests', 'fixtures', 'models', 'llama');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'eval-cli-'));
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** Runs main() and returns its exit code with what it wrote to stdout and stderr. */
async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a) => void out.push(a.join(' ')));
  vi.spyOn(console, 'error').mockImplementation((...a) => void err.push(a.join(' ')));
  const stderrWrite = vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s).trimEnd()), true));
  const stdoutWrite = vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s).trimEnd()), true));
  try {
    const code = await main(argv);
    return { code, out, err };
  } finally {
    stderrWrite.mockRestore();
    stdoutWrite.mockRestore();
  }
}

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** The error contract: exit 1 and exactly one stderr line starting `error: ` that contains every `needle`. */
function expectOneError(r: { code: number; err: string[] }, ...needles: string[]) {
  expect(r.code).toBe(1);
  const errors = r.err.filter((l) => l.startsWith('error: '));
  expect(errors).toHaveLength(1);
  for (const n of needles) expect(errors[0]).toContain(n);
  expect(r.err.join('\n')).not.toMatch(/\n\s+at /); // no stack trace without --debug
}

describe('eval: errors are one `error: …` line and exit 1', () => {
  it('missing --model', async () => {
    expectOneError(await run(['eval', '--data', 'x.jsonl']), '--model is required');
  });

  it('missing --data', async () => {
    expectOneError(await run(['eval', '--model', FIXTURE]), '--data is required');
  });

  it('an unknown flag names it', async () => {
    expectOneError(await run(['eval', '--model', FIXTURE, '--data', 'x', '--lr', '1']), "'--lr'");
  });

  it('a bad --quant lists the choices', async () => {
    expectOneError(await run(['eval', '--model', FIXTURE, '--data', 'x', '--quant', 'int8']), '--quant "int8"', 'none, nf4');
  });

  it('a bad --max-len', async () => {
    expectOneError(await run(['eval', '--model', FIXTURE, '--data', 'x', '--max-len', '1.5']), '--max-len must be an integer >= 2');
  });

  it('a --model folder that does not exist', async () => {
    const missing = join(dir, 'nowhere');
    expectOneError(await run(['eval', '--model', missing, '--data', 'x']), missing, 'no such folder');
  });

  it('a folder without config.json names the file', async () => {
    const empty = join(dir, 'empty-model');
    mkdirSync(empty, { recursive: true });
    expectOneError(await run(['eval', '--model', empty, '--data', 'x']), `${empty}/config.json`, 'not found');
  });

  it('a config.json with an unsupported model_type names the file and the supported list', async () => {
    const bert = join(dir, 'bert');
    mkdirSync(bert, { recursive: true });
    writeFileSync(join(bert, 'config.json'), JSON.stringify({ model_type: 'bert' }));
    expectOneError(await run(['eval', '--model', bert, '--data', 'x']), `${bert}/config.json`, 'model_type "bert"', 'llama');
  });

  it('a --data file that does not exist', async () => {
    const missing = join(dir, 'missing.jsonl');
    expectOneError(await run(['eval', '--model', FIXTURE, '--data', missing]), missing, 'no such file');
  });

  it('a JSONL with only bad lines: every bad line on stderr with its number, then the error', async () => {
    const data = file('bad.jsonl', '{"input_ids": [1, 2, 3}\n\n[1, 2]\n{"input_ids": [5, 999999]}\n{"text": 3}\n');
    const r = await run(['eval', '--model', FIXTURE, '--data', data]);
    expectOneError(r, data, 'no usable row', 'line 1');
    const text = r.err.join('\n');
    expect(text).toContain(`${data}:1: invalid JSON`);
    expect(text).toContain(`${data}:3: expected a JSON object`);
    expect(text).toContain(`${data}:4: "input_ids"[1] = 999999 is outside the vocabulary [0, 400)`);
    expect(text).toContain(`${data}:5:`);
    expect(r.out).toEqual([]);
  });

  it('refuses a tokenizer.json over its size limit before reading it, naming the folder and the file', async () => {
    const data = file('tok.jsonl', '{"text": "hello"}\n');
    const model = join(dir, 'huge-tokenizer');
    mkdirSync(model, { recursive: true });
    for (const f of ['config.json', 'model.safetensors', 'tokenizer_config.json']) copyFileSync(join(FIXTURE, f), join(model, f));
    // Sparse: 129 MiB on paper, nothing on disk; a reader that looked at the contents first would take seconds.
    writeFileSync(join(model, 'tokenizer.json'), '');
    truncateSync(join(model, 'tokenizer.json'), 129 * 1024 * 1024);
    const r = await run(['eval', '--model', model, '--data', data]);
    expectOneError(r, `${model}/tokenizer.json: ${129 * 1024 * 1024} bytes, more than the ${128 * 1024 * 1024} bytes`);
  });

  it('an error listing several problems (AdapterError) stays on one line', async () => {
    const data = file('ok.jsonl', '{"input_ids": [1, 2, 3]}\n');
    const adapter = join(dir, 'bad-adapter');
    mkdirSync(adapter, { recursive: true });
    writeFileSync(join(adapter, 'adapter_config.json'), JSON.stringify({ peft_type: 'LOHA', r: 0 }));
    const r = await run(['eval', '--model', FIXTURE, '--data', data, '--adapter', adapter]);
    expectOneError(r, `${adapter}/adapter_config.json`, 'peft_type is "LOHA"', '; "r" must be a positive integer');
    expect(r.err.filter((l) => !l.startsWith('eval: '))).toHaveLength(1);
  });

  it('--debug adds the stack trace', async () => {
    const r = await run(['eval', '--debug', '--data', 'x.jsonl']);
    expect(r.code).toBe(1);
    expect(r.err[0]).toBe('error: eval: --model is required');
    expect(r.err.join('\n')).toMatch(/\n\s+at /);
  });

  it('--help prints the usage and succeeds', async () => {
    const r = await run(['eval', '--help']);
    expect(r.code).toBe(0);
    expect(r.out.join('\n')).toContain('lora-studio eval --model DIR --data FILE.jsonl');
  });
});

describe('eval batches', () => {
  const row = (n: number, first = 0) => ({
    input_ids: Int32Array.from({ length: n }, (_, i) => first + i),
    labels: Int32Array.from({ length: n }, (_, i) => (i < 2 ? -100 : first + i)),
  });

  it('plans runs of whole rows within the token budget; a longer row goes alone', () => {
    const rows = [row(3), row(4), row(2), row(9), row(1)];
    expect(planBatches(rows, 7)).toEqual([{ start: 0, end: 2 }, { start: 2, end: 3 }, { start: 3, end: 4 }, { start: 4, end: 5 }]);
    expect(planBatches(rows, 100)).toEqual([{ start: 0, end: 5 }]);
    expect(planBatches(rows, 1)).toHaveLength(5);
    expect(planBatches([], 8)).toEqual([]);
  });

  it('packs rows along T with a segment each, positions restarting, targets shifted within a row', () => {
    const b = packForEval([row(3, 10), row(4, 20)]);
    expect([...b.tokens]).toEqual([10, 11, 12, 20, 21, 22, 23]);
    expect([...b.positions]).toEqual([0, 1, 2, 0, 1, 2, 3]);
    expect([...b.segments]).toEqual([0, 0, 0, 1, 1, 1, 1]);
    // targets[t] = labels[t+1] of the same row; each row's last position predicts nothing.
    expect([...b.targets]).toEqual([-100, 12, -100, -100, 22, 23, -100]);
  });
});
