// Our tokenizer against transformers / tokenizers goldens (scripts/golden_tokenizers.py) on real
// tokenizer.json files: GPT-2 byte-level BPE, Llama 3 (with and without a BOS post-processor), Qwen3.

import { describe, expect, it } from 'vitest';
import golden from './golden/tokenizers.json';
import { HfTokenizer, TokenizerError } from './tokenizer.ts';
import { loadTestTokenizer, type TestTokenizerName } from './testing-tokenizers.ts';

interface TextRecord {
  text: string;
  ids: number[];
  ids_no_special: number[];
  decoded: string;
  decoded_skip_special: string;
}
interface TokenizerRecord {
  special: { bos: string | null; eos: string | null; pad: string | null; unk: string | null;
    bos_id: number | null; eos_id: number | null; pad_id: number | null; unk_id: number | null };
  texts: Record<string, TextRecord>;
}
const records = golden.tokenizers as unknown as Record<TestTokenizerName, TokenizerRecord>;

describe.each(Object.keys(records) as TestTokenizerName[])('tokenizer %s', (name) => {
  const rec = records[name];
  const tok = loadTestTokenizer(name);

  it('names the same special tokens as transformers', () => {
    const s = rec.special;
    expect([tok.special.bos?.content ?? null, tok.special.bos?.id ?? null]).toEqual([s.bos, s.bos_id]);
    expect([tok.special.eos?.content ?? null, tok.special.eos?.id ?? null]).toEqual([s.eos, s.eos_id]);
    expect([tok.special.pad?.content ?? null, tok.special.pad?.id ?? null]).toEqual([s.pad, s.pad_id]);
    expect([tok.special.unk?.content ?? null, tok.special.unk?.id ?? null]).toEqual([s.unk, s.unk_id]);
  });

  it.each(Object.keys(rec.texts))('encodes %s exactly', (key) => {
    const r = rec.texts[key];
    expect(tok.encode(r.text)).toEqual(r.ids);
    expect(tok.encode(r.text, { addSpecialTokens: false })).toEqual(r.ids_no_special);
  });

  it.each(Object.keys(rec.texts))('decodes %s exactly', (key) => {
    const r = rec.texts[key];
    expect(tok.decode(r.ids)).toBe(r.decoded);
    expect(tok.decode(r.ids, { skipSpecialTokens: true })).toBe(r.decoded_skip_special);
  });

  it.each(Object.keys(rec.texts))('streams %s without splitting characters', (key) => {
    const r = rec.texts[key];
    const stream = tok.streamingDecoder();
    let out = '';
    for (const id of r.ids) {
      const delta = stream.push(id);
      expect(delta).not.toContain('\uFFFD');
      out += delta;
    }
    out += stream.flush();
    // Streaming never cleans up spaces; compare with a full decode that does not either.
    expect(out).toBe(tok.decode(r.ids, { cleanUpTokenizationSpaces: false }));
  });
});

