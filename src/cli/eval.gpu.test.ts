// `lora-studio eval` on the fixtures: the printed {"loss", "tokens"} equals transformers' loss (the goldens of
// forward.gpu.test.ts) under the loss contract, whatever the batching; text rows, truncation, NF4, PEFT adapters; and
// the built CLI once as a subprocess.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import type { Engine } from '../gpu/engine.ts';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { FIXTURES, readGolden, type GoldenRow } from '../model/runtime/testing.ts';
import { HfTokenizer } from '../model/tokenizer.ts';
import { deflated, rawZip, zeroBomb } from '../train/testing-archive.ts';
import { evalCommand, type CliIo } from './eval.ts';

let e: Engine;
let dir: string;
beforeAll(async () => {
  e = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'eval-gpu-'));
});

const model = (name: string) => join(FIXTURES, 'models', name);

function jsonl(name: string, rows: object[]): string {
  const p = join(dir, name);
  writeFileSync(p, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return p;
}

const memoryCache = (): TuningCache => {
  const m = new Map<string, string>();
  return { get: (k) => m.get(k), set: (k, v) => void m.set(k, v) };
};

/** Runs the command on the shared engine; returns the parsed last stdout line and everything written. */
async function evaluate(args: string[], o: { tty?: boolean; matmul?: string } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const progress: string[] = [];
  const io: CliIo = { stdout: (l) => void out.push(l), stderr: (l) => void err.push(l), progress: (t) => void progress.push(t), tty: !!o.tty };
  await evalCommand(args, { io, engine: e, tuningCache: memoryCache(), matmulOverride: o.matmul ?? 'naive' });
  const result = JSON.parse(out.at(-1)!) as { loss: number; tokens: number };
  return { result, out, err, progress };
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

/** The loss contract computed from transformers' float64 logits: positions t < maxLen whose next label counts. */
function goldenLoss(rows: GoldenRow[], maxLen = Infinity) {
  let sum = 0;
  let tokens = 0;
  for (const row of rows) {
    const n = Math.min(row.input_ids.length, maxLen);
    for (let t = 0; t + 1 < n; t++) {
      const label = row.labels[t + 1];
      if (label === -100) continue;
      const logits = row.logits[t];
      const max = Math.max(...logits);
      const lse = max + Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0));
      sum += lse - logits[label];
      tokens++;
    }
  }
  return { loss: sum / tokens, tokens };
}

describe.each(['gpt2', 'llama'])('eval on pre-tokenized rows: %s', (name) => {
  it('prints transformers\' loss and token count as its last stdout line', async () => {
    const golden = readGolden(name);
    const data = jsonl(`${name}.jsonl`, golden.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels })));
    const { result, out } = await evaluate(['--model', model(name), '--data', data]);
    expect(out).toHaveLength(1);
    expect(Object.keys(result)).toEqual(['loss', 'tokens']);
    expect(result.tokens).toBe(golden.tokens);
    expect(rel(result.loss, golden.loss)).toBeLessThan(1e-4);
  });

  it('token-weighted over the file: one row per batch gives the same loss (not a mean of batch means)', async () => {
    const golden = readGolden(name);
    const counts = golden.rows.map((r) => r.labels.slice(1).filter((l) => l !== -100).length);
    expect(new Set(counts).size).toBeGreaterThan(1); // rows of different weight, else the check proves nothing
    const data = jsonl(`${name}-1.jsonl`, golden.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels })));
    const { result } = await evaluate(['--model', model(name), '--data', data, '--batch-tokens', '1']);
    expect(result.tokens).toBe(golden.tokens);
    expect(rel(result.loss, golden.loss)).toBeLessThan(1e-4);
  });
});

