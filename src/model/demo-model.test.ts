// The bundled demo model (public/models/demo-llama, written by scripts/pretrain_demo.py), the sample datasets
// (public/datasets, written by scripts/make_sample_datasets.py) and the e2e fixtures are committed files that the
// app, its demo and its e2e suite rely on offline: these tests pin down what they promise.
//
// The safetensors header is parsed by hand here (8-byte little-endian length, then JSON) rather than through
// ./safetensors.ts (./testing-safetensors.ts), so a bug there cannot hide a bad file here.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { ChatTemplate, FALLBACK_CHAT_TEMPLATE } from './chat-template.ts';
import { HfTokenizer } from './tokenizer.ts';
import { rawSafetensorsHeaderOfFile, type RawHeaderEntry } from './testing-safetensors.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MODEL_DIR = join(ROOT, 'public', 'models', 'demo-llama');
const DATASETS_DIR = join(ROOT, 'public', 'datasets');
const FIXTURES_DIR = join(ROOT, 'e2e', 'fixtures');

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

function readSafetensorsHeader(path: string): { tensors: Map<string, RawHeaderEntry>; headerLength: number; fileSize: number } {
  const { header, headerLength, fileSize } = rawSafetensorsHeaderOfFile(path);
  const tensors = new Map(Object.entries(header).filter(([name]) => name !== '__metadata__') as [string, RawHeaderEntry][]);
  return { tensors, headerLength, fileSize };
}

const product = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

describe('bundled demo model (public/models/demo-llama)', () => {
  const config = readJson(join(MODEL_DIR, 'config.json'));
  const { tensors, headerLength, fileSize } = readSafetensorsHeader(join(MODEL_DIR, 'model.safetensors'));

  it('is a small float16 Llama with grouped-query attention and tied embeddings', () => {
    expect(config.model_type).toBe('llama');
    expect(config.architectures).toEqual(['LlamaForCausalLM']);
    expect(config.torch_dtype).toBe('float16');
    expect(config.tie_word_embeddings).toBe(true);
    expect(config.num_key_value_heads).toBeLessThan(config.num_attention_heads);
    expect(config.num_attention_heads % config.num_key_value_heads).toBe(0);
    expect(config.max_position_embeddings).toBe(256);
    expect(config.bos_token_id ?? null).toBeNull();
  });

  it('stores 1–5M parameters, all F16, laid out back to back', () => {
    let params = 0;
    const spans: [number, number][] = [];
    for (const [name, t] of tensors) {
      expect(t.dtype, name).toBe('F16');
      params += product(t.shape);
      expect(t.data_offsets[1] - t.data_offsets[0], name).toBe(product(t.shape) * 2);
      spans.push(t.data_offsets);
    }
    spans.sort((a, b) => a[0] - b[0]);
    spans.forEach((span, i) => expect(span[0]).toBe(i === 0 ? 0 : spans[i - 1][1]));
    expect(8 + headerLength + spans[spans.length - 1][1]).toBe(fileSize);

    expect(params).toBeGreaterThanOrEqual(1_000_000);
    expect(params).toBeLessThanOrEqual(5_000_000);
  });

  it('holds exactly the tensors its config describes (tied head: no lm_head.weight)', () => {
    const { hidden_size: h, intermediate_size: ff, num_hidden_layers: layers, vocab_size: vocab } = config;
    const headDim = config.head_dim ?? h / config.num_attention_heads;
    const q = config.num_attention_heads * headDim;
    const kv = config.num_key_value_heads * headDim;
    const expected = new Map<string, number[]>([
      ['model.embed_tokens.weight', [vocab, h]],
      ['model.norm.weight', [h]],
    ]);
    for (let l = 0; l < layers; l++) {
      const p = `model.layers.${l}.`;
      expected.set(p + 'input_layernorm.weight', [h]);
      expected.set(p + 'post_attention_layernorm.weight', [h]);
      expected.set(p + 'self_attn.q_proj.weight', [q, h]);
      expected.set(p + 'self_attn.k_proj.weight', [kv, h]);
      expected.set(p + 'self_attn.v_proj.weight', [kv, h]);
      expected.set(p + 'self_attn.o_proj.weight', [h, q]);
      expected.set(p + 'mlp.gate_proj.weight', [ff, h]);
      expected.set(p + 'mlp.up_proj.weight', [ff, h]);
      expected.set(p + 'mlp.down_proj.weight', [h, ff]);
    }
    expect(new Set(tensors.keys())).toEqual(new Set(expected.keys()));
    for (const [name, shape] of expected) expect(tensors.get(name)?.shape, name).toEqual(shape);
  });

  it('has a tokenizer whose vocabulary is config.vocab_size, with the ChatML special tokens at 0, 1, 2', () => {
    const tokenizerJson = readJson(join(MODEL_DIR, 'tokenizer.json'));
    const tokenizerConfig = readJson(join(MODEL_DIR, 'tokenizer_config.json'));
    let maxId = -1;
    for (const id of Object.values(tokenizerJson.model.vocab as Record<string, number>)) maxId = Math.max(maxId, id);
    for (const t of tokenizerJson.added_tokens as { id: number }[]) maxId = Math.max(maxId, t.id);
    expect(maxId + 1).toBe(config.vocab_size);

    const tok = HfTokenizer.fromJson(tokenizerJson, tokenizerConfig);
    expect(tok.vocabSize).toBe(config.vocab_size);
    expect(['<|endoftext|>', '<|im_start|>', '<|im_end|>'].map((t) => tok.tokenToId(t))).toEqual([0, 1, 2]);
    expect(tok.special.eos?.content).toBe('<|im_end|>');
    expect(tok.special.bos).toBeNull();
    expect(config.eos_token_id).toBe(2);
  });

  it('renders ChatML through its own template and encodes it round-trip', () => {
    const tokenizerConfig = readJson(join(MODEL_DIR, 'tokenizer_config.json'));
    expect(tokenizerConfig.chat_template).toBe(FALLBACK_CHAT_TEMPLATE);
    const tok = HfTokenizer.fromJson(readJson(join(MODEL_DIR, 'tokenizer.json')), tokenizerConfig);
    const template = ChatTemplate.forTokenizer(tok);
    expect(template.origin).toBe('tokenizer_config.json');
    const text = template.render([{ role: 'user', content: 'What colour is the sky?' }], { addGenerationPrompt: true });
    expect(text).toBe('<|im_start|>user\nWhat colour is the sky?<|im_end|>\n<|im_start|>assistant\n');
    const ids = tok.encode(text, { addSpecialTokens: true });
    expect(ids[0]).toBe(1); // no BOS: the text starts with <|im_start|>
    expect(ids.filter((id) => id <= 2)).toEqual([1, 2, 1]);
    expect(Math.max(...ids)).toBeLessThan(config.vocab_size);
    expect(tok.decode(ids)).toBe(text);
  });

  it('stays small and says it is a demo model', () => {
    const files = readdirSync(MODEL_DIR);
    for (const f of ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'README.md']) {
      expect(files).toContain(f);
    }
    const total = files.reduce((sum, f) => sum + statSync(join(MODEL_DIR, f)).size, 0);
    expect(total).toBeLessThan(8 * 1024 * 1024);
    const card = readFileSync(join(MODEL_DIR, 'README.md'), 'utf8');
    expect(card).toMatch(/demo model/i);
    expect(card).toContain('scripts/pretrain_demo.py');
  });
});

