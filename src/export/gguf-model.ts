// A Hugging Face checkpoint (optionally with a LoRA adapter folded in) → a GGUF file llama.cpp loads, and a PEFT
// adapter → a GGUF LoRA adapter; what llama.cpp's convert_hf_to_gguf.py and convert_lora_to_gguf.py write.
//
// - Architecture keys: llama (also Mistral, as llama.cpp maps MistralForCausalLM), gpt2, qwen2, qwen3, with
//   `<arch>.context_length`, `.embedding_length`, `.block_count`, `.feed_forward_length`, `.attention.head_count(_kv)`,
//   `.attention.key_length/value_length`, `.rope.freq_base`, `.rope.dimension_count`, the norm epsilon, rope scaling
//   (linear and yarn as `.rope.scaling.*`, llama3 as the `rope_freqs.weight` factors the converter computes).
// - Tensor names: token_embd, position_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_qkv, attn_output,
//   attn_q_norm, attn_k_norm, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output.
// - llama/mistral: the rows of q_proj and k_proj (and of lora_B for them) are permuted from transformers' half-split
//   rotary layout to llama.cpp's interleaved one (LlamaModel.permute); Qwen2/Qwen3 use llama.cpp's NEOX rope and are
//   written unpermuted. GPT-2's Conv1D weights [in, out] are transposed to [out, in].
// - Tokenizer: byte-level BPE as `gpt2` (tokens, types, merges, a `tokenizer.ggml.pre` llama.cpp knows, from the
//   pre-tokenizer's split regex), SentencePiece-style BPE ("▁" + byte fallback, Llama 2 / TinyLlama / Mistral) as
//   `llama` with scores −(rank of the merge that makes the token), so llama.cpp's SPM tokenizer merges in BPE's order,
//   and add_space_prefix (gguf-spm.ts checks the pipeline and that both tokenize every token alike); special ids,
//   add_bos/add_eos, and the chat template. Other tokenizers (Unigram, WordPiece, …) are refused, naming the file.
// - 1-D tensors (norms, biases, rope factors) stay F32 in every type, as the converter keeps them; Q8_0 falls back to
//   F16 for a matrix whose rows are not a multiple of 32.

import type { ModelFiles } from '../model/checkpoint.ts';
import { readJsonFile } from '../model/checkpoint.ts';
import { selectChatTemplate } from '../model/chat-template.ts';
import type { ModelConfig } from '../model/config.ts';
import { openModelWeights, type ModelWeights } from '../model/load.ts';
import { HfTokenizer } from '../model/tokenizer.ts';
import { linearModules, type LinearModule } from '../model/weights.ts';
import { adapterMerges } from '../train/merge.ts';
import type { LoraAdapter, PeftAdapter } from '../train/peft.ts';
import { checkSpmAgreement, sentencePieceLayout, type SentencePieceLayout } from './gguf-spm.ts';
import { FILE_TYPE, ggufFile, GgufError, QK8_0, type GgmlTypeName, type GgufFile, type GgufKv, type GgufTensorSource, type GgufValue } from './gguf.ts';

export type GgufExportType = 'f32' | 'f16' | 'q8_0';
export const GGUF_EXPORT_TYPES: readonly GgufExportType[] = ['f32', 'f16', 'q8_0'];

/** llama.cpp's general.architecture for each model_type we train. */
export function ggufArchitecture(config: ModelConfig): 'llama' | 'gpt2' | 'qwen2' | 'qwen3' {
  switch (config.modelType) {
    case 'llama':
    case 'mistral':
      return 'llama';
    case 'gpt2':
      return 'gpt2';
    case 'qwen2':
      return 'qwen2';
    case 'qwen3':
      return 'qwen3';
  }
}

/** Whether q/k rows are permuted to llama.cpp's interleaved rotary layout (its LLM_ARCH_LLAMA uses normal rope). */
function permutesQk(config: ModelConfig): boolean {
  return ggufArchitecture(config) === 'llama';
}

