import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Checkpoint } from '../model/checkpoint.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import type { CliIo } from './load.ts';
import { main } from './main.ts';
import { mergeCommand } from './merge.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function captured(): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, stdout: (l) => void out.push(l), stderr: (l) => void err.push(l), progress: () => {}, tty: false };
}

describe('lora-studio merge', () => {
  it('writes a plain model folder: the base tensors (as f16), config.json and the tokenizer, no partial files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'merge-'));
    dirs.push(dir);
    const out = join(dir, 'merged');
    const io = captured();
    await mergeCommand(
      ['--model', join(FIXTURES, 'models', 'llama'), '--adapter', join(FIXTURES, 'golden', 'train_llama_adapter'), '--out', out],
      io,
    );
    const files = (await readdir(out)).sort();
    expect(files).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']));
    expect(files.some((f) => f.endsWith('.partial'))).toBe(false);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config.dtype ?? config.torch_dtype).toBe('float16');
    const merged = await Checkpoint.open(nodeFolder(out));
    const base = await Checkpoint.open(nodeFolder(join(FIXTURES, 'models', 'llama')));
    expect(merged.names().sort()).toEqual(base.names().sort());
    expect(new Set(merged.names().map((n) => merged.info(n).dtype))).toEqual(new Set(['F16']));
    await merged.close();
    await base.close();
    expect(JSON.parse(io.out.at(-1)!)).toMatchObject({ dtype: 'f16', rank: 4 });
  });

  it('refuses to overwrite a model, and names a missing adapter', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'merge-'));
    dirs.push(dir);
    const model = join(FIXTURES, 'models', 'llama');
    await expect(mergeCommand(['--model', model, '--adapter', join(FIXTURES, 'golden', 'train_llama_adapter'), '--out', model], captured())).rejects.toThrow(
      /already holds a model\.safetensors/,
    );
    const errors: string[] = [];
    const original = console.error;
    console.error = (m: string) => void errors.push(m);
    try {
      expect(await main(['merge', '--model', model, '--adapter', join(dir, 'nope'), '--out', join(dir, 'o')])).toBe(1);
    } finally {
      console.error = original;
    }
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^error: .*nope/);
  });
});