describe('eval: rows, truncation, progress', () => {
  it('labels default to input_ids; --max-len truncates, reports it, and drops rows left with no scored token', async () => {
    const golden = readGolden('llama');
    // Unlabelled copies of the rows (every next token scored) followed by the labelled ones.
    const rows = [...golden.rows.map((r) => ({ input_ids: r.input_ids })), ...golden.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels }))];
    const withLabels = [...golden.rows.map((r) => ({ ...r, labels: r.input_ids })), ...golden.rows];
    const maxLen = 4;
    const want = goldenLoss(withLabels, maxLen);
    const firstScored = golden.rows.map((r) => r.labels.findIndex((l, t) => t >= 1 && l !== -100));
    const dropped = firstScored.filter((t) => t >= maxLen).length;
    expect(dropped).toBeGreaterThan(0); // the fixture has prompts longer than maxLen
    const data = jsonl('trunc.jsonl', rows);
    const { result, err } = await evaluate(['--model', model('llama'), '--data', data, '--max-len', String(maxLen)]);
    expect(result.tokens).toBe(want.tokens);
    expect(rel(result.loss, want.loss)).toBeLessThan(1e-4);
    const longer = rows.filter((r) => r.input_ids.length > maxLen).length;
    expect(err.join('\n')).toContain(`${longer - dropped} row(s) longer than ${maxLen} tokens were truncated`);
    expect(err.join('\n')).toContain(`eval: ${dropped} line(s) skipped`);
    expect(err.join('\n')).toContain('no trained token left after truncation');
  });

  it('the whole-file loss equals the untruncated golden when no row is longer than the default max length', async () => {
    const golden = readGolden('llama');
    expect(rel(goldenLoss(golden.rows).loss, golden.loss)).toBeLessThan(1e-6); // the CE helper above is the contract
  });

  it('{"text"} rows: loss > 0 and one scored token per token after the first of each row', async () => {
    const files = model('llama');
    const tok = HfTokenizer.fromJson(readFileSync(join(files, 'tokenizer.json'), 'utf8'), readFileSync(join(files, 'tokenizer_config.json'), 'utf8'));
    const texts = ['the cat sat on the mat', 'a quick brown fox jumps over the lazy dog', 'hello world, hello again'];
    const expected = texts.reduce((s, t) => s + tok.encode(t).length - 1, 0);
    const data = jsonl('text.jsonl', [...texts.map((text) => ({ text })), { text: 3 }]);
    const { result, err } = await evaluate(['--model', files, '--data', data]);
    expect(result.tokens).toBe(expected);
    expect(result.loss).toBeGreaterThan(0);
    expect(Number.isFinite(result.loss)).toBe(true);
    // The bad fourth line is reported with its number and does not stop the run.
    expect(err.join('\n')).toContain(`${data}:4: "text" must be a string`);
  });

  it('progress goes through io.progress only on a terminal; stdout stays the one JSON line', async () => {
    const golden = readGolden('gpt2');
    const data = jsonl('tty.jsonl', golden.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels })));
    const quiet = await evaluate(['--model', model('gpt2'), '--data', data, '--batch-tokens', '1']);
    expect(quiet.progress).toEqual([]);
    const tty = await evaluate(['--model', model('gpt2'), '--data', data, '--batch-tokens', '1'], { tty: true });
    expect(tty.progress.some((p) => p.includes(`batch ${golden.rows.length}/${golden.rows.length}`))).toBe(true);
    expect(tty.out).toHaveLength(1);
    expect(tty.result).toEqual(quiet.result);
  });

  it('every matmul variant gives the same numbers', async () => {
    const golden = readGolden('llama');
    const data = jsonl('variants.jsonl', golden.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels })));
    const naive = await evaluate(['--model', model('llama'), '--data', data], { matmul: 'naive' });
    const tiled = await evaluate(['--model', model('llama'), '--data', data], { matmul: 'tiled' });
    expect(tiled.result.tokens).toBe(naive.result.tokens);
    expect(rel(tiled.result.loss, naive.result.loss)).toBeLessThan(1e-5);
  });
});

describe('eval: storage', () => {
  it('--quant nf4: a finite loss near the f32 one, and not equal to it', async () => {
    const golden = readGolden('llama');
    const data = jsonl('nf4.jsonl', golden.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels })));
    const { result } = await evaluate(['--model', model('llama'), '--data', data, '--quant', 'nf4']);
    expect(result.tokens).toBe(golden.tokens);
    expect(Number.isFinite(result.loss)).toBe(true);
    expect(result.loss).not.toBe(golden.loss);
    expect(rel(result.loss, golden.loss)).toBeGreaterThan(1e-6);
    expect(rel(result.loss, golden.loss)).toBeLessThan(0.05);
  });

  it('--dtype f16 on an f16 checkpoint where the adapter has shader-f16', async (ctx) => {
    if (!e.gpu.hasF16) {
      console.log(`skipped --dtype f16: ${e.gpu.adapter.name} has no shader-f16`);
      ctx.skip();
    }
    const golden = readGolden('gpt2-f16');
    const data = jsonl('f16.jsonl', golden.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels })));
    const { result } = await evaluate(['--model', model('gpt2-f16'), '--data', data, '--dtype', 'f16']);
    expect(result.tokens).toBe(golden.tokens);
    expect(rel(result.loss, golden.loss)).toBeLessThan(1e-4);
  });
});

