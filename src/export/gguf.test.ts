// The GGUF format at the byte level (hand-computed expectations, not only a round trip through our reader), Q8_0
// blocks as ggml computes them, llama.cpp's q/k permutation, the tensor names and metadata of each fixture, and the
// Ollama Modelfile. llama.cpp itself loads these files in gguf-llamacpp.gpu.test.ts.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from '../model/runtime/testing.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { readModelConfig } from '../model/load.ts';
import { dequantizeQ8_0, ggufFile, GgufError, parseGguf, quantizeQ8_0, readGgufTensor, type GgufFile } from './gguf.ts';
import { exportAdapterGguf, exportGguf, ggufTensorName, llama3RopeFactors, permuteRows, tokenizerMetadata } from './gguf-model.ts';
import { ollamaModelfile, recogniseChatTemplate } from './modelfile.ts';
import { importAdapter } from '../train/peft.ts';

async function whole(file: GgufFile): Promise<Uint8Array> {
  const out = new Uint8Array(file.size);
  let at = 0;
  for await (const c of file.chunks()) {
    out.set(c, at);
    at += c.length;
  }
  expect(at).toBe(file.size);
  return out;
}

describe('GGUF writer: bytes', () => {
  it('header, one key, one tensor, alignment and data laid out as ggml/docs/gguf.md', async () => {
    const file = ggufFile([{ key: 'a', value: { type: 'u32', value: 7 } }], [
      { name: 't', dims: [3], type: 'F32', f32Chunks: async function* () { yield new Float32Array([1, 2, 3]); } },
    ]);
    const b = await whole(file);
    const v = new DataView(b.buffer);
    expect(new TextDecoder().decode(b.subarray(0, 4))).toBe('GGUF');
    expect(v.getUint32(4, true)).toBe(3); // version
    expect(Number(v.getBigUint64(8, true))).toBe(1); // tensors
    expect(Number(v.getBigUint64(16, true))).toBe(1); // key/values
    expect(Number(v.getBigUint64(24, true))).toBe(1); // key length
    expect(b[32]).toBe('a'.charCodeAt(0));
    expect(v.getUint32(33, true)).toBe(4); // UINT32
    expect(v.getUint32(37, true)).toBe(7);
    expect(Number(v.getBigUint64(41, true))).toBe(1); // tensor name length
    expect(b[49]).toBe('t'.charCodeAt(0));
    expect(v.getUint32(50, true)).toBe(1); // n_dims
    expect(Number(v.getBigUint64(54, true))).toBe(3);
    expect(v.getUint32(62, true)).toBe(0); // GGML_TYPE_F32
    expect(Number(v.getBigUint64(66, true))).toBe(0); // offset in the data section
    // 74 header bytes, padded to 96; 12 data bytes padded to 32.
    expect(file.dataOffset).toBe(96);
    expect(b.length).toBe(96 + 32);
    expect([...b.subarray(74, 96)].every((x) => x === 0)).toBe(true);
    expect(new Float32Array(b.slice(96, 108).buffer)).toEqual(new Float32Array([1, 2, 3]));
  });

  it('strings, arrays, bools and floats; second tensor offsets aligned to 32; F16 values', async () => {
    const file = ggufFile(
      [
        { key: 'general.name', value: { type: 'string', value: 'é' } },
        { key: 'x.list', value: { type: 'string[]', value: ['a', 'bc'] } },
        { key: 'x.ids', value: { type: 'i32[]', value: [-1, 5] } },
        { key: 'x.flag', value: { type: 'bool', value: true } },
        { key: 'x.eps', value: { type: 'f32', value: 1e-5 } },
      ],
      [
        { name: 'a', dims: [5], type: 'F16', f32Chunks: async function* () { yield new Float32Array([1, -2, 0.5, 65504, 0]); } },
        { name: 'b', dims: [2, 2], type: 'F32', f32Chunks: async function* () { yield new Float32Array([1, 2]); yield new Float32Array([3, 4]); } },
      ],
    );
    const bytes = await whole(file);
    const p = parseGguf(bytes);
    expect(p.metadata.get('general.name')).toBe('é');
    expect(p.metadata.get('x.list')).toEqual(['a', 'bc']);
    expect(p.metadata.get('x.ids')).toEqual([-1, 5]);
    expect(p.metadata.get('x.flag')).toBe(true);
    expect(p.metadata.get('x.eps')).toBeCloseTo(1e-5, 10);
    expect(p.tensors.map((t) => t.offset - p.dataOffset)).toEqual([0, 32]);
    // f16 bits: 1 = 0x3c00, -2 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff.
    expect([...new Uint16Array(bytes.slice(p.dataOffset, p.dataOffset + 10).buffer)]).toEqual([0x3c00, 0xc000, 0x3800, 0x7bff, 0]);
    expect([...readGgufTensor(bytes, p.tensors[1])]).toEqual([1, 2, 3, 4]);
  });

  it('refuses a value outside f16, a short or long tensor, duplicate keys', async () => {
    const one = (values: number[], dims = [values.length], type: 'F16' | 'F32' = 'F16') =>
      whole(ggufFile([], [{ name: 'w', dims, type, f32Chunks: async function* () { yield new Float32Array(values); } }]));
    await expect(one([70000])).rejects.toThrow(/"w": value 70000 is outside the f16 range/);
    await expect(one([1, 2], [3], 'F32')).rejects.toThrow(/"w": its source gave 8 bytes' worth of values, expected 12/);
    await expect(one([1, 2, 3], [2], 'F32')).rejects.toThrow(/more than 2 values/);
    expect(() => ggufFile([{ key: 'k', value: { type: 'u32', value: 1 } }, { key: 'k', value: { type: 'u32', value: 2 } }], [])).toThrow(GgufError);
  });
});

describe('Q8_0 blocks', () => {
  it('d = max|x|/127 as f16, q = round(x/d) half away from zero, as quantize_row_q8_0_ref', () => {
    const x = new Float32Array(32);
    x[0] = 1.27;
    x[1] = -0.005; // -0.5 → -1 (away from zero)
    x[2] = 0.015; // 1.5 → 2
    x[3] = -1.27;
    const b = quantizeQ8_0(x);
    expect(b.length).toBe(34);
    const d = new DataView(b.buffer);
    expect(d.getUint16(0, true)).toBe(0x211f); // f16(0.01): exponent 2^-7, mantissa round(0.28·1024) = 287
    expect([d.getInt8(2), d.getInt8(3), d.getInt8(4), d.getInt8(5), d.getInt8(6)]).toEqual([127, -1, 2, -127, 0]);
    expect(dequantizeQ8_0(b)[0]).toBeCloseTo(1.27, 3);
  });

  it('streams across chunks that are not whole blocks; needs rows of 32', async () => {
    const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const file = ggufFile([], [{ name: 'q', dims: [32, 2], type: 'Q8_0', f32Chunks: async function* () { yield x.subarray(0, 20); yield x.subarray(20, 50); yield x.subarray(50); } }]);
    const bytes = await whole(file);
    const p = parseGguf(bytes);
    expect(bytes.slice(p.dataOffset, p.dataOffset + 68)).toEqual(quantizeQ8_0(x));
    const back = readGgufTensor(bytes, p.tensors[0]);
    for (let i = 0; i < 64; i++) expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(1 / 127 / 2 + 1e-3);
    expect(() => ggufFile([], [{ name: 'q', dims: [40], type: 'Q8_0', f32Chunks: async function* () {} }])).toThrow(/multiple of 32/);
  });
});

describe('llama.cpp conventions', () => {
  it("permutes each head's rows from the half-split to the interleaved rotary layout (LlamaModel.permute)", () => {
    // 2 heads of 4 rows, rows of 1: per head [0 1 | 2 3] → [0 2 1 3].
    expect([...permuteRows(Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 2, 1)]).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    // rows of 2 values move whole.
    expect([...permuteRows(Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3]), 1, 2)]).toEqual([0, 0, 2, 2, 1, 1, 3, 3]);
  });

  it('names tensors as llama.cpp (gguf-py MODEL_TENSOR)', () => {
    expect(ggufTensorName('embed.weight')).toBe('token_embd.weight');
    expect(ggufTensorName('layers.3.attn.qkv.bias')).toBe('blk.3.attn_qkv.bias');
    expect(ggufTensorName('layers.0.attn.o.weight')).toBe('blk.0.attn_output.weight');
    expect(ggufTensorName('layers.1.mlp_norm.weight')).toBe('blk.1.ffn_norm.weight');
    expect(ggufTensorName('layers.1.attn.k_norm.weight')).toBe('blk.1.attn_k_norm.weight');
    expect(ggufTensorName('final_norm.bias')).toBe('output_norm.bias');
  });

  it('llama3 rope factors: 1 for high frequencies, factor for low ones, smooth between', async () => {
    const config = await readModelConfig(nodeFolder(join(FIXTURES, 'models', 'llama-rope-scaling')));
    const f = llama3RopeFactors(config);
    expect(f.length).toBe(8);
    expect(f[0]).toBe(1);
    expect(f[7]).toBe(8);
    for (let i = 1; i < 8; i++) expect(f[i]).toBeGreaterThanOrEqual(f[i - 1]);
  });
});

