import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadJsonlDataset, type DatasetRow } from '../data/index.ts';
import { chatRows } from '../export/trl-testing.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { FakeHub } from '../model/sources/testing-hub-server.ts';
import { exportTrlCommand } from './export-trl.ts';
import { openModelFolder, type CliIo } from './load.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function captured(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (l) => void out.push(l), stderr: (l) => void err.push(l), progress: () => {}, tty: false };
}

const LLAMA = join(FIXTURES, 'models', 'llama');

async function tmp(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'export-trl-'));
  dirs.push(dir);
  return dir;
}

async function rowsOf(path: string, maxLength: number): Promise<DatasetRow[]> {
  const folder = await openModelFolder(LLAMA);
  const { rows } = await loadJsonlDataset(createReadStream(path), { tokenizer: folder.tokenizer, template: folder.template, maxLength, vocabSize: 400 });
  return rows;
}

const plain = (rows: DatasetRow[]) => rows.map((r) => ({ input_ids: Array.from(r.input_ids), labels: Array.from(r.labels) }));

describe('lora-studio export-trl', () => {
  it('writes the rows as the trainer sees them, their source lines in the same order, train.py, configs and README', async () => {
    const dir = await tmp();
    const data = join(dir, 'data.jsonl');
    await writeFile(data, chatRows(12));
    const out = join(dir, 'export');
    const io = captured();
    await exportTrlCommand(
      ['--model', LLAMA, '--data', data, '--out', out, '--eval-split', '0.25', '--rank', '4', '--alpha', '8', '--targets', 'attention', '--rslora', '--lora-plus', '16', '--steps', '5', '--max-len', '80', '--seed', '7'],
      io,
    );
    const summary = JSON.parse(io.out.at(-1)!);
    expect(summary).toMatchObject({ method: 'lora', train_rows: 9, eval_rows: 3, steps_one_process: 5 });
    expect((await readdir(out)).sort()).toEqual(['README.md', 'accelerate', 'data', 'requirements.txt', 'run.json', 'train.py']);
    expect((await readdir(join(out, 'data'))).sort()).toEqual(['eval.jsonl', 'eval.source.jsonl', 'train.jsonl', 'train.source.jsonl']);
    expect((await readdir(join(out, 'accelerate'))).sort()).toEqual(['ddp.yaml', 'deepspeed_zero2.yaml', 'deepspeed_zero3.yaml', 'fsdp.yaml']);

    const run = JSON.parse(await readFile(join(out, 'run.json'), 'utf8'));
    expect(run.model.id).toBe(LLAMA);
    expect(run.config).toMatchObject({ rank: 4, alpha: 8, rslora: true, loraPlusRatio: 16, maxSteps: 5, maxLength: 80, seed: 7, evalSplit: 0.25 });
    expect(run.method).toEqual({
      method: 'lora',
      lora: { task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['k_proj', 'o_proj', 'q_proj', 'v_proj'], use_rslora: true, fan_in_fan_out: false, bias: 'none' },
      quantization: null,
      loraplus_lr_ratio: 16,
    });

    // Every exported row is the row the project's loader makes of its source line (template, masking, truncation),
    // and train + eval are the file's usable rows, each once.
    for (const set of ['train', 'eval']) {
      const exported = await rowsOf(join(out, 'data', `${set}.jsonl`), 80);
      const fromSource = await rowsOf(join(out, 'data', `${set}.source.jsonl`), 80);
      expect(plain(exported)).toEqual(plain(fromSource));
      expect(exported.every((r) => r.labels.some((l) => l === -100))).toBe(true); // prompts masked
    }
    const all = plain(await rowsOf(data, 80)).map((r) => JSON.stringify(r)).sort();
    const both = [...plain(await rowsOf(join(out, 'data', 'train.jsonl'), 80)), ...plain(await rowsOf(join(out, 'data', 'eval.jsonl'), 80))];
    expect(both.map((r) => JSON.stringify(r)).sort()).toEqual(all);
    expect(all).toHaveLength(12);

    expect(await readFile(join(out, 'train.py'), 'utf8')).toContain('SFTTrainer(');
    expect(await readFile(join(out, 'accelerate', 'deepspeed_zero3.yaml'), 'utf8')).toContain("deepspeed_config:\n  deepspeed_multinode_launcher: 'standard'\n");
    const readme = await readFile(join(out, 'README.md'), 'utf8');
    expect(readme).toContain('accelerate launch --config_file accelerate/ddp.yaml train.py');
    expect(readme).toMatch(/\*\*Untested\*\*.*fsdp\.yaml/s);
    expect(await readFile(join(out, 'requirements.txt'), 'utf8')).toContain('trl==1.13.0\n');
  });

  it('qlora: NF4 through bitsandbytes with the double quantization asked; --eval-data rows keep their own file', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'train.jsonl'), chatRows(4));
    await writeFile(join(dir, 'eval.jsonl'), chatRows(2));
    // chatRows(2) has no bad line: the eval source is the whole file.
    const io = captured();
    await exportTrlCommand(['--model', LLAMA, '--data', join(dir, 'train.jsonl'), '--eval-data', join(dir, 'eval.jsonl'), '--out', join(dir, 'x'), '--method', 'qlora', '--double-quant', '--targets', 'all-linear'], io);
    const run = JSON.parse(await readFile(join(dir, 'x', 'run.json'), 'utf8'));
    expect(run.method.quantization).toEqual({ load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true });
    expect(run.method.lora.target_modules).toBe('all-linear');
    expect(run.data).toMatchObject({ train_rows: 4, eval_rows: 2 });
    const evalSource = (await readFile(join(dir, 'x', 'data', 'eval.source.jsonl'), 'utf8')).trim().split('\n');
    expect(evalSource).toEqual(chatRows(2).trim().split('\n'));
    // The base's quantization is its own flag too: --quant nf4 is the same QLoRA.
    await exportTrlCommand(['--model', LLAMA, '--data', join(dir, 'train.jsonl'), '--out', join(dir, 'y'), '--quant', 'nf4'], captured());
    expect(JSON.parse(await readFile(join(dir, 'y', 'run.json'), 'utf8')).method).toMatchObject({
      method: 'qlora',
      quantization: { bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: false },
    });
  });

  it('--model ORG/NAME: config and tokenizer from the Hub ($HF_ENDPOINT, into $LORA_STUDIO_CACHE), no weights; train.py loads the id', async () => {
    const dir = await tmp();
    const hub = await new FakeHub().start();
    const files: Record<string, Uint8Array> = {};
    for (const name of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) files[name] = new Uint8Array(await readFile(join(LLAMA, name)));
    hub.addRepo('org/tiny-llama', { files });
    const saved = { endpoint: process.env.HF_ENDPOINT, cache: process.env.LORA_STUDIO_CACHE };
    process.env.HF_ENDPOINT = hub.baseUrl;
    process.env.LORA_STUDIO_CACHE = join(dir, 'cache');
    try {
      await writeFile(join(dir, 'data.jsonl'), chatRows(4));
      const io = captured();
      await exportTrlCommand(['--model', 'org/tiny-llama', '--data', join(dir, 'data.jsonl'), '--out', join(dir, 'x')], io);
      expect(JSON.parse(await readFile(join(dir, 'x', 'run.json'), 'utf8')).model).toEqual({ id: 'org/tiny-llama', model_type: 'llama' });
      // The same rows as from the folder.
      await exportTrlCommand(['--model', LLAMA, '--data', join(dir, 'data.jsonl'), '--out', join(dir, 'y')], captured());
      expect(await readFile(join(dir, 'x', 'data', 'train.jsonl'), 'utf8')).toBe(await readFile(join(dir, 'y', 'data', 'train.jsonl'), 'utf8'));
      expect(hub.requests.some((r) => r.path === 'model.safetensors')).toBe(false);
      expect(io.err.join('\n')).toContain(`org/tiny-llama is not a folder here: reading its config and tokenizer from ${hub.baseUrl}`);
    } finally {
      if (saved.endpoint === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved.endpoint;
      if (saved.cache === undefined) delete process.env.LORA_STUDIO_CACHE;
      else process.env.LORA_STUDIO_CACHE = saved.cache;
      await hub.stop();
    }
  });

  it('refuses a non-empty --out without --force, train-only and unknown flags, eval flags without an eval set; names the flag', async () => {
    const dir = await tmp();
    const data = join(dir, 'data.jsonl');
    await writeFile(data, chatRows(4));
    await writeFile(join(dir, 'keep.txt'), 'x');
    await expect(exportTrlCommand(['--model', LLAMA, '--data', data, '--out', dir], captured())).rejects.toThrow(`export-trl: --out ${dir} is not empty (--force writes into it)`);
    const out = join(dir, 'o');
    await expect(exportTrlCommand(['--model', LLAMA, '--data', data, '--out', out, '--resume'], captured())).rejects.toThrow(/export-trl: Unknown option '--resume'/);
    await expect(exportTrlCommand(['--model', LLAMA, '--data', data, '--out', out, '--bogus', '1'], captured())).rejects.toThrow(/Unknown option '--bogus'/);
    await expect(exportTrlCommand(['--model', LLAMA, '--data', data, '--out', out, '--rank', '0'], captured())).rejects.toThrow(/^export-trl: --rank "0": must be an integer/);
    await expect(exportTrlCommand(['--model', LLAMA, '--data', data, '--out', out, '--early-stopping', '2'], captured())).rejects.toThrow(/--early-stopping needs an eval set/);
    await expect(exportTrlCommand(['--model', LLAMA, '--data', data, '--out', out, '--targets', 'q_proj,nope'], captured())).rejects.toThrow(/^export-trl: --targets q_proj,nope: /);
    await expect(exportTrlCommand(['--model', join(dir, 'missing'), '--data', data, '--out', out], captured())).rejects.toThrow(/missing: no such folder/);
  });
});