/** The GGUF name of a canonical weight name (src/model/weights.ts), or null for lm_head when it is tied. */
export function ggufTensorName(canonical: string): string {
  const fixed: Record<string, string> = {
    'embed.weight': 'token_embd.weight',
    'pos_embed.weight': 'position_embd.weight',
    'final_norm.weight': 'output_norm.weight',
    'final_norm.bias': 'output_norm.bias',
    'lm_head.weight': 'output.weight',
  };
  if (fixed[canonical]) return fixed[canonical];
  const m = /^layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(canonical);
  const parts: Record<string, string> = {
    attn_norm: 'attn_norm',
    mlp_norm: 'ffn_norm',
    'attn.q': 'attn_q',
    'attn.k': 'attn_k',
    'attn.v': 'attn_v',
    'attn.qkv': 'attn_qkv',
    'attn.o': 'attn_output',
    'attn.q_norm': 'attn_q_norm',
    'attn.k_norm': 'attn_k_norm',
    'mlp.gate': 'ffn_gate',
    'mlp.up': 'ffn_up',
    'mlp.down': 'ffn_down',
  };
  if (!m || !parts[m[2]]) throw new GgufError(`no GGUF name for weight "${canonical}"`);
  return `blk.${m[1]}.${parts[m[2]]}.${m[3]}`;
}

/**
 * llama.cpp's row permutation for q/k (convert_hf_to_gguf.py LlamaModel.permute): within each head of `headDim` rows,
 * row j·(headDim/2) + k moves to 2k + j. `cols` is the row length (1 for a bias).
 */
export function permuteRows(x: Float32Array, heads: number, cols: number): Float32Array {
  const rows = x.length / cols;
  const hd = rows / heads;
  if (!Number.isInteger(rows) || !Number.isInteger(hd) || hd % 2) throw new GgufError(`cannot permute ${rows} rows into ${heads} heads of an even size`);
  const out = new Float32Array(x.length);
  const half = hd / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < 2; j++) {
      for (let k = 0; k < half; k++) {
        const from = h * hd + j * half + k;
        const to = h * hd + 2 * k + j;
        out.set(x.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** Heads to permute a q/k module's output rows by, or 0 when it is not permuted. */
function permuteHeads(config: ModelConfig, m: { canonical: string }): number {
  if (!permutesQk(config)) return 0;
  if (/\.attn\.q$/.test(m.canonical)) return config.numHeads;
  if (/\.attn\.k$/.test(m.canonical)) return config.numKvHeads;
  return 0;
}

function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c];
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Metadata

const u32 = (value: number): GgufValue => ({ type: 'u32', value });
const f32 = (value: number): GgufValue => ({ type: 'f32', value });
const str = (value: string): GgufValue => ({ type: 'string', value });

/** The architecture keys llama.cpp reads for the model's hyperparameters. */
export function architectureMetadata(config: ModelConfig): GgufKv[] {
  const arch = ggufArchitecture(config);
  const kv: GgufKv[] = [];
  const add = (key: string, value: GgufValue) => kv.push({ key: `${arch}.${key}`, value });
  add('context_length', u32(config.maxPositions));
  add('embedding_length', u32(config.hiddenSize));
  add('block_count', u32(config.numLayers));
  add('feed_forward_length', u32(config.intermediateSize));
  add('attention.head_count', u32(config.numHeads));
  if (config.family === 'gpt2') {
    if (Math.abs(config.attentionScale - 1 / Math.sqrt(config.headDim)) > 1e-12) {
      throw new GgufError(`${config.modelType}: attention scale ${config.attentionScale} (scale_attn_weights false) has no GGUF form: llama.cpp always scales by 1/√head_dim`);
    }
    add('attention.layer_norm_epsilon', f32(config.norm.eps));
  } else {
    add('attention.head_count_kv', u32(config.numKvHeads));
    add('attention.key_length', u32(config.headDim));
    add('attention.value_length', u32(config.headDim));
    add('attention.layer_norm_rms_epsilon', f32(config.norm.eps));
    if (config.positions.kind !== 'rope') throw new GgufError(`${config.modelType}: expected rotary positions`);
    add('rope.freq_base', f32(config.positions.theta));
    add('rope.dimension_count', u32(config.headDim));
    const { type, scaling } = config.positions;
    if (type === 'linear') {
      add('rope.scaling.type', str('linear'));
      add('rope.scaling.factor', f32(scaling!.factor as number));
    } else if (type === 'yarn') {
      add('rope.scaling.type', str('yarn'));
      add('rope.scaling.factor', f32(scaling!.factor as number));
      const original = scaling!.original_max_position_embeddings;
      if (typeof original === 'number') add('rope.scaling.original_context_length', u32(original));
    } else if (type !== 'default' && type !== 'llama3') {
      throw new GgufError(`${config.modelType}: rope type "${type}" is not exported to GGUF (supported: default, linear, yarn, llama3)`);
    }
  }
  add('vocab_size', u32(config.vocabSize));
  return kv;
}

/** The llama3 rope frequency factors convert_hf_to_gguf.py writes as rope_freqs.weight ([headDim / 2], F32). */
export function llama3RopeFactors(config: ModelConfig): Float32Array {
  if (config.positions.kind !== 'rope' || config.positions.type !== 'llama3') throw new GgufError('not a llama3 rope');
  const s = config.positions.scaling!;
  const factor = (s.factor as number | undefined) ?? 8;
  const low = (s.low_freq_factor as number | undefined) ?? 1;
  const high = (s.high_freq_factor as number | undefined) ?? 4;
  const old = (s.original_max_position_embeddings as number | undefined) ?? 8192;
  const dim = config.headDim;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / config.positions.theta ** (Math.fround((2 * i) / dim));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < old / high) out[i] = 1;
    else if (wavelen > old / low) out[i] = factor;
    else {
      const smooth = (old / wavelen - low) / (high - low);
      out[i] = 1 / ((1 - smooth) / factor + smooth);
    }
  }
  return out;
}