describe('tokenizer metadata', () => {
  const meta = async (name: string) => {
    const dir = join(FIXTURES, 'models', name);
    const config = await readModelConfig(nodeFolder(dir));
    const t = tokenizerMetadata(config, await readFile(join(dir, 'tokenizer.json'), 'utf8'), await readFile(join(dir, 'tokenizer_config.json'), 'utf8'), null);
    return { ...t, get: (k: string) => t.kv.find((kv) => kv.key === k)?.value.value };
  };
  it('byte-level BPE → gpt2 with merges and the pre-tokenizer llama.cpp knows', async () => {
    const gpt2 = await meta('gpt2');
    expect(gpt2.model).toBe('gpt2');
    expect(gpt2.get('tokenizer.ggml.pre')).toBe('gpt-2');
    expect((gpt2.get('tokenizer.ggml.merges') as string[]).length).toBe(63);
    expect(gpt2.get('tokenizer.ggml.eos_token_id')).toBe(0);
    expect((await meta('qwen2')).get('tokenizer.ggml.pre')).toBe('qwen2');
    const llama3 = await meta('llama-rope-scaling');
    expect(llama3.get('tokenizer.ggml.pre')).toBe('llama-bpe');
    expect(llama3.get('tokenizer.ggml.add_bos_token')).toBe(true);
    expect(llama3.eosTokens).toEqual(['<|eot_id|>', '<|end_of_text|>']);
  });
  it('SentencePiece-style BPE (byte fallback) → llama with scores, BYTE and CONTROL types', async () => {
    const t = await meta('llama');
    expect(t.model).toBe('llama');
    expect(t.get('tokenizer.ggml.merges')).toBeUndefined();
    const tokens = t.get('tokenizer.ggml.tokens') as string[];
    const types = t.get('tokenizer.ggml.token_type') as Int32Array;
    expect(tokens.length).toBe(400);
    expect([types[0], types[1], types[2]]).toEqual([2, 3, 3]); // <unk> UNKNOWN, <s> </s> CONTROL
    expect(types[tokens.indexOf('<0x0A>')]).toBe(6);
    expect(t.get('tokenizer.ggml.add_bos_token')).toBe(true);
    const scores = t.get('tokenizer.ggml.scores') as Float32Array;
    expect(Math.min(...scores)).toBe(-63); // one score per merge, -rank
  });
});