describe('tokenizer behaviour', () => {
  it('Llama 3 with its BOS post-processor prepends BOS only with special tokens', () => {
    const tok = loadTestTokenizer('llama3-bos');
    expect(tok.specialPrefix).toEqual([128000]);
    expect(tok.specialSuffix).toEqual([]);
    expect(tok.encode('Hi')[0]).toBe(128000);
    expect(tok.encode('Hi', { addSpecialTokens: false })[0]).not.toBe(128000);
    expect(loadTestTokenizer('qwen3').specialPrefix).toEqual([]);
  });

  it('a byte-level token holding half an emoji is held back, then released whole', () => {
    const tok = loadTestTokenizer('gpt2');
    const ids = tok.encode('👋', { addSpecialTokens: false });
    expect(ids.length).toBeGreaterThan(1); // the emoji's 4 bytes span several tokens
    const stream = tok.streamingDecoder();
    const deltas = ids.map((id) => stream.push(id));
    expect(deltas.slice(0, -1).every((d) => d === '')).toBe(true);
    expect(deltas.at(-1)).toBe('👋');
  });

  it('flush releases an incomplete character at the end', () => {
    const tok = loadTestTokenizer('gpt2');
    const ids = tok.encode('👋', { addSpecialTokens: false });
    const stream = tok.streamingDecoder();
    expect(stream.push(ids[0])).toBe('');
    expect(stream.flush()).toContain('\uFFFD');
  });

  it('builds BOS/EOS insertion from add_bos_token / add_eos_token when tokenizer.json has no post-processor', () => {
    const json = tinyByteLevelJson();
    const tok = HfTokenizer.fromJson(json, { bos_token: '<s>', eos_token: '</s>', add_bos_token: true, add_eos_token: true });
    expect(tok.specialPrefix).toEqual([0]);
    expect(tok.specialSuffix).toEqual([1]);
    const plain = HfTokenizer.fromJson(json, { bos_token: '<s>', eos_token: '</s>' });
    expect(plain.specialPrefix).toEqual([]);
    expect(plain.encode('ab')).toEqual(plain.encode('ab', { addSpecialTokens: false }));
  });

  it('adds tokens declared only in added_tokens_decoder and treats them as special', () => {
    const json = tinyByteLevelJson();
    const tok = HfTokenizer.fromJson(json, {
      eos_token: '</s>',
      added_tokens_decoder: { '7': { content: '<|extra|>', special: true } },
    });
    expect(tok.encode('a<|extra|>b', { addSpecialTokens: false })).toEqual([3, 7, 4]);
    expect(tok.decode([3, 7, 4], { skipSpecialTokens: true })).toBe('ab');
    expect(tok.vocabSize).toBe(8);
  });

  it('fills special tokens from the tokenizer class defaults', () => {
    const json = tinyByteLevelJson();
    json.added_tokens.push({ id: 5, content: '<|endoftext|>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false });
    const tok = HfTokenizer.fromJson(json, { tokenizer_class: 'GPT2Tokenizer' });
    expect(tok.special.eos).toEqual({ content: '<|endoftext|>', id: 5 });
    expect(tok.special.pad).toBeNull();
    expect(tok.padIdOrFallback).toBe(5);
  });

  it('rejects broken inputs with typed errors', () => {
    expect(() => HfTokenizer.fromJson('{not json')).toThrow(TokenizerError);
    expect(() => HfTokenizer.fromJson('{"version":"1.0"}')).toThrow(/no "model" section/);
    expect(() => HfTokenizer.fromJson(tinyByteLevelJson(), { eos_token: '<missing>' })).toThrow(/eos_token "<missing>" is not in the vocabulary/);
    const tok = HfTokenizer.fromJson(tinyByteLevelJson(), {});
    expect(() => tok.decode([99])).toThrow(/outside the vocabulary/);
    expect(tok.decode([])).toBe('');
  });
});

/** A 5-token byte-level BPE: <s>=0, </s>=1, "Ġ"=2, "a"=3, "b"=4. */
function tinyByteLevelJson() {
  return {
    added_tokens: [
      { id: 0, content: '<s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
      { id: 1, content: '</s>', special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', vocab: { '<s>': 0, '</s>': 1, 'Ġ': 2, a: 3, b: 4 }, merges: [] as string[] },
  };
}

describe('streaming a SentencePiece-style (Metaspace + byte fallback) tokenizer', () => {
  // The layout of Llama 2 / TinyLlama tokenizer.json: "▁" marks spaces, the decoder strips the
  // first one, and characters outside the vocabulary are spelled as <0xNN> byte tokens.
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  bytes.forEach((b, i) => (vocab[b] = 3 + i));
  vocab['▁Hello'] = 259;
  vocab['▁world'] = 260;
  vocab['▁'] = 261;
  const tok = HfTokenizer.fromJson({
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, special: true, single_word: false, lstrip: false, rstrip: false, normalized: false })),
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [], special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } } },
    decoder: { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ] },
    model: { type: 'BPE', vocab, merges: [], byte_fallback: true, fuse_unk: true, unk_token: '<unk>' },
  }, { tokenizer_class: 'LlamaTokenizer' });

  it('keeps the spaces a per-token decode would strip, and holds split characters', () => {
    const wave = [...new TextEncoder().encode('👋')].map((b) => 3 + b);
    const ids = [1, 259, 260, 261, ...wave, 2];
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('Hello world 👋');
    const stream = tok.streamingDecoder({ skipSpecialTokens: true });
    const deltas = ids.map((id) => stream.push(id));
    expect(deltas).toEqual(['', 'Hello', ' world', ' ', '', '', '', '👋', '']);
    expect(tok.special).toMatchObject({ bos: { id: 1 }, eos: { id: 2 }, unk: { id: 0 } });
    expect(tok.specialPrefix).toEqual([1]);
  });
});
