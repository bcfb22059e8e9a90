import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseGguf } from '../export/gguf.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { exportGgufCommand } from './export-gguf.ts';
import type { CliIo } from './load.ts';

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
const ADAPTER = join(FIXTURES, 'golden', 'train_llama_adapter');

describe('lora-studio export-gguf', () => {
  it('merged: one GGUF of the requested type and a Modelfile beside it, no partial files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'export-gguf-'));
    dirs.push(dir);
    const io = captured();
    await exportGgufCommand(['--model', join(FIXTURES, 'models', 'qwen2'), '--out', join(dir, 'model.gguf'), '--type', 'q8_0'], io);
    expect((await readdir(dir)).sort()).toEqual(['model.Modelfile', 'model.gguf']);
    const p = parseGguf(new Uint8Array(await readFile(join(dir, 'model.gguf'))));
    expect(p.metadata.get('general.architecture')).toBe('qwen2');
    expect(p.metadata.get('general.file_type')).toBe(7);
    expect(p.tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.type).toBe(8); // Q8_0
    expect(p.tensors.find((t) => t.name === 'blk.0.attn_q.bias')!.type).toBe(0); // biases stay F32
    const modelfile = await readFile(join(dir, 'model.Modelfile'), 'utf8');
    expect(modelfile).toContain('FROM ./model.gguf\n');
    expect(modelfile).toContain('TEMPLATE """');
    expect(modelfile).toContain('PARAMETER stop "<|im_end|>"');
    expect(JSON.parse(io.out.at(-1)!)).toMatchObject({ type: 'q8_0', merged: false, template: 'chatml' });
  });

  it('--lora-out: the base model unmerged, the adapter as a GGUF LoRA adapter, the Modelfile with ADAPTER', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'export-gguf-'));
    dirs.push(dir);
    const io = captured();
    await exportGgufCommand(['--model', LLAMA, '--adapter', ADAPTER, '--out', join(dir, 'base.gguf'), '--lora-out', join(dir, 'adapter.gguf'), '--type', 'f32'], io);
    const lora = parseGguf(new Uint8Array(await readFile(join(dir, 'adapter.gguf'))));
    expect(lora.metadata.get('general.type')).toBe('adapter');
    const modelfile = await readFile(join(dir, 'base.Modelfile'), 'utf8');
    expect(modelfile).toContain('FROM ./base.gguf\nADAPTER ./adapter.gguf\n');
    expect(JSON.parse(io.out.at(-1)!)).toMatchObject({ merged: false, loraOut: join(dir, 'adapter.gguf') });
  });

  it('refuses to overwrite without --force, --lora-out without --adapter, an unknown --type', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'export-gguf-'));
    dirs.push(dir);
    await writeFile(join(dir, 'x.gguf'), 'old');
    await expect(exportGgufCommand(['--model', LLAMA, '--out', join(dir, 'x.gguf')], captured())).rejects.toThrow(/already exists \(--force overwrites\)/);
    await expect(exportGgufCommand(['--model', LLAMA, '--out', join(dir, 'y.gguf'), '--lora-out', join(dir, 'z.gguf')], captured())).rejects.toThrow(/--lora-out needs --adapter/);
    await expect(exportGgufCommand(['--model', LLAMA, '--out', join(dir, 'y.gguf'), '--type', 'q4_0'], captured())).rejects.toThrow(/Should be one of: f32, f16, q8_0/);
    expect(await readFile(join(dir, 'x.gguf'), 'utf8')).toBe('old');
  });
});