describe('exported files', () => {
  it('qwen3 merged f16: names, dims (ggml order), 1-D tensors in F32, tied head left to token_embd, metadata', async () => {
    const ex = await exportGguf(nodeFolder(join(FIXTURES, 'models', 'qwen3')), { type: 'f16' });
    const bytes = await whole(ex.file);
    await ex.close();
    const p = parseGguf(bytes);
    const byName = new Map(p.tensors.map((t) => [t.name, t]));
    expect(byName.has('output.weight')).toBe(false);
    expect(byName.get('token_embd.weight')).toMatchObject({ dims: [32, 368], type: 1 });
    expect(byName.get('blk.0.attn_q.weight')).toMatchObject({ dims: [32, 64], type: 1 });
    expect(byName.get('blk.0.attn_k_norm.weight')).toMatchObject({ dims: [16], type: 0 });
    expect(byName.get('blk.1.ffn_down.weight')).toMatchObject({ dims: [64, 32], type: 1 });
    expect(p.metadata.get('general.architecture')).toBe('qwen3');
    expect(p.metadata.get('qwen3.attention.key_length')).toBe(16);
    expect(p.metadata.get('qwen3.rope.freq_base')).toBe(1e6);
    expect(p.metadata.get('general.file_type')).toBe(1);
    expect(p.metadata.get('tokenizer.chat_template')).toContain('<|im_start|>');
  });

  it('gpt2: Conv1D transposed to [out, in], output duplicated from wte, LayerNorm biases', async () => {
    const ex = await exportGguf(nodeFolder(join(FIXTURES, 'models', 'gpt2')), { type: 'f32' });
    const bytes = await whole(ex.file);
    await ex.close();
    const p = parseGguf(bytes);
    const t = (n: string) => p.tensors.find((x) => x.name === n)!;
    expect(t('blk.0.attn_qkv.weight').dims).toEqual([32, 96]);
    expect(readGgufTensor(bytes, t('output.weight'))).toEqual(readGgufTensor(bytes, t('token_embd.weight')));
    expect(t('output_norm.bias').dims).toEqual([32]);
    expect(p.metadata.get('gpt2.attention.layer_norm_epsilon')).toBeCloseTo(1e-5, 10);
  });

  it('adapter: general.type adapter, alpha as FLOAT32, lora_a [in, r] and lora_b [r, out] per module', async () => {
    const config = await readModelConfig(nodeFolder(join(FIXTURES, 'models', 'llama')));
    const adapter = await importAdapter(nodeFolder(join(FIXTURES, 'golden', 'train_llama_adapter')), config);
    const { file } = exportAdapterGguf(config, { ...adapter, rslora: true });
    const p = parseGguf(await whole(file));
    expect(p.metadata.get('general.type')).toBe('adapter');
    expect(p.metadata.get('adapter.type')).toBe('lora');
    expect(p.metadata.get('adapter.lora.alpha')).toBeCloseTo(adapter.alpha * Math.sqrt(adapter.rank), 5);
    const a = p.tensors.find((t) => t.name === 'blk.0.attn_q.weight.lora_a')!;
    const b = p.tensors.find((t) => t.name === 'blk.0.attn_q.weight.lora_b')!;
    expect(a.dims).toEqual([32, adapter.rank]);
    expect(b.dims).toEqual([adapter.rank, 32]);
    expect(p.tensors.length).toBe(2 * adapter.modules.length);
  });
});

describe('Ollama Modelfile', () => {
  it('ChatML and Llama 3 get a TEMPLATE; others are left out and said so', () => {
    const chatml = ollamaModelfile({ model: './m.gguf', adapter: './a.gguf', chatTemplate: '{{ "<|im_start|>" }}…<|im_end|>', stops: ['<|im_end|>'] });
    expect(chatml.template).toBe('chatml');
    expect(chatml.text).toContain('FROM ./m.gguf\nADAPTER ./a.gguf\nTEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}');
    expect(chatml.text).toContain('PARAMETER stop "<|im_end|>"\nPARAMETER stop "<|im_start|>"\n');
    const other = ollamaModelfile({ model: './m.gguf', chatTemplate: '[INST] {{ message }} [/INST]', stops: ['</s>'] });
    expect(other.template).toBeNull();
    expect(other.text).not.toContain('TEMPLATE """');
    expect(other.text).toContain('# TEMPLATE left out');
    expect(recogniseChatTemplate('<|start_header_id|>x<|eot_id|>')).toBe('llama3');
  });
});
