// Folding an adapter into its base model (LoRA: W' = W + s·B·A; IA³: W' = W ⊙ l) for every adapted linear layer, exported as an f16 (or f32)
// safetensors checkpoint with config.json and the tokenizer files, loadable by transformers as a plain model.
//
// The merged model.safetensors is streamed: its header is computed up front from the checkpoint's shapes (every tensor
// becomes F16, so the layout is known before any data is read), then tensors are produced one at a time. Peak memory
// is one adapted weight matrix (read whole, merged, converted) or one chunk of any other tensor, so a 0.5B model merges
// in a browser tab. Output is always one file (no sharding): fine up to a few GB, the models this app trains.

import { readJsonFile, type ModelFiles } from '../model/checkpoint.ts';
import type { ByteSource } from '../model/safetensors.ts';
import { f32ArrayToBf16, f32ArrayToF16 } from '../gpu/half.ts';
import { openModelWeights } from '../model/load.ts';
import { compareUtf8, SafetensorsError } from '../model/safetensors.ts';
import { mergeDoraWeight } from './methods/dora/config.ts';
import { adapterMethod, type PeftAdapter, type PromptAdapter } from './peft.ts';

/**
 * W + scale·B·A, as a new array. W is [out, in] for nn.Linear, [in, out] for GPT-2's Conv1D (fanInFanOut), where the
 * update is added transposed. A is [r, in], B is [out, r]. The product is accumulated in float64.
 */
export function mergeLora(
  W: Float32Array,
  A: Float32Array,
  B: Float32Array,
  scale: number,
  fanInFanOut: boolean,
  shape: { inFeatures: number; outFeatures: number },
): Float32Array {
  const { inFeatures: n, outFeatures: m } = shape;
  const r = A.length / n;
  if (W.length !== n * m) throw new Error(`mergeLora: W has ${W.length} values, expected ${fanInFanOut ? `[${n}, ${m}]` : `[${m}, ${n}]`}`);
  if (!Number.isInteger(r) || B.length !== m * r) throw new Error(`mergeLora: A has ${A.length} and B ${B.length} values: not [r, ${n}] and [${m}, r]`);
  const out = W.slice();
  const row = new Float64Array(n);
  for (let o = 0; o < m; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = B[o * r + k] * scale;
      if (b === 0) continue;
      const a = k * n;
      for (let i = 0; i < n; i++) row[i] += b * A[a + i];
    }
    if (fanInFanOut) for (let i = 0; i < n; i++) out[i * m + o] += row[i];
    else for (let i = 0; i < n; i++) out[o * n + i] += row[i];
  }
  return out;
}

/**
 * W ⊙ l, PEFT's IA³ merge: an output-scaling vector scales W's rows (nn.Linear [out, in]; a Conv1D [in, out] its
 * columns), a feed-forward one W's input columns (Conv1D: rows). Exact in f32 (one product per element).
 */
export function mergeIa3(
  W: Float32Array,
  l: Float32Array,
  feedforward: boolean,
  fanInFanOut: boolean,
  shape: { inFeatures: number; outFeatures: number },
): Float32Array {
  const { inFeatures: n, outFeatures: m } = shape;
  if (W.length !== n * m) throw new Error(`mergeIa3: W has ${W.length} values, expected ${n * m}`);
  if (l.length !== (feedforward ? n : m)) throw new Error(`mergeIa3: l has ${l.length} values, expected ${feedforward ? n : m}`);
  const out = new Float32Array(W.length);
  // Element (o, i) of the [out, in] view lives at o·n + i, or at i·m + o for Conv1D.
  for (let o = 0; o < m; o++) {
    for (let i = 0; i < n; i++) {
      const at = fanInFanOut ? i * m + o : o * n + i;
      out[at] = W[at] * l[feedforward ? i : o];
    }
  }
  return out;
}

/** Why a prompt-learning adapter (from `where`) has nothing to merge: the one wording of the studio's merge and the
 *  CLI's, each adding what to do instead. */
export function promptMergeRefusal(adapter: PromptAdapter, where: string): string {
  const what = adapterMethod(adapter) === 'prefix-tuning' ? 'its key/value prefix is attention input, not a weight' : 'its virtual tokens are inputs, not weights';
  return `${where} is a ${adapter.peftType} adapter: ${what}, so there is nothing to merge`;
}

/** How `adapter` changes the base checkpoint, per canonical tensor name ("layers.0.attn.q.weight"): LoRA adds s·B·A
 *  to adapted weights; DoRA rescales W + s·B·A row by row (methods/dora/config.ts mergeDoraWeight); IA³ scales weights, and the bias of a layer whose output it scales (as PEFT's merge does). */