// ---------------------------------------------------------------------------------------------------------------

type Row = Record<string, unknown>;

const ROW_CHECKS: Record<string, (row: Row) => void> = {
  messages(row) {
    expect(Object.keys(row)).toEqual(['messages']);
    const messages = row.messages as { role: unknown; content: unknown }[];
    expect(Array.isArray(messages) && messages.length >= 2).toBe(true);
    for (const m of messages) {
      expect(['system', 'user', 'assistant']).toContain(m.role);
      expect(typeof m.content === 'string' && m.content.length > 0).toBe(true);
    }
    expect(messages[messages.length - 1].role).toBe('assistant');
  },
  alpaca(row) {
    expect(Object.keys(row).sort()).toEqual(['input', 'instruction', 'output']);
    for (const k of ['instruction', 'input', 'output']) expect(typeof row[k]).toBe('string');
    expect((row.instruction as string).length).toBeGreaterThan(0);
    expect((row.output as string).length).toBeGreaterThan(0);
  },
  text(row) {
    expect(Object.keys(row)).toEqual(['text']);
    expect(typeof row.text === 'string' && row.text.length > 0).toBe(true);
  },
};

describe('sample datasets (public/datasets)', () => {
  const index = readJson(join(DATASETS_DIR, 'index.json')) as {
    datasets: { file: string; title: string; format: string; rows: number; bytes: number; description: string }[];
  };

  it('index.json lists every JSONL file in the folder, one of each format', () => {
    const listed = index.datasets.map((d) => d.file).sort();
    expect(listed).toEqual(readdirSync(DATASETS_DIR).filter((f) => f.endsWith('.jsonl')).sort());
    expect(index.datasets.map((d) => d.format).sort()).toEqual(['alpaca', 'messages', 'text']);
    for (const d of index.datasets) expect(d.title.length > 0 && d.description.length > 0).toBe(true);
  });

  for (const d of index.datasets) {
    it(`${d.file}: ${d.rows} rows of format "${d.format}", each line valid JSON with that format's keys`, () => {
      const bytes = readFileSync(join(DATASETS_DIR, d.file));
      expect(bytes.length).toBe(d.bytes);
      expect(bytes.length).toBeLessThanOrEqual(200_000);
      const lines = bytes.toString('utf8').split('\n');
      expect(lines.pop()).toBe(''); // ends with a newline, no blank lines before it
      expect(lines.length).toBe(d.rows);
      const check = ROW_CHECKS[d.format];
      expect(check, `unknown format ${d.format}`).toBeDefined();
      lines.forEach((line, i) => {
        let row: Row;
        try {
          row = JSON.parse(line);
        } catch (e) {
          throw new Error(`${d.file}:${i + 1}: ${(e as Error).message}`);
        }
        check(row);
      });
    });
  }
});

describe('e2e fixtures', () => {
  it('chat-with-bad-line.jsonl has 9 lines, only line 5 invalid JSON (as e2e/fixtures/README.md says)', () => {
    const lines = readFileSync(join(FIXTURES_DIR, 'chat-with-bad-line.jsonl'), 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(9);
    const bad: number[] = [];
    lines.forEach((line, i) => {
      try {
        ROW_CHECKS.messages(JSON.parse(line));
      } catch {
        bad.push(i + 1);
      }
    });
    expect(bad).toEqual([5]);
    expect(readFileSync(join(FIXTURES_DIR, 'README.md'), 'utf8')).toContain('**line 5**');
  });
});