interface TokenizerJsonModel {
  type?: string;
  vocab?: Record<string, number>;
  merges?: (string | [string, string])[];
  byte_fallback?: boolean;
  unk_token?: string | null;
}

/** Which `tokenizer.ggml.pre` llama.cpp should use, from the pre-tokenizer's split regex. */
export function ggufPreTokenizer(tokenizerJson: Record<string, unknown>): string {
  const text = JSON.stringify(tokenizerJson.pre_tokenizer ?? null);
  if (text.includes('\\\\p{N}{1,3}') || text.includes('\\p{N}{1,3}')) return 'llama-bpe';
  if (text.includes('[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}|') || text.includes('[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|')) return 'qwen2';
  const pre = tokenizerJson.pre_tokenizer as { type?: string; use_regex?: boolean } | null;
  if (pre?.type === 'ByteLevel' && pre.use_regex !== false) return 'gpt-2';
  return 'default';
}

export interface TokenizerMetadataResult {
  kv: GgufKv[];
  /** llama.cpp's tokenizer model ("gpt2" byte-level BPE or "llama" SentencePiece-style). */
  model: 'gpt2' | 'llama';
  eosTokens: string[];
  chatTemplate: string | null;
  /** SentencePiece-style tokenizers: the "▁" prefix llama.cpp adds, and whether tokenizer.json's pre-tokenizer is
   *  Metaspace (which adds none before a text that begins with a space, where llama.cpp adds one). */
  sentencePiece: SentencePieceLayout | null;
}

