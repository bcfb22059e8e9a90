// SentencePiece-style BPE tokenizers (Llama 2, TinyLlama, Mistral 7B v0.1: "▁" for spaces, byte fallback,
// <unk> <s> </s>) as llama.cpp's SPM tokenizer (`tokenizer.ggml.model = "llama"`) reads them.
//
// llama.cpp does not run BPE merges for these: it escapes spaces to "▁", prepends one when add_space_prefix is set,
// splits the text into UTF-8 characters and repeatedly joins the adjacent pair whose concatenation is a token with the
// highest score (ties: leftmost), then writes characters that are not tokens as <0xNN> byte tokens
// (llm_tokenizer_spm_session in llama.cpp's src/llama-vocab.cpp). convert_hf_to_gguf.py, given only tokenizer.json
// (gguf-py's LlamaHfVocab), scores every token −1000, so llama.cpp then joins leftmost-first whatever the merges say;
// we write −(rank of the first merge that makes the token) instead, which is SentencePiece's own BPE score up to a
// monotone change, so the highest-scoring join is BPE's lowest-ranked merge.
//
// That is the same tokenization only when the merges are SentencePiece's: every split of a token into two tokens is a
// merge (transformers' converter derives the merges so), and every character of a token is itself a token (else BPE
// writes the character as bytes where llama.cpp joins it). `checkSpmAgreement` tokenizes every token's text both
// ways and refuses the export when they differ, naming the token, rather than write a GGUF that tokenizes otherwise.
//
// What tokenizer.json may hold (anything else is refused, naming the field):
//   normalizer     null | Sequence[Prepend "▁", Replace " " → "▁"] (transformers' legacy Llama) | Replace " " → "▁"
//   pre_tokenizer  null | Metaspace "▁" (prepend_scheme always/first/never, or the older add_prefix_space; split false,
//                  or true when no token has "▁" after its first character, so splitting at spaces changes nothing)
//   model          BPE, byte_fallback true, no dropout, no continuing_subword_prefix / end_of_word_suffix, ignore_merges
//                  false
// add_space_prefix is written from Prepend / prepend_scheme. A Metaspace pre-tokenizer does not prepend "▁" to a text
// that already begins with a space, where llama.cpp (as SentencePiece) always prepends: such texts get one "▁" more
// in llama.cpp. With prepend_scheme "first", text after a special token gets no "▁" in transformers but one in
// llama.cpp. Neither has a GGUF form; the README says so.

import { GgufError } from './gguf.ts';

const SPACE = '\u2581';

interface Json {
  [key: string]: unknown;
}

export interface SentencePieceLayout {
  /** Whether a "▁" is put before the text (llama.cpp's tokenizer.ggml.add_space_prefix). */
  addSpacePrefix: boolean;
  /** The pre-tokenizer is Metaspace (no extra "▁" before a text that begins with a space). */
  metaspace: boolean;
}

const isReplaceSpace = (n: Json | null | undefined): boolean =>
  n?.type === 'Replace' && (n.pattern as Json | undefined)?.String === ' ' && n.content === SPACE;
const isPrependSpace = (n: Json | null | undefined): boolean => n?.type === 'Prepend' && n.prepend === SPACE;

/** Checks tokenizer.json's pipeline against what llama.cpp's SPM tokenizer does; `where` names the file in errors. */
export function sentencePieceLayout(json: Json, where: string): SentencePieceLayout {
  const model = json.model as Json;
  const refuse = (field: string, why: string): never => {
    throw new GgufError(`${where}: ${field}: ${why}; llama.cpp's SentencePiece tokenizer ("llama") cannot reproduce it, so this tokenizer is not exported to GGUF`);
  };
  if (model.byte_fallback !== true) refuse('model.byte_fallback', 'a BPE tokenizer that is neither byte-level nor byte-fallback');
  if (model.dropout !== null && model.dropout !== undefined && model.dropout !== 0) refuse('model.dropout', `BPE dropout ${JSON.stringify(model.dropout)}`);
  for (const field of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    if (model[field]) refuse(`model.${field}`, JSON.stringify(model[field]));
  }
  if (model.ignore_merges === true) refuse('model.ignore_merges', 'true (whole words looked up before merging)');

  const normalizer = (json.normalizer ?? null) as Json | null;
  const steps: Json[] = normalizer === null ? [] : normalizer.type === 'Sequence' ? ((normalizer.normalizers as Json[] | undefined) ?? []) : [normalizer];
  let prepend = false;
  let replace = false;
  steps.forEach((n, i) => {
    if (isPrependSpace(n) && !replace && !prepend) prepend = true;
    else if (isReplaceSpace(n) && !replace) replace = true;
    else refuse(normalizer?.type === 'Sequence' ? `normalizer.normalizers[${i}]` : 'normalizer', `${JSON.stringify(n)} (supported: Prepend "▁", Replace " " → "▁")`);
  });

  const pre = (json.pre_tokenizer ?? null) as Json | null;
  if (pre === null) {
    if (!replace) refuse('normalizer', 'spaces are not replaced by "▁" (neither the normalizer nor a Metaspace pre-tokenizer does it)');
    return { addSpacePrefix: prepend, metaspace: false };
  }
  if (pre.type !== 'Metaspace') refuse('pre_tokenizer', `${String(pre.type)} (supported: none, Metaspace)`);
  if (pre.replacement !== SPACE) refuse('pre_tokenizer.replacement', JSON.stringify(pre.replacement));
  if (prepend) refuse('normalizer', 'Prepend "▁" before a Metaspace pre-tokenizer');
  let addSpacePrefix: boolean;
  if (typeof pre.prepend_scheme === 'string') {
    if (!['always', 'first', 'never'].includes(pre.prepend_scheme)) refuse('pre_tokenizer.prepend_scheme', JSON.stringify(pre.prepend_scheme));
    addSpacePrefix = pre.prepend_scheme !== 'never';
  } else {
    addSpacePrefix = pre.add_prefix_space !== false;
  }
  if (pre.split !== false) {
    const vocab = (model.vocab ?? {}) as Record<string, number>;
    const inner = Object.keys(vocab).find((t) => t.indexOf(SPACE, 1) > 0);
    if (inner !== undefined) refuse('pre_tokenizer.split', `true, and the token ${JSON.stringify(inner)} has "▁" inside (llama.cpp does not split at spaces)`);
  }
  return { addSpacePrefix, metaspace: true };
}

