// Hugging Face tokenizers from tokenizer.json + tokenizer_config.json, on @huggingface/tokenizers.
//
// What transformers (5.x) does, and so what we do:
// - tokenizer.json is authoritative for the vocabulary, the pipeline (normalizer, pre-tokenizer,
//   model, decoder) and for which special tokens encode() adds: its post_processor decides (Llama 3
//   checkpoints carry a TemplateProcessing "<|begin_of_text|> $A", so BOS is prepended; GPT-2 and
//   Qwen add nothing). When tokenizer.json has no post_processor, transformers builds one from
//   tokenizer_config's add_bos_token / add_eos_token; we do the same.
// - tokenizer_config.json names the special tokens (bos/eos/pad/unk, strings or AddedToken dicts)
//   and may declare extra added tokens in added_tokens_decoder, which we merge into the vocabulary.
//   Tokenizer classes with constructor defaults (GPT2Tokenizer: <|endoftext|>; LlamaTokenizer:
//   <s>, </s>, <unk>) fill names the config leaves out, when those tokens exist in the vocabulary.
//
// Decoding is streaming-friendly: StreamingDecoder turns a growing list of ids into text deltas and
// holds back a delta while it ends in an incomplete UTF-8 sequence (a byte-level BPE token can
// carry half of an emoji), so concatenated deltas equal decode(all ids) and never contain U+FFFD
// from a split character.

import { Tokenizer } from '@huggingface/tokenizers';

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** A special token by name: its text and its id in the vocabulary. */
export interface SpecialToken {
  content: string;
  id: number;
}

export interface SpecialTokens {
  bos: SpecialToken | null;
  eos: SpecialToken | null;
  pad: SpecialToken | null;
  unk: SpecialToken | null;
}

export interface EncodeOptions {
  /** Add the special tokens the post-processor adds (e.g. Llama 3's BOS). Default true, as transformers. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
  /** Default: tokenizer_config's clean_up_tokenization_spaces (false when absent, as transformers 5). */
  cleanUpTokenizationSpaces?: boolean;
}

/** The subset of tokenizer_config.json we read; everything else is passed through untouched. */
export interface TokenizerConfigJson {
  tokenizer_class?: string;
  bos_token?: TokenValue;
  eos_token?: TokenValue;
  pad_token?: TokenValue;
  unk_token?: TokenValue;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  clean_up_tokenization_spaces?: boolean;
  additional_special_tokens?: TokenValue[];
  added_tokens_decoder?: Record<string, AddedTokenJson>;
  chat_template?: unknown;
  model_max_length?: number;
  [key: string]: unknown;
}

type TokenValue = string | { content: string; [key: string]: unknown } | null;

interface AddedTokenJson {
  id?: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

interface TokenizerJson {
  added_tokens?: AddedTokenJson[];
  post_processor?: unknown;
  model: unknown;
  [key: string]: unknown;
}

// Constructor defaults of transformers' tokenizer classes, used only for names the config omits.
const CLASS_DEFAULTS: Record<string, Partial<Record<keyof SpecialTokens, string>>> = {
  GPT2Tokenizer: { bos: '<|endoftext|>', eos: '<|endoftext|>', unk: '<|endoftext|>' },
  GPT2TokenizerFast: { bos: '<|endoftext|>', eos: '<|endoftext|>', unk: '<|endoftext|>' },
  LlamaTokenizer: { bos: '<s>', eos: '</s>', unk: '<unk>' },
  LlamaTokenizerFast: { bos: '<s>', eos: '</s>', unk: '<unk>' },
};

function tokenContent(value: TokenValue | undefined): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && typeof value.content === 'string') return value.content;
  return null;
}

function parseJsonText<T>(text: string | object, what: string): T {
  if (typeof text !== 'string') return text as T;
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new TokenizerError(`${what}: invalid JSON (${(e as Error).message})`);
  }
}