/** tokenizer.ggml.* and tokenizer.chat_template from tokenizer.json, tokenizer_config.json and the chat template. */
export function tokenizerMetadata(
  config: ModelConfig,
  tokenizerText: string,
  tokenizerConfigText: string | null,
  chatTemplateJinja: string | null,
  where = 'tokenizer.json',
): TokenizerMetadataResult {
  const json = JSON.parse(tokenizerText) as Record<string, unknown> & { model: TokenizerJsonModel; added_tokens?: { id: number; content: string; special?: boolean }[] };
  const tokenizer = HfTokenizer.fromJson(tokenizerText, tokenizerConfigText);
  const model = json.model;
  if (model.type !== 'BPE' || !model.vocab) {
    throw new GgufError(
      `${where}: model.type ${JSON.stringify(model.type)} is not exported to GGUF (supported: BPE, byte-level as GPT-2 / Llama 3 / Qwen, or SentencePiece-style with byte_fallback as Llama 2 / TinyLlama / Mistral)` +
        (model.type === 'Unigram' ? '; a Unigram tokenizer (T5, some SentencePiece models) needs llama.cpp\'s own converter from its tokenizer.model' : ''),
    );
  }
  const byteLevel = JSON.stringify([json.pre_tokenizer ?? null, json.decoder ?? null]).includes('"ByteLevel"');
  const ggmlModel: 'gpt2' | 'llama' = byteLevel ? 'gpt2' : 'llama';
  const spm = ggmlModel === 'llama' ? sentencePieceLayout(json, where) : null;

  const n = Math.max(config.vocabSize, tokenizer.vocabSize);
  const tokens: (string | null)[] = new Array(n).fill(null);
  const types = new Int32Array(n).fill(1); // NORMAL
  for (const [text, id] of Object.entries(model.vocab)) tokens[id] = text;
  if (ggmlModel === 'llama') {
    for (let id = 0; id < n; id++) if (tokens[id] !== null && /^<0x[0-9A-F]{2}>$/.test(tokens[id]!)) types[id] = 6; // BYTE
  }
  for (const t of json.added_tokens ?? []) {
    // llama.cpp matches user-defined tokens in the raw text, before spaces become "▁" (as convert_hf_to_gguf.py).
    tokens[t.id] = spm && !t.special ? t.content.replaceAll('\u2581', ' ') : t.content;
    types[t.id] = t.special ? 3 : 4; // CONTROL : USER_DEFINED
  }
  const unk = tokenizer.special.unk;
  if (unk && ggmlModel === 'llama') types[unk.id] = 2; // UNKNOWN
  for (let id = 0; id < n; id++) {
    if (tokens[id] === null) {
      tokens[id] = `[PAD${id}]`;
      types[id] = 5; // UNUSED
    }
  }
  const merges = (model.merges ?? []).map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));

  const kv: GgufKv[] = [
    { key: 'tokenizer.ggml.model', value: str(ggmlModel) },
    { key: 'tokenizer.ggml.pre', value: str(ggmlModel === 'gpt2' ? ggufPreTokenizer(json) : 'default') },
    { key: 'tokenizer.ggml.tokens', value: { type: 'string[]', value: tokens as string[] } },
  ];
  if (ggmlModel === 'llama') {
    // SPM merges the adjacent pair whose concatenation scores highest: −rank reproduces BPE's merge order.
    const scores = new Float32Array(n);
    const index = new Map((tokens as string[]).map((t, i) => [t, i]));
    merges.forEach((m, rank) => {
      const space = m.indexOf(' ');
      const id = index.get(m.slice(0, space) + m.slice(space + 1));
      if (id !== undefined && scores[id] === 0) scores[id] = -(rank + 1);
    });
    kv.push({ key: 'tokenizer.ggml.scores', value: { type: 'f32[]', value: scores } });
    checkSpmAgreement(tokens as string[], types, scores, merges, where);
  }
  kv.push({ key: 'tokenizer.ggml.token_type', value: { type: 'i32[]', value: types } });
  if (ggmlModel === 'gpt2') kv.push({ key: 'tokenizer.ggml.merges', value: { type: 'string[]', value: merges } });

  const { bos, eos, unk: unkToken, pad } = tokenizer.special;
  const bosId = bos?.id ?? config.bosTokenId;
  const eosId = eos?.id ?? config.eosTokenIds[0] ?? null;
  if (bosId !== null && bosId !== undefined) kv.push({ key: 'tokenizer.ggml.bos_token_id', value: u32(bosId) });
  if (eosId !== null) kv.push({ key: 'tokenizer.ggml.eos_token_id', value: u32(eosId) });
  if (unkToken) kv.push({ key: 'tokenizer.ggml.unknown_token_id', value: u32(unkToken.id) });
  const padId = pad?.id ?? config.padTokenId;
  if (padId !== null && padId !== undefined) kv.push({ key: 'tokenizer.ggml.padding_token_id', value: u32(padId) });
  const addBos = bosId !== null && bosId !== undefined && tokenizer.specialPrefix.includes(bosId);
  kv.push({ key: 'tokenizer.ggml.add_bos_token', value: { type: 'bool', value: addBos } });
  kv.push({ key: 'tokenizer.ggml.add_eos_token', value: { type: 'bool', value: eosId !== null && tokenizer.specialSuffix.includes(eosId) } });
  if (spm) kv.push({ key: 'tokenizer.ggml.add_space_prefix', value: { type: 'bool', value: spm.addSpacePrefix } });

  const tokenizerConfig = tokenizerConfigText ? (JSON.parse(tokenizerConfigText) as Record<string, unknown>) : null;
  const selected = selectChatTemplate(tokenizerConfig, { jinjaFile: chatTemplateJinja });
  const chatTemplate = selected.origin === 'fallback' ? null : selected.source;
  if (chatTemplate) kv.push({ key: 'tokenizer.chat_template', value: str(chatTemplate) });

  const eosTokens = [...new Set([eosId, ...config.eosTokenIds].filter((id): id is number => id !== null).map((id) => tokens[id]!))];
  return { kv, model: ggmlModel, eosTokens, chatTemplate, sentencePiece: spm };
}