export function adapterMerges(adapter: PeftAdapter): Map<string, (x: Float32Array) => Float32Array> {
  const merges = new Map<string, (x: Float32Array) => Float32Array>();
  if (adapter.kind === 'prompt') throw new Error(`${promptMergeRefusal(adapter, adapter.where)} (use the adapter as it is)`);
  if (adapter.kind === 'ia3') {
    for (const m of adapter.modules) {
      const shape = m.module;
      merges.set(`${m.module.canonical}.weight`, (W) => mergeIa3(W, m.l, m.feedforward, m.module.fanInFanOut, shape));
      if (!m.feedforward && m.module.hasBias) merges.set(`${m.module.canonical}.bias`, (b) => b.map((v, o) => v * m.l[o]));
    }
    return merges;
  }
  if (adapter.dora) {
    // DoRA: W' = (m / ‖W + s·B·A‖) ⊙ (W + s·B·A) per output row; the bias stays (PEFT's merge leaves it).
    for (const m of adapter.modules) {
      const magnitude = m.magnitude;
      if (!magnitude) throw new Error(`${m.peftPath}: a DoRA adapter without its lora_magnitude_vector`);
      merges.set(`${m.module.canonical}.weight`, (W) =>
        mergeDoraWeight(W, { out: m.outFeatures, in: m.inFeatures, r: adapter.rank, scale: adapter.scale, conv1d: m.module.fanInFanOut, A: m.A, B: m.B, m: magnitude, where: m.peftPath }),
      );
    }
    return merges;
  }
  for (const m of adapter.modules) merges.set(`${m.module.canonical}.weight`, (W) => mergeLora(W, m.A, m.B, adapter.scale, m.module.fanInFanOut, m));
  return merges;
}

/** A file of the merged model, produced on demand. */
export interface OutputFile {
  path: string;
  size: number;
  /** The content, in order; each call starts from the beginning. */
  chunks(): AsyncGenerator<Uint8Array>;
}

export interface MergedModel {
  /** model.safetensors, config.json, then the tokenizer and generation files the base folder has. */
  files: OutputFile[];
  /** Releases the base checkpoint's file handles; call when every file has been written. */
  close(): Promise<void>;
}

/** Files copied unchanged from the base model's folder when present. */
export const COPIED_FILES = [
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'chat_template.jinja',
  'chat_template.json',
];

/**
 * The base model in `folder` with `adapter` merged into it, every tensor stored as F16. The base checkpoint is
 * validated against its config first (openModelWeights). A value outside the f16 range after merging is an error
 * naming the tensor rather than a silent infinity.
 */
export async function mergeModel(
  folder: ModelFiles,
  adapter: PeftAdapter,
  maxChunkBytes = 16 << 20,
  /** f16 (the default: half the size, what transformers loads as torch_dtype float16), or f32 for exactness. */
  dtype: 'f16' | 'f32' = 'f16',
): Promise<MergedModel> {
  return rewriteModel(folder, adapterMerges(adapter), dtype, maxChunkBytes);
}

export type OutputDtype = 'f16' | 'f32' | 'bf16';

const SAFETENSORS_DTYPE = { f16: 'F16', f32: 'F32', bf16: 'BF16' } as const;
const TORCH_DTYPE = { f16: 'float16', f32: 'float32', bf16: 'bfloat16' } as const;

/**
 * The model in `folder` with some tensors replaced (canonical name → the new values from the old: a merge, or a fully
 * fine-tuned tensor), every tensor stored in `dtype`, with config.json (its dtype updated) and the tokenizer and
 * generation files. Streamed as mergeModel describes.
 */