export class HfTokenizer {
  readonly special: SpecialTokens;
  /** Ids encode() puts before / after the text when addSpecialTokens is true (e.g. [BOS] for Llama 3). */
  readonly specialPrefix: readonly number[];
  readonly specialSuffix: readonly number[];
  /** Vocabulary size including added tokens (max id + 1). */
  readonly vocabSize: number;
  readonly config: TokenizerConfigJson;

  private readonly inner: Tokenizer;
  private readonly specialIds: Set<number>;
  private readonly cleanUpSpaces: boolean;

  private constructor(tokenizerJson: TokenizerJson, config: TokenizerConfigJson) {
    this.config = config;
    checkAddedTokens(tokenizerJson.added_tokens, 'tokenizer.json: added_tokens');
    const json = withConfigAddedTokens(tokenizerJson, config);
    const names = specialTokenNames(config);
    if (json.post_processor === null || json.post_processor === undefined) {
      json.post_processor = templateFromFlags(config, names, json);
    }
    try {
      this.inner = new Tokenizer(json, { ...config, clean_up_tokenization_spaces: false });
    } catch (e) {
      throw new TokenizerError(`tokenizer.json: cannot build the tokenizer (${(e as Error).message})`);
    }
    const vocab = built('read the vocabulary', () => this.inner.get_vocab(true));
    for (const [token, id] of vocab) {
      if (!isTokenId(id)) throw new TokenizerError(`tokenizer.json: the vocabulary gives ${JSON.stringify(token)} the id ${JSON.stringify(id)}, not an integer in [0, 2^31)`);
    }
    const lookup = (content: string | null | undefined): SpecialToken | null => {
      if (!content) return null;
      const id = vocab.get(content);
      return id === undefined ? null : { content, id };
    };
    const defaults = CLASS_DEFAULTS[config.tokenizer_class ?? ''] ?? {};
    const pick = (key: keyof SpecialTokens) => {
      const configured = names[key];
      if (configured !== undefined) {
        const tok = lookup(configured);
        if (configured !== null && tok === null) {
          throw new TokenizerError(`tokenizer_config.json: ${key}_token "${configured}" is not in the vocabulary`);
        }
        return tok;
      }
      return lookup(defaults[key]);
    };
    this.special = { bos: pick('bos'), eos: pick('eos'), pad: pick('pad'), unk: pick('unk') };

    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    this.specialIds = new Set<number>();
    for (const [id, tok] of built('read the added tokens', () => this.inner.get_added_tokens_decoder())) if (tok.special) this.specialIds.add(id);
    for (const tok of Object.values(this.special)) if (tok) this.specialIds.add(tok.id);
    for (const extra of config.additional_special_tokens ?? []) {
      const tok = lookup(tokenContent(extra));
      if (tok) this.specialIds.add(tok.id);
    }
    this.cleanUpSpaces = config.clean_up_tokenization_spaces ?? false;

    // Find what the post-processor wraps around a text by encoding a probe both ways.
    const bare = built('encode a probe', () => this.inner.encode('a', { add_special_tokens: false }).ids);
    const full = built('encode a probe', () => this.inner.encode('a', { add_special_tokens: true }).ids);
    for (const id of full) {
      if (!isTokenId(id) || id >= this.vocabSize) throw new TokenizerError(`tokenizer.json: the post-processor adds the id ${JSON.stringify(id)}, outside the vocabulary [0, ${this.vocabSize})`);
    }
    const at = indexOfRun(full, bare);
    if (at < 0) throw new TokenizerError('tokenizer.json: the post-processor does not keep the encoded text contiguous');
    this.specialPrefix = full.slice(0, at);
    this.specialSuffix = full.slice(at + bare.length);
  }