// ---------------------------------------------------------------------------------------------------------------
// Merged model

export interface GgufExport {
  file: GgufFile;
  /** The file's metadata, as written. */
  metadata: GgufKv[];
  /** Tensor names and types, in file order. */
  tensors: { name: string; dims: number[]; type: GgmlTypeName }[];
  eosTokens: string[];
  chatTemplate: string | null;
  /** Matrices Q8_0 could not take (rows not a multiple of 32), written as F16 instead. */
  fallbacks: string[];
  /** Releases the checkpoint's files; call once the file has been written. */
  close(): Promise<void>;
}

async function readText(folder: ModelFiles, path: string): Promise<string | null> {
  const source = await folder.open(path);
  if (!source) return null;
  try {
    return new TextDecoder().decode(await source.read(0, source.size));
  } finally {
    await source.close?.();
  }
}

/**
 * The model in `folder`, with `adapter` merged in when given, as a GGUF file of `type`. Tensors are read from the
 * checkpoint one at a time while the file is produced (mergeModel's streaming: one adapted or permuted matrix in
 * memory at most, other tensors in chunks).
 */
export async function exportGguf(
  folder: ModelFiles,
  o: { adapter?: PeftAdapter | null; type?: GgufExportType; name?: string; maxChunkBytes?: number } = {},
): Promise<GgufExport> {
  const type = o.type ?? 'f16';
  const weights = await openModelWeights(folder);
  try {
    return await buildExport(folder, weights, type, o.adapter ?? null, o.name ?? folder.name, o.maxChunkBytes ?? 16 << 20);
  } catch (e) {
    await weights.close();
    throw e;
  }
}

async function buildExport(folder: ModelFiles, weights: ModelWeights, type: GgufExportType, adapter: PeftAdapter | null, name: string, maxChunkBytes: number): Promise<GgufExport> {
  const config = weights.config;
  const arch = ggufArchitecture(config);
  const tokenizerText = await readText(folder, 'tokenizer.json');
  if (tokenizerText === null) throw new GgufError(`${folder.name}: no tokenizer.json (GGUF files carry the tokenizer)`);
  const tok = tokenizerMetadata(config, tokenizerText, await readText(folder, 'tokenizer_config.json'), await readText(folder, 'chat_template.jinja'), `${folder.name}/tokenizer.json`);

  const merges = adapter ? adapterMerges(adapter) : new Map<string, (x: Float32Array) => Float32Array>();
  const linears = new Map(linearModules(config).map((m) => [`${m.canonical}.weight`, m]));
  const biases = new Map(linearModules(config).map((m) => [`${m.canonical}.bias`, m]));

  const matrixType: GgmlTypeName = type === 'f32' ? 'F32' : type === 'f16' ? 'F16' : 'Q8_0';
  const fallbacks: string[] = [];
  const tensors: GgufTensorSource[] = [];
  const canonicalNames = weights.names();
  for (const canonical of canonicalNames) {
    if (canonical === 'lm_head.weight' && config.tieWordEmbeddings && arch !== 'gpt2') continue; // llama.cpp reuses token_embd
    const info = weights.info(canonical);
    const shape = info.shape;
    const linear = linears.get(canonical);
    const bias = biases.get(canonical);
    // ggml dims: a weight [out, in] (Conv1D: [in, out], transposed on the way) → [in, out]; a vector → [n].
    const dims = linear ? [linear.inFeatures, linear.outFeatures] : shape.length === 2 ? [shape[1], shape[0]] : [shape[0]];
    let tensorType: GgmlTypeName = dims.length === 1 ? 'F32' : matrixType;
    if (tensorType === 'Q8_0' && dims[0] % QK8_0 !== 0) {
      tensorType = 'F16';
      fallbacks.push(ggufTensorName(canonical));
    }
    const module = linear ?? bias;
    const heads = module ? permuteHeads(config, module) : 0;
    const whole = linear !== undefined || heads > 0 || merges.has(canonical);
    const source = weights.resolved(canonical).source;
    tensors.push({
      name: ggufTensorName(canonical),
      dims,
      type: tensorType,
      f32Chunks: whole
        ? async function* () {
            yield await transformedWeight(weights, canonical, linear, bias, merges.get(canonical), heads);
          }
        : async function* () {
            for await (const chunk of weights.checkpoint.streamTensor(source, 'f32', maxChunkBytes)) yield chunk.data;
          },
    });
  }
  if (config.positions.kind === 'rope' && config.positions.type === 'llama3') {
    const factors = llama3RopeFactors(config);
    tensors.push({ name: 'rope_freqs.weight', dims: [factors.length], type: 'F32', f32Chunks: async function* () { yield factors; } });
  }

  const metadata: GgufKv[] = [
    { key: 'general.architecture', value: str(arch) },
    { key: 'general.type', value: str('model') },
    { key: 'general.name', value: str(name) },
    { key: 'general.file_type', value: u32(FILE_TYPE[matrixType]) },
    ...(matrixType === 'Q8_0' ? [{ key: 'general.quantization_version', value: u32(2) }] : []),
    ...architectureMetadata(config),
    ...tok.kv,
  ];
  const file = ggufFile(metadata, tensors);
  return {
    file,
    metadata,
    tensors: tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.type })),
    eosTokens: tok.eosTokens,
    chatTemplate: tok.chatTemplate,
    fallbacks,
    close: () => weights.close(),
  };
}