describe.each(['gpt2', 'llama'])('eval --adapter (a PEFT adapter trained by the golden script): %s', (name) => {
  const adapterDir = join(FIXTURES, 'golden', `train_${name}_adapter`);
  const goldenFile = join(FIXTURES, 'golden', `train_${name}.json`);

  it('folder and .zip both give the loss PEFT computed with that adapter', async (ctx) => {
    if (!existsSync(adapterDir) || !existsSync(goldenFile)) {
      console.log(`skipped: ${adapterDir} or ${goldenFile} is missing (scripts/golden_train.py writes them)`);
      ctx.skip();
    }
    const golden = JSON.parse(readFileSync(goldenFile, 'utf8')) as { rows: GoldenRow[]; tokens: number; final_loss: number; steps: { loss: number }[] };
    const data = jsonl(`adapter-${name}.jsonl`, golden.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels })));
    const base = await evaluate(['--model', model(name), '--data', data]);
    // The base model's loss is step 1's loss (B = 0 there): the adapter must move it to final_loss.
    expect(rel(base.result.loss, golden.steps[0].loss)).toBeLessThan(1e-4);

    const folder = await evaluate(['--model', model(name), '--data', data, '--adapter', adapterDir]);
    expect(folder.result.tokens).toBe(golden.tokens);
    expect(rel(folder.result.loss, golden.final_loss)).toBeLessThan(1e-4);

    const zip = join(dir, `adapter-${name}.zip`);
    writeFileSync(zip, zipSync({
      'adapter_config.json': readFileSync(join(adapterDir, 'adapter_config.json')),
      'adapter_model.safetensors': readFileSync(join(adapterDir, 'adapter_model.safetensors')),
    }));
    const zipped = await evaluate(['--model', model(name), '--data', data, '--adapter', zip]);
    expect(zipped.result).toEqual(folder.result);

    // The adapter is removed again afterwards: the same engine evaluates the base model as before.
    const again = await evaluate(['--model', model(name), '--data', data]);
    expect(again.result).toEqual(base.result);
  });

  it('--adapter bomb.zip (1 GiB of zeros in ~1 MiB, declared as 1 MB) stops at the declared size with the entry named (issue 14)', async (ctx) => {
    if (!existsSync(adapterDir)) {
      console.log(`skipped: ${adapterDir} is missing (scripts/golden_train.py writes it)`);
      ctx.skip();
    }
    const bomb = join(dir, `bomb-${name}.zip`);
    const config = readFileSync(join(adapterDir, 'adapter_config.json'));
    writeFileSync(bomb, rawZip([deflated('adapter_config.json', config), { name: 'adapter_model.safetensors', data: zeroBomb(1024), size: 1_000_000, crc: 0 }]));
    const data = jsonl(`bomb-${name}.jsonl`, [{ text: 'hello world' }]);
    const before = process.memoryUsage().arrayBuffers;
    await expect(evaluate(['--model', model(name), '--data', data, '--adapter', bomb])).rejects.toThrow(
      `${bomb}: entry "adapter_model.safetensors": inflates past its declared 1000000 bytes (a lying or damaged archive); stopped there`,
    );
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(256 << 20);
  });
});

describe('the built CLI', () => {
  it('node bin/lora-studio.mjs eval prints the golden loss; an error exits 1 with one line', (ctx) => {
    const bundle = join(process.cwd(), 'dist-cli', 'cli.mjs');
    if (!existsSync(bundle)) {
      console.log('skipped: dist-cli/cli.mjs is missing (run `npm run build:cli`)');
      ctx.skip();
    }
    const golden = readGolden('gpt2');
    const data = jsonl('bundle.jsonl', golden.rows.map((r) => ({ input_ids: r.input_ids, labels: r.labels })));
    const env = { ...process.env, LORA_STUDIO_MATMUL: 'naive', LORA_STUDIO_CACHE_DIR: join(dir, 'cache') };
    const bin = join(process.cwd(), 'bin', 'lora-studio.mjs');
    const ok = spawnSync(process.execPath, [bin, 'eval', '--model', model('gpt2'), '--data', data], { env, encoding: 'utf8', timeout: 100_000 });
    expect(ok.status, ok.stderr).toBe(0);
    const last = JSON.parse(ok.stdout.trim().split('\n').at(-1)!);
    expect(last.tokens).toBe(golden.tokens);
    expect(rel(last.loss, golden.loss)).toBeLessThan(1e-4);

    const bad = spawnSync(process.execPath, [bin, 'eval', '--model', dir, '--data', data], { env, encoding: 'utf8', timeout: 100_000 });
    expect(bad.status).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trim()).toBe(`error: ${dir}/config.json: not found`);

    // Issue 14's report, as it was run: a zip bomb as --adapter, here in a child with a 256 MB heap.
    const bomb = join(dir, 'bomb-cli.zip');
    const config = readFileSync(join(FIXTURES, 'golden', 'train_gpt2_adapter', 'adapter_config.json'));
    writeFileSync(bomb, rawZip([deflated('adapter_config.json', config), { name: 'adapter_model.safetensors', data: zeroBomb(1024), size: 1_000_000, crc: 0 }]));
    const bombed = spawnSync(process.execPath, ['--max-old-space-size=256', bin, 'eval', '--model', model('gpt2'), '--data', data, '--adapter', bomb], { env, encoding: 'utf8', timeout: 100_000 });
    expect(bombed.status, bombed.stderr).toBe(1);
    expect(bombed.stderr.trim().split('\n').at(-1)).toBe(`error: ${bomb}: entry "adapter_model.safetensors": inflates past its declared 1000000 bytes (a lying or damaged archive); stopped there`);
  });
});
