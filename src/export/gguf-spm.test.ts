// SentencePiece-style tokenizers → GGUF (`tokenizer.ggml.model = "llama"`): the metadata of the llama-sentencepiece
// fixture (transformers 5's LlamaTokenizer layout, made by scripts/make_spm_fixture.py), the pipeline checks, and the
// refusals that keep a GGUF from tokenizing otherwise than tokenizer.json. llama.cpp itself reads the fixture in
// gguf-llamacpp.gpu.test.ts.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readModelConfig } from '../model/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { HfTokenizer } from '../model/tokenizer.ts';
import type { ModelConfig } from '../model/config.ts';
import { exportGguf, tokenizerMetadata } from './gguf-model.ts';
import { bpeTokenize, llamaCppSpmTokenize } from './gguf-spm.ts';

const DIR = join(FIXTURES, 'models', 'llama-sentencepiece');
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

async function fixture(name = 'llama-sentencepiece') {
  const dir = join(FIXTURES, 'models', name);
  const config = await readModelConfig(nodeFolder(dir));
  const json = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as Json;
  const tokConfig = await readFile(join(dir, 'tokenizer_config.json'), 'utf8');
  return { config, json, tokConfig };
}

function meta(config: ModelConfig, json: Json, tokConfig: string | null, jinja: string | null = null) {
  const t = tokenizerMetadata(config, JSON.stringify(json), tokConfig, jinja, 'm/tokenizer.json');
  return { ...t, get: (k: string) => t.kv.find((kv) => kv.key === k)?.value.value };
}

const BYTES = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);

/** A SentencePiece-style tokenizer.json (legacy normalizer) over the given pieces and merges. */
function tinyTokenizer(pieces: string[], merges: string[]): { json: Json; config: ModelConfig } {
  const vocab: Record<string, number> = {};
  for (const t of ['<unk>', '<s>', '</s>', ...BYTES, ...pieces]) vocab[t] = Object.keys(vocab).length;
  const json: Json = {
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges },
  };
  const config = { vocabSize: Object.keys(vocab).length, bosTokenId: 1, eosTokenIds: [2], padTokenId: null } as unknown as ModelConfig;
  return { json, config };
}
const TINY_CONFIG = JSON.stringify({ bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true, add_eos_token: false });