/** A linear weight (merged, transposed from Conv1D, q/k-permuted as needed) or a permuted q/k bias, as f32. */
async function transformedWeight(
  weights: ModelWeights,
  canonical: string,
  linear: LinearModule | undefined,
  bias: LinearModule | undefined,
  merge: ((x: Float32Array) => Float32Array) | undefined,
  heads: number,
): Promise<Float32Array> {
  let x = await weights.read(canonical, 'f32');
  if (merge) x = merge(x); // in the checkpoint's layout, before any transposition or permutation
  if (linear) {
    if (linear.fanInFanOut) x = transpose(x, linear.inFeatures, linear.outFeatures);
    if (heads) x = permuteRows(x, heads, linear.inFeatures);
  } else if (bias && heads) {
    x = permuteRows(x, heads, 1);
  }
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) throw new GgufError(`${canonical}: element ${i} is ${x[i]}${merge ? ' after merging' : ''}`);
  }
  return x;
}

// ---------------------------------------------------------------------------------------------------------------
// LoRA adapter

/**
 * A PEFT LoRA adapter as a GGUF LoRA adapter for llama.cpp (`--lora`, Ollama's ADAPTER): lora_a as PEFT's [r, in]
 * (ggml [in, r]), lora_b as [out, r] (ggml [r, out]) with q/k rows permuted as the base's are; llama.cpp scales by
 * alpha / r, so rsLoRA's α/√r is written as alpha = α·√r. F32 (adapters are small) or F16.
 */
export function exportAdapterGguf(config: ModelConfig, adapter: LoraAdapter, o: { type?: 'f32' | 'f16'; name?: string } = {}): { file: GgufFile; metadata: GgufKv[]; alpha: number } {
  const arch = ggufArchitecture(config);
  const type: GgmlTypeName = o.type === 'f16' ? 'F16' : 'F32';
  const tensors: GgufTensorSource[] = [];
  for (const m of adapter.modules) {
    const name = ggufTensorName(`${m.module.canonical}.weight`);
    const heads = permuteHeads(config, m.module);
    const r = adapter.rank;
    if (m.A.length !== r * m.inFeatures || m.B.length !== m.outFeatures * r) throw new GgufError(`${m.module.peftPath}: lora_A/lora_B are not [${r}, ${m.inFeatures}] and [${m.outFeatures}, ${r}]`);
    const B = heads ? permuteRows(m.B, heads, r) : m.B;
    tensors.push({ name: `${name}.lora_a`, dims: [m.inFeatures, r], type, f32Chunks: async function* () { yield m.A; } });
    tensors.push({ name: `${name}.lora_b`, dims: [r, m.outFeatures], type, f32Chunks: async function* () { yield B; } });
  }
  const alpha = adapter.rslora ? adapter.alpha * Math.sqrt(adapter.rank) : adapter.alpha;
  const metadata: GgufKv[] = [
    { key: 'general.architecture', value: str(arch) },
    { key: 'general.type', value: str('adapter') },
    { key: 'general.name', value: str(o.name ?? 'LoRA adapter') },
    { key: 'general.file_type', value: u32(FILE_TYPE[type]) },
    { key: 'adapter.type', value: str('lora') },
    { key: 'adapter.lora.alpha', value: f32(alpha) },
  ];
  return { file: ggufFile(metadata, tensors), metadata, alpha };
}