export async function rewriteModel(
  folder: ModelFiles,
  replacements: ReadonlyMap<string, (x: Float32Array) => Float32Array>,
  dtype: OutputDtype,
  maxChunkBytes = 16 << 20,
): Promise<MergedModel> {
  const weights = await openModelWeights(folder);
  const checkpoint = weights.checkpoint;
  // Checkpoint tensor name → its replacement.
  const adapted = new Map([...replacements].map(([canonical, merge]) => [weights.resolved(canonical).source, merge]));
  const encode = (name: string, values: Float32Array, elementOffset: number): Uint8Array => {
    if (dtype === 'f32') return bytesOf(values);
    if (dtype === 'bf16') return bytesOf(f32ArrayToBf16(values));
    const half = f32ArrayToF16(values);
    checkF16(checkpoint.fileOf(name).name, name, half, elementOffset);
    return bytesOf(half);
  };

  // Every tensor in one dtype, in safetensors' order (dtype, then name bytes: one dtype here, so name order).
  const itemBytes = dtype === 'f32' ? 4 : 2;
  const names = checkpoint.names().sort(compareUtf8);
  const layout: { name: string; shape: number[]; begin: number; end: number }[] = [];
  let offset = 0;
  for (const name of names) {
    const { shape, numel } = checkpoint.info(name);
    layout.push({ name, shape, begin: offset, end: offset + itemBytes * numel });
    offset += itemBytes * numel;
  }
  const header = safetensorsHeader(layout, { format: 'pt' }, SAFETENSORS_DTYPE[dtype]);
  const dataBytes = offset;

  const model: OutputFile = {
    path: 'model.safetensors',
    size: header.length + dataBytes,
    async *chunks() {
      yield header;
      for (const { name } of layout) {
        const merge = adapted.get(name);
        if (merge) {
          const merged = merge(await checkpoint.readTensor(name, 'f32'));
          const expected = checkpoint.info(name).numel;
          if (merged.length !== expected) throw new Error(`${name}: ${merged.length} values to write, the checkpoint's tensor has ${expected}`);
          yield encode(name, merged, 0);
        } else if (dtype === 'bf16') {
          for await (const chunk of checkpoint.streamTensor(name, 'f32', maxChunkBytes)) yield encode(name, chunk.data as Float32Array, chunk.elementOffset);
        } else {
          for await (const chunk of checkpoint.streamTensor(name, dtype, maxChunkBytes)) {
            if (chunk.data instanceof Uint16Array) checkF16(checkpoint.fileOf(name).name, name, chunk.data, chunk.elementOffset);
            yield bytesOf(chunk.data);
          }
        }
      }
    },
  };

  const configJson = (await readJsonFile(folder, 'config.json')) as Record<string, unknown>;
  // transformers 5 writes "dtype", older versions "torch_dtype": update whichever the base uses.
  const dtypeKey = 'torch_dtype' in configJson && !('dtype' in configJson) ? 'torch_dtype' : 'dtype';
  const configBytes = new TextEncoder().encode(`${JSON.stringify({ ...configJson, [dtypeKey]: TORCH_DTYPE[dtype] }, null, 2)}\n`);
  const files: OutputFile[] = [model, { path: 'config.json', size: configBytes.length, async *chunks() { yield configBytes; } }];

  // The copied files stay open until the output is closed (each chunks() call reads them from the start).
  const copied: ByteSource[] = [];
  for (const path of COPIED_FILES) {
    const source = await folder.open(path);
    if (!source) continue;
    copied.push(source);
    files.push({
      path,
      size: source.size,
      async *chunks() {
        for (let at = 0; at < source.size; at += maxChunkBytes) {
          const bytes = await source.read(at, Math.min(maxChunkBytes, source.size - at));
          if (bytes.length === 0) throw new Error(`${source.name}: short read at ${at} of ${source.size} bytes`);
          yield bytes;
        }
      },
    });
  }
  return {
    files,
    async close() {
      for (const source of copied) await source.close?.();
      await weights.close();
    },
  };
}

/** A whole output file in memory: for small models and tests. */
export async function readWhole(file: OutputFile): Promise<Uint8Array> {
  const out = new Uint8Array(file.size);
  let at = 0;
  for await (const chunk of file.chunks()) {
    if (at + chunk.length > file.size) throw new Error(`${file.path}: produced more than its declared ${file.size} bytes`);
    out.set(chunk, at);
    at += chunk.length;
  }
  if (at !== file.size) throw new Error(`${file.path}: produced ${at} bytes, declared ${file.size}`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

/** The 8-byte length and JSON header of a one-dtype safetensors file, formatted as writeSafetensors formats it. */
function safetensorsHeader(
  layout: { name: string; shape: number[]; begin: number; end: number }[],
  metadata: Record<string, string>,
  dtype: 'F16' | 'F32' | 'BF16',
): Uint8Array {
  const parts = [`"__metadata__":${JSON.stringify(metadata)}`];
  for (const t of layout) parts.push(`${JSON.stringify(t.name)}:{"dtype":"${dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${t.begin},${t.end}]}`);
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

function checkF16(file: string, name: string, half: Uint16Array, elementOffset: number): void {
  for (let i = 0; i < half.length; i++) {
    if ((half[i] & 0x7c00) === 0x7c00) {
      throw new SafetensorsError(file, name, `element ${elementOffset + i} is ${half[i] & 0x3ff ? 'NaN' : 'infinite'} in f16 after merging (outside ±65504): the merged model cannot be stored as f16`);
    }
  }
}

function bytesOf(a: Uint16Array | Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