describe('SentencePiece-style tokenizer → GGUF "llama"', () => {
  it('the fixture (transformers 5 layout: Metaspace, chat_template.jinja): scores, token types, special ids, flags, template', async () => {
    const { config, json, tokConfig } = await fixture();
    const t = meta(config, json, tokConfig, await readFile(join(DIR, 'chat_template.jinja'), 'utf8'));
    expect(t.model).toBe('llama');
    expect(t.get('tokenizer.ggml.pre')).toBe('default');
    expect(t.get('tokenizer.ggml.merges')).toBeUndefined();
    const tokens = t.get('tokenizer.ggml.tokens') as string[];
    const types = [...(t.get('tokenizer.ggml.token_type') as Int32Array)];
    const scores = t.get('tokenizer.ggml.scores') as Float32Array;
    expect(tokens.length).toBe(619);
    expect(tokens.slice(0, 4)).toEqual(['<unk>', '<s>', '</s>', '<0x00>']);
    expect(types.slice(0, 3)).toEqual([2, 3, 3]); // UNKNOWN, CONTROL, CONTROL
    expect(types.slice(3, 259).every((x) => x === 6)).toBe(true); // BYTE for <0x00>…<0xFF>
    expect(types.slice(259).every((x) => x === 1)).toBe(true); // NORMAL
    // −(rank + 1) of the first merge that makes each token: the lowest is the last merge's.
    const merges = json.model.merges as [string, string][];
    expect(Math.min(...scores)).toBe(-merges.length);
    expect(scores[tokens.indexOf(merges[0].join(''))]).toBe(-1);
    expect(scores[tokens.indexOf('▁')]).toBe(0); // a single character is never made by a merge
    expect([t.get('tokenizer.ggml.bos_token_id'), t.get('tokenizer.ggml.eos_token_id'), t.get('tokenizer.ggml.unknown_token_id')]).toEqual([1, 2, 0]);
    expect(t.get('tokenizer.ggml.padding_token_id')).toBeUndefined();
    expect(t.get('tokenizer.ggml.add_bos_token')).toBe(true);
    expect(t.get('tokenizer.ggml.add_eos_token')).toBe(false);
    expect(t.get('tokenizer.ggml.add_space_prefix')).toBe(true);
    expect(t.sentencePiece).toEqual({ addSpacePrefix: true, metaspace: true });
    expect(t.get('tokenizer.chat_template')).toContain('<|assistant|>');
    expect(t.eosTokens).toEqual(['</s>']);
  });

  it('our tokenizer gives transformers\' ids for the fixture strings (spaces, unicode, byte fallback)', async () => {
    const golden = JSON.parse(await readFile(join(FIXTURES, 'golden', 'llama-sentencepiece-tokens.json'), 'utf8')) as { strings: { text: string; ids: number[] }[] };
    const tok = HfTokenizer.fromJson(await readFile(join(DIR, 'tokenizer.json'), 'utf8'), await readFile(join(DIR, 'tokenizer_config.json'), 'utf8'));
    expect(golden.strings.length).toBe(15);
    for (const { text, ids } of golden.strings) {
      expect(tok.encode(text, { addSpecialTokens: false }), text).toEqual(ids);
      expect(tok.encode(text), text).toEqual([1, ...ids]);
    }
    expect(golden.strings.some(({ ids }) => ids.some((id) => id >= 3 && id < 259))).toBe(true);
  });

  it('legacy layout (Prepend + Replace normalizer) → add_space_prefix true; without Prepend or with prepend_scheme never → false', async () => {
    const legacy = await fixture('llama');
    expect(meta(legacy.config, legacy.json, legacy.tokConfig).get('tokenizer.ggml.add_space_prefix')).toBe(true);
    const noPrepend = structuredClone(legacy.json);
    noPrepend.normalizer = { type: 'Replace', pattern: { String: ' ' }, content: '▁' };
    expect(meta(legacy.config, noPrepend, legacy.tokConfig).sentencePiece).toEqual({ addSpacePrefix: false, metaspace: false });
    const { config, json, tokConfig } = await fixture();
    const never = structuredClone(json);
    never.pre_tokenizer.prepend_scheme = 'never';
    expect(meta(config, never, tokConfig).get('tokenizer.ggml.add_space_prefix')).toBe(false);
  });

  it('refuses, naming the file and field: Unigram and WordPiece models, other normalizers and pre-tokenizers, no byte fallback', async () => {
    const { config, json, tokConfig } = await fixture();
    const variant = (edit: (j: Json) => void) => {
      const j = structuredClone(json);
      edit(j);
      return () => tokenizerMetadata(config, JSON.stringify(j), tokConfig, null, 'm/tokenizer.json');
    };
    const unigram = variant((j) => {
      j.model = { type: 'Unigram', unk_id: 0, vocab: Object.keys(json.model.vocab).map((p) => [p, -1]), byte_fallback: true };
    });
    expect(unigram).toThrow(/^m\/tokenizer\.json: model\.type "Unigram" is not exported to GGUF.*tokenizer\.model/);
    expect(variant((j) => { j.model = { type: 'WordPiece', unk_token: '<unk>', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: json.model.vocab }; }))
      .toThrow(/m\/tokenizer\.json: model\.type "WordPiece"/);
    expect(variant((j) => { j.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }] }; })).toThrow(/m\/tokenizer\.json: normalizer\.normalizers\[0\]: \{"type":"NFKC"\}/);
    expect(variant((j) => { j.pre_tokenizer = { type: 'Whitespace' }; })).toThrow(/m\/tokenizer\.json: pre_tokenizer: Whitespace/);
    expect(variant((j) => { j.pre_tokenizer = null; })).toThrow(/m\/tokenizer\.json: normalizer: spaces are not replaced by "▁"/);
    expect(variant((j) => { j.model.byte_fallback = false; })).toThrow(/m\/tokenizer\.json: model\.byte_fallback/);
    expect(variant((j) => { j.model.ignore_merges = true; })).toThrow(/m\/tokenizer\.json: model\.ignore_merges/);
    expect(variant((j) => { j.pre_tokenizer.split = true; j.model.vocab['a▁b'] = 619; })).toThrow(/pre_tokenizer\.split: true, and the token "a▁b"/);
    // split at spaces with no token holding an inner "▁" splits nothing llama.cpp would join: accepted.
    expect(variant((j) => { j.pre_tokenizer.split = true; })).not.toThrow();
  });

  it('refuses merges that are not SentencePiece\'s, where llama.cpp would tokenize a token\'s own text otherwise', () => {
    // "b c" first: BPE gives a|bc and has no "a bc"; llama.cpp joins a+bc because "abc" is a token.
    const missing = tinyTokenizer(['▁', 'a', 'b', 'c', 'bc', 'ab', 'abc'], ['b c', 'a b', 'ab c']);
    expect(() => tokenizerMetadata(missing.config, JSON.stringify(missing.json), TINY_CONFIG, null, 'm/tokenizer.json'))
      .toThrow(/^m\/tokenizer\.json: model\.merges: the text of token \d+ "abc" is \["a", "bc"\] with these merges but \["abc"\] in llama\.cpp/);
    // With every split a merge (as transformers derives them from SentencePiece scores) both agree.
    const complete = tinyTokenizer(['▁', 'a', 'b', 'c', 'bc', 'ab', 'abc'], ['b c', 'a b', 'a bc', 'ab c']);
    expect(tokenizerMetadata(complete.config, JSON.stringify(complete.json), TINY_CONFIG, null).model).toBe('llama');
    // "é" is no token: BPE writes it as two bytes and never makes "ét"; llama.cpp would join é+t.
    const unknownChar = tinyTokenizer(['▁', 't', 'ét'], []);
    expect(() => tokenizerMetadata(unknownChar.config, JSON.stringify(unknownChar.json), TINY_CONFIG, null))
      .toThrow(/tokenizer\.json: model\.merges: the text of token \d+ "ét" is \["<0xC3>", "<0xA9>", "t"\] with these merges but \["ét"\]/);
  });

  it('llama.cpp\'s SPM joins: highest score first, leftmost on ties, bytes for characters that are no token', () => {
    const tokens = ['<unk>', ...BYTES, '▁', 'a', 'b', 'ab', 'aa', 'aaa'];
    const ids = new Map(tokens.map((t, i) => [t, i]));
    const id = (t: string) => ids.get(t)!;
    const scores = new Float32Array(tokens.length);
    scores[id('aa')] = -1;
    scores[id('aaa')] = -3;
    scores[id('ab')] = -2;
    const names = (seq: number[]) => seq.map((i) => tokens[i]);
    // aa (−1, leftmost of two), then a+b (−2) before aa+a (−3).
    expect(names(llamaCppSpmTokenize('aaab', ids, scores))).toEqual(['aa', 'ab']);
    expect(names(llamaCppSpmTokenize('aaa', ids, scores))).toEqual(['aaa']);
    expect(names(llamaCppSpmTokenize('aab', ids, scores))).toEqual(['aa', 'b']);
    expect(names(llamaCppSpmTokenize('▁ж', ids, scores))).toEqual(['▁', '<0xD0>', '<0xB6>']);
    const ranks = new Map([['a a', 0], ['a b', 1], ['aa a', 2]]);
    expect(names(bpeTokenize('aaab', ids, ranks))).toEqual(['aa', 'ab']);
    expect(names(bpeTokenize('aaa', ids, ranks))).toEqual(['aaa']);
    expect(names(bpeTokenize('ж', ids, ranks))).toEqual(['<0xD0>', '<0xB6>']);
  });

  it('the whole fixture exports: the GGUF carries its tokenizer', async () => {
    const ex = await exportGguf(nodeFolder(DIR), { type: 'f32' });
    await ex.close();
    expect(ex.metadata.find((kv) => kv.key === 'tokenizer.ggml.model')?.value.value).toBe('llama');
    expect(ex.chatTemplate).toContain('<|user|>');
    expect(ex.eosTokens).toEqual(['</s>']);
  });
});
