// An independent reader: the files we write parse in Hugging Face's @huggingface/gguf (the Hub's GGUF parser) with
// the value types llama.cpp expects (UINT32 hyperparameters, FLOAT32 epsilon and LoRA alpha, STRING arrays).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gguf, GGUFValueType } from '@huggingface/gguf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readModelConfig } from '../model/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { importAdapter } from '../train/peft.ts';
import { exportAdapterGguf, exportGguf } from './gguf-model.ts';
import type { GgufFile } from './gguf.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gguf-hf-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function save(file: GgufFile, name: string): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (const c of file.chunks()) parts.push(c.slice());
  const path = join(dir, name);
  await writeFile(path, Buffer.concat(parts));
  return path;
}

describe('@huggingface/gguf reads our files', () => {
  it('a llama q8_0 model: metadata with their types, every tensor with its shape and type', async () => {
    const ex = await exportGguf(nodeFolder(join(FIXTURES, 'models', 'llama')), { type: 'q8_0' });
    const path = await save(ex.file, 'llama.gguf');
    await ex.close();
    const parsed = await gguf(path, { allowLocalFile: true, typedMetadata: true });
    const { typedMetadata, tensorInfos } = parsed;
    const metadata = parsed.metadata as unknown as Record<string, unknown>;
    expect(metadata['general.architecture']).toBe('llama');
    expect(typedMetadata['llama.block_count']).toEqual({ type: GGUFValueType.UINT32, value: 2 });
    expect(typedMetadata['llama.attention.layer_norm_rms_epsilon']?.type).toBe(GGUFValueType.FLOAT32);
    expect(typedMetadata['tokenizer.ggml.tokens']).toMatchObject({ type: GGUFValueType.ARRAY, subType: GGUFValueType.STRING });
    expect((metadata['tokenizer.ggml.tokens'] as string[]).length).toBe(400);
    expect(tensorInfos.map((t) => t.name)).toEqual(ex.tensors.map((t) => t.name));
    const q = tensorInfos.find((t) => t.name === 'blk.0.attn_q.weight')!;
    expect(q.shape).toEqual([32n, 32n]);
    expect(q.dtype).toBe(8); // Q8_0
    expect(tensorInfos.find((t) => t.name === 'output_norm.weight')!.dtype).toBe(0); // F32
  });

  it('a LoRA adapter: general.type, adapter.lora.alpha as FLOAT32, lora_a/lora_b shapes', async () => {
    const config = await readModelConfig(nodeFolder(join(FIXTURES, 'models', 'qwen3')));
    const adapter = await importAdapter(nodeFolder(join(FIXTURES, 'golden', 'train_qwen3_adapter')), config);
    const path = await save(exportAdapterGguf(config, adapter).file, 'adapter.gguf');
    const parsed = await gguf(path, { allowLocalFile: true, typedMetadata: true });
    const { typedMetadata, tensorInfos } = parsed;
    const metadata = parsed.metadata as unknown as Record<string, unknown>;
    expect(metadata['general.type']).toBe('adapter');
    expect(metadata['adapter.type']).toBe('lora');
    expect(typedMetadata['adapter.lora.alpha']).toEqual({ type: GGUFValueType.FLOAT32, value: adapter.alpha });
    const a = tensorInfos.find((t) => t.name.endsWith('.lora_a'))!;
    const b = tensorInfos.find((t) => t.name === a.name.replace('lora_a', 'lora_b'))!;
    expect(a.shape[1]).toBe(BigInt(adapter.rank));
    expect(b.shape[0]).toBe(BigInt(adapter.rank));
  });
});