  /** Build from the text (or parsed objects) of tokenizer.json and tokenizer_config.json. */
  static fromJson(tokenizerJson: string | object, tokenizerConfig?: string | object | null): HfTokenizer {
    const tok = parseJsonText<TokenizerJson>(tokenizerJson, 'tokenizer.json');
    if (!tok || typeof tok !== 'object' || !('model' in tok)) {
      throw new TokenizerError('tokenizer.json: no "model" section; is this a Hugging Face tokenizer.json?');
    }
    const config = tokenizerConfig == null ? {} : parseJsonText<TokenizerConfigJson>(tokenizerConfig, 'tokenizer_config.json');
    if (!config || typeof config !== 'object' || Array.isArray(config)) {
      throw new TokenizerError('tokenizer_config.json: expected a JSON object');
    }
    return new HfTokenizer(tok, config);
  }

  get bosId(): number | null {
    return this.special.bos?.id ?? null;
  }
  get eosId(): number | null {
    return this.special.eos?.id ?? null;
  }
  /** The id used to pad batches: pad, else eos, else 0 (padding is never trained or attended). */
  get padIdOrFallback(): number {
    return this.special.pad?.id ?? this.special.eos?.id ?? 0;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const addSpecial = options.addSpecialTokens ?? true;
    if (text.length === 0) return addSpecial ? [...this.specialPrefix, ...this.specialSuffix] : [];
    return this.inner.encode(text, { add_special_tokens: addSpecial }).ids;
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    return this.decodeWith(ids, options.skipSpecialTokens ?? false, options.cleanUpTokenizationSpaces ?? this.cleanUpSpaces);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  /** A decoder for tokens arriving one by one (generation). */
  streamingDecoder(options: DecodeOptions = {}): StreamingDecoder {
    return new StreamingDecoder((ids) => this.decodeWith(ids, options.skipSpecialTokens ?? false, false));
  }

  private decodeWith(ids: ArrayLike<number>, skipSpecial: boolean, cleanUp: boolean): string {
    let list = Array.from(ids);
    for (const id of list) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError(`decode: token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      }
    }
    if (skipSpecial) list = list.filter((id) => !this.specialIds.has(id));
    if (list.length === 0) return '';
    return this.inner.decode(list, { skip_special_tokens: false, clean_up_tokenization_spaces: cleanUp });
  }
}

/**
 * Incremental detokenization (the prefix-window method of text-generation-inference): each push
 * decodes a short window twice, with and without the new ids, and emits the difference. Windows keep
 * context so decoders that strip a leading space (SentencePiece) or merge byte tokens still agree
 * with a full decode. A delta that ends in U+FFFD is held back until the character completes.
 */
export class StreamingDecoder {
  private ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly decodeIds: (ids: number[]) => string) {}

  /** Add one or more ids; returns the text that became final (possibly ''). */
  push(...ids: number[]): string {
    this.ids.push(...ids);
    const prefixText = this.decodeIds(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decodeIds(this.ids.slice(this.prefixOffset));
    if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
      const delta = newText.slice(prefixText.length);
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return delta;
    }
    return '';
  }

  /** Emit whatever is held back (at the end of generation), even an incomplete character. */
  flush(): string {
    const prefixText = this.decodeIds(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decodeIds(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return newText.slice(prefixText.length);
  }
}

// ---------------------------------------------------------------------------------------------
// helpers

function specialTokenNames(config: TokenizerConfigJson): Partial<Record<keyof SpecialTokens, string | null>> {
  const out: Partial<Record<keyof SpecialTokens, string | null>> = {};
  for (const key of ['bos', 'eos', 'pad', 'unk'] as const) {
    const field = `${key}_token` as const;
    if (field in config) out[key] = tokenContent(config[field] as TokenValue);
  }
  return out;
}

const isTokenId = (id: unknown): id is number => Number.isInteger(id) && (id as number) >= 0 && (id as number) < 2 ** 31;

/** Runs a step of building the tokenizer; what @huggingface/tokenizers throws on a malformed file is named as such. */
function built<T>(what: string, work: () => T): T {
  try {
    return work();
  } catch (e) {
    if (e instanceof TokenizerError) throw e;
    throw new TokenizerError(`tokenizer.json: cannot ${what} (${(e as Error)?.message ?? String(e)}); the file is malformed`);
  }
}

/** added_tokens entries: objects with a string content and an integer id (a hostile id reached encode() as []). */
function checkAddedTokens(list: unknown, where: string): void {
  if (list === undefined || list === null) return;
  if (!Array.isArray(list)) throw new TokenizerError(`${where} must be a list, got ${typeof list}`);
  list.forEach((t: unknown, i) => {
    const tok = t as AddedTokenJson | null;
    if (!tok || typeof tok !== 'object') throw new TokenizerError(`${where}[${i}] must be an object, got ${JSON.stringify(t)}`);
    if (typeof tok.content !== 'string') throw new TokenizerError(`${where}[${i}].content must be a string, got ${JSON.stringify(tok.content)}`);
    if (!isTokenId(tok.id)) throw new TokenizerError(`${where}[${i}].id must be an integer in [0, 2^31), got ${JSON.stringify(tok.id)}`);
  });
}

/** tokenizer.json plus the tokens tokenizer_config's added_tokens_decoder declares that it lacks. */
function withConfigAddedTokens(json: TokenizerJson, config: TokenizerConfigJson): TokenizerJson {
  const added = [...(json.added_tokens ?? [])];
  const have = new Set(added.map((t) => t.content));
  for (const [idText, tok] of Object.entries(config.added_tokens_decoder ?? {})) {
    if (!tok || typeof tok.content !== 'string' || have.has(tok.content)) continue;
    const id = Number(idText);
    if (!isTokenId(id) || String(id) !== idText) throw new TokenizerError(`tokenizer_config.json: added_tokens_decoder key "${idText}" is not an id`);
    added.push({ id, content: tok.content, single_word: tok.single_word ?? false, lstrip: tok.lstrip ?? false,
      rstrip: tok.rstrip ?? false, normalized: tok.normalized ?? false, special: tok.special ?? false });
    have.add(tok.content);
  }
  return { ...json, added_tokens: added };
}

/** transformers' update_post_processor: "[bos] $A [eos]" from add_bos_token / add_eos_token. */
function templateFromFlags(
  config: TokenizerConfigJson,
  names: Partial<Record<keyof SpecialTokens, string | null>>,
  json: TokenizerJson,
): unknown {
  const bos = config.add_bos_token ? names.bos ?? null : null;
  const eos = config.add_eos_token ? names.eos ?? null : null;
  const idOf = (content: string) => {
    const added = json.added_tokens?.find((t) => t.content === content);
    if (added?.id !== undefined) return added.id;
    const vocab = (json.model as { vocab?: Record<string, number> }).vocab;
    const id = vocab && !Array.isArray(vocab) ? vocab[content] : undefined;
    if (id === undefined) throw new TokenizerError(`tokenizer_config.json: "${content}" is not in the vocabulary`);
    return id;
  };
  const single: unknown[] = [];
  const special: Record<string, unknown> = {};
  if (bos) {
    single.push({ SpecialToken: { id: bos, type_id: 0 } });
    special[bos] = { id: bos, ids: [idOf(bos)], tokens: [bos] };
  }
  single.push({ Sequence: { id: 'A', type_id: 0 } });
  if (eos) {
    single.push({ SpecialToken: { id: eos, type_id: 0 } });
    special[eos] = { id: eos, ids: [idOf(eos)], tokens: [eos] };
  }
  const pair = [...single, ...single.map((item) => retype(item, 1))].map((item) =>
    'Sequence' in (item as object) && (item as { Sequence: { type_id: number } }).Sequence.type_id === 1
      ? { Sequence: { id: 'B', type_id: 1 } }
      : item,
  );
  return { type: 'TemplateProcessing', single, pair, special_tokens: special };
}

function retype(item: unknown, typeId: number): unknown {
  const entry = item as Record<string, { id: string; type_id: number }>;
  const [key] = Object.keys(entry);
  return { [key]: { ...entry[key], type_id: typeId } };
}

function indexOfRun(haystack: readonly number[], needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