/** UTF-8 bytes of a string as <0xNN> token texts. */
function byteTokens(text: string): string[] {
  return [...new TextEncoder().encode(text)].map((b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
}

/**
 * llama.cpp's SPM tokenization of already escaped text ("▁" for spaces, prefix added): characters joined by the
 * highest-scoring token their concatenation makes (ties: leftmost), characters that are no token as bytes.
 * Returns token ids, or -1 where llama.cpp would find no byte token.
 */
export function llamaCppSpmTokenize(text: string, ids: ReadonlyMap<string, number>, scores: ArrayLike<number>): number[] {
  const syms = [...text].map((s, i, all) => ({ text: s, prev: i - 1, next: i + 1 < all.length ? i + 1 : -1, alive: true }));
  // A binary heap of candidate joins: highest score first, then leftmost.
  type Bigram = { left: number; right: number; score: number; text: string };
  const heap: Bigram[] = [];
  const better = (a: Bigram, b: Bigram) => a.score > b.score || (a.score === b.score && a.left < b.left);
  const push = (b: Bigram) => {
    heap.push(b);
    for (let i = heap.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!better(heap[i], heap[p])) break;
      [heap[i], heap[p]] = [heap[p], heap[i]];
      i = p;
    }
  };
  const pop = (): Bigram => {
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && better(heap[l], heap[m])) m = l;
        if (r < heap.length && better(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  };
  const tryAdd = (left: number, right: number) => {
    if (left < 0 || right < 0) return;
    const joined = syms[left].text + syms[right].text;
    const id = ids.get(joined);
    if (id === undefined) return;
    push({ left, right, score: scores[id], text: joined });
  };
  for (let i = 1; i < syms.length; i++) tryAdd(i - 1, i);
  while (heap.length) {
    const b = pop();
    const l = syms[b.left];
    const r = syms[b.right];
    if (!l.alive || !r.alive || l.text + r.text !== b.text) continue; // stale
    l.text = b.text;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    tryAdd(l.prev, b.left);
    tryAdd(b.left, l.next);
  }
  const out: number[] = [];
  for (const s of syms) {
    if (!s.alive) continue;
    const id = ids.get(s.text);
    if (id !== undefined) out.push(id);
    else for (const t of byteTokens(s.text)) out.push(ids.get(t) ?? -1);
  }
  return out;
}

/**
 * Hugging Face tokenizers' BPE on one word with byte fallback: characters that are no token become <0xNN> tokens,
 * then the adjacent pair with the lowest merge rank is joined (ties: leftmost) until none is a merge.
 */
export function bpeTokenize(word: string, ids: ReadonlyMap<string, number>, ranks: ReadonlyMap<string, number>): number[] {
  let syms: string[] = [];
  for (const c of word) {
    if (ids.has(c)) syms.push(c);
    else syms.push(...byteTokens(c));
  }
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < syms.length; i++) {
      const rank = ranks.get(`${syms[i]} ${syms[i + 1]}`);
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank;
        best = i;
      }
    }
    if (best < 0) break;
    syms = [...syms.slice(0, best), syms[best] + syms[best + 1], ...syms.slice(best + 2)];
  }
  return syms.map((s) => ids.get(s) ?? -1);
}

/**
 * Tokenizes the text of every NORMAL token (types[id] === 1) of more than one character with llama.cpp's SPM
 * algorithm over `scores` and with BPE over `merges`; the first disagreement is refused, naming the token.
 */
export function checkSpmAgreement(tokens: readonly string[], types: ArrayLike<number>, scores: ArrayLike<number>, merges: readonly string[], where: string): { checked: number } {
  const ids = new Map<string, number>(tokens.map((t, i) => [t, i])); // a repeated text: the last id, as llama.cpp
  const ranks = new Map<string, number>();
  merges.forEach((m, rank) => {
    if (!ranks.has(m)) ranks.set(m, rank);
  });
  let checked = 0;
  tokens.forEach((text, id) => {
    if (types[id] !== 1 || [...text].length < 2) return;
    checked++;
    const spm = llamaCppSpmTokenize(text, ids, scores);
    const bpe = bpeTokenize(text, ids, ranks);
    if (spm.length !== bpe.length || spm.some((x, i) => x !== bpe[i])) {
      const show = (seq: number[]) => `[${seq.map((x) => JSON.stringify(tokens[x] ?? '?')).join(', ')}]`;
      throw new GgufError(
        `${where}: model.merges: the text of token ${id} ${JSON.stringify(text)} is ${show(bpe)} with these merges but ${show(spm)} in llama.cpp's SentencePiece tokenizer ` +
          '(it joins any two adjacent tokens whose concatenation is a token); the merges are not SentencePiece\'s, so this tokenizer is not exported to GGUF',
      );
    }
  });
  return { checked };
}
