// A checkpoint's weights on the GPU, tensor by tensor: config.json's architecture, the checkpoint's tensors
// (resolved to canonical names by weights.ts), the storage policy (f32, f16 where the adapter has shader-f16, NF4 for
// the linear layers) and nothing else. The file is streamed in chunks to the GPU: never whole in JS memory.
// The (V, C) tables (embedding, LM head) are split by rows into shards when they exceed one storage binding
// (src/gpu/sharded.ts): GPT-2's wte in f32 is 154 MB, over lavapipe's 128 MiB limit.
import { STORAGE_USAGE } from '../../gpu/buffers.ts';
import type { BufferRef } from '../../gpu/kernel.ts';
import type { Engine } from '../../gpu/engine.ts';
import { uploadNf4 } from '../../gpu/kernels/nf4.ts';
import { quantizeNf4 } from '../../gpu/ref/nf4.ref.ts';
import { allocateRowSharded, rowShardedBytes, tableBindingLimit, writeRows, type RowShardedTable } from '../../gpu/sharded.ts';
import type { ElementType } from '../../gpu/wgsl.ts';
import type { Checkpoint } from '../checkpoint.ts';
import type { ModelConfig } from '../config.ts';
import { assertWeightsMatch, linearModules, resolveWeights, type LinearModule } from '../weights.ts';
import type { BaseWeight, Linear } from './linear.ts';
import type { AttentionPrefix } from './attention-prefix.ts';
import type { VirtualTokens } from './virtual-tokens.ts';

export type Quantization = 'none' | 'nf4';

export interface LoadOptions {
  /** Storage of embeddings, head and dense linear layers. f16 needs shader-f16. */
  dtype: ElementType;
  /** NF4 for every linear layer's weight (not embeddings, norms or the head), as `eval --quant nf4` and QLoRA. */
  quant: Quantization;
  doubleQuant?: boolean;
  /** Where the weights came from, for messages. */
  where: string;
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
  /** Split the embedding and head tables as if this were the GPU's binding limit (tests force small shards). */
  maxBindingBytes?: number;
}

export interface Norm {
  kind: 'layernorm' | 'rmsnorm';
  eps: number;
  weight: GPUBuffer; // (C) f32
  bias?: GPUBuffer; // (C) f32, LayerNorm
  /** Full fine-tuning: the gradients of weight (and bias), ranges of the flat trainable grads. */
  grad?: { dweight: BufferRef; dbias?: BufferRef };
}

export interface Block {
  attnNorm: Norm;
  mlpNorm: Norm;
  /** GPT-2: the fused c_attn (out 3C), else q, k, v. Keyed by canonical suffix: qkv | q | k | v | o | up | gate | down. */
  linears: Map<string, Linear>;
  /** Qwen3: RMSNorm over each head's head_dim on q and k, before RoPE (weights of size head_dim). */
  qNorm?: Norm;
  kNorm?: Norm;
}

export interface GpuModel {
  config: ModelConfig;
  dtype: ElementType;
  quant: Quantization;
  embed: RowShardedTable; // (V, C) dtype, one shard when it fits in a binding
  posEmbed?: GPUBuffer; // (maxPositions, C) dtype, GPT-2
  blocks: Block[];
  finalNorm: Norm;
  head: RowShardedTable; // (V, C) dtype; the embedding itself when tied
  /** Bytes of weights on the GPU. */
  weightBytes: number;
  /** Every linear layer in forward order, with its PEFT module description. */
  modules: { module: LinearModule; linear: Linear }[];
  /** Full fine-tuning: the gradients of the tables (f32, one shard each), ranges of the flat trainable grads. The
   *  head's is absent when tied: its gradient adds into the embedding's. */
  tableGrads?: { embed: BufferRef; posEmbed?: BufferRef; head?: BufferRef };
  /** A prompt-learning method's virtual tokens ahead of every row (virtual-tokens.ts), while one is attached. */
  virtualTokens?: VirtualTokens;
  /** Prefix tuning's per-layer key/value rows ahead of every segment (attention-prefix.ts), while attached. */
  attentionPrefix?: AttentionPrefix;
  /** Some gradient of the backward is a bias's, taken as onesᵀ·dy (full fine-tuning's biases, a bottleneck adapter's
   *  b_d and b_u), so recordBackward fills a ones vector for them. Stored by updateBackwardNeedsOnes when those hooks
   *  change, so no backward walks every layer to find out. */
  backwardNeedsOnes?: boolean;
}

/** Re-decides GpuModel.backwardNeedsOnes from the hooks now in place. Call it after setting or removing
 *  GpuModel.tableGrads or any Linear.bottleneck (a method's attach and detach, an adapter's attach and undo). */
export function updateBackwardNeedsOnes(model: GpuModel): void {
  model.backwardNeedsOnes = !!model.tableGrads || model.blocks.some((b) => [...b.linears.values()].some((l) => l.bottleneck));
}

/** Every norm of the model by its canonical name (model/weights.ts: final_norm, layers.N.attn_norm, …), the q/k
 *  norms where the model has them: what full fine-tuning trains and a full run's weights replace. */
export function namedNorms(model: GpuModel): [string, Norm][] {
  const named: [string, Norm | undefined][] = [['final_norm', model.finalNorm]];
  model.blocks.forEach((block, i) => {
    named.push([`layers.${i}.attn_norm`, block.attnNorm], [`layers.${i}.mlp_norm`, block.mlpNorm]);
    named.push([`layers.${i}.attn.q_norm`, block.qNorm], [`layers.${i}.attn.k_norm`, block.kNorm]);
  });
  return named.filter((x): x is [string, Norm] => x[1] !== undefined);
}

export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}

function f32Of(x: Float32Array | Uint16Array): Float32Array {
  if (!(x instanceof Float32Array)) throw new Error('expected f32 storage');
  return x;
}

/** Uploads a model. The caller keeps the checkpoint open until this resolves and closes it afterwards. */
export async function loadGpuModel(e: Engine, config: ModelConfig, checkpoint: Checkpoint, o: LoadOptions): Promise<GpuModel> {
  // The MLP kernels implement GELU's tanh approximation (GPT-2's gelu_new = gelu_pytorch_tanh) and SiLU-gated MLPs;
  // anything else would run silently wrong, so it is refused by name.
  const activationOk = config.mlp === 'gated' ? config.activation === 'silu' : config.activation === 'gelu_new' || config.activation === 'gelu_pytorch_tanh';
  if (!activationOk) {
    throw new ModelLoadError(
      `${o.where}: a ${config.mlp} MLP with activation "${config.activation}" is not supported by the engine ` +
        `(supported: ${config.mlp === 'gated' ? 'silu' : 'gelu_new, gelu_pytorch_tanh'})`,
    );
  }
  if (o.dtype === 'f16' && !e.gpu.hasF16) {
    throw new ModelLoadError(`${o.where}: f16 weights need the shader-f16 feature, which this GPU (${e.gpu.adapter.name}) lacks; use f32`);
  }
  const shapes = new Map(checkpoint.names().map((n) => [n, checkpoint.info(n).shape]));
  const report = resolveWeights(config, shapes);
  assertWeightsMatch(report, o.where);
  const bytesTotal = checkpoint.totalBytes();
  let bytesDone = 0;
  const maxBinding = e.gpu.limits.maxStorageBufferBindingSize;
  const tableLimit = Math.min(tableBindingLimit(e.device), o.maxBindingBytes ?? Infinity);
  const uploaded = new Map<string, GPUBuffer>();
  const tables = new Map<string, RowShardedTable>();
  let weightBytes = 0;

  const sourceOf = (canonical: string) => {
    const t = report.tensors.get(canonical);
    if (!t) throw new ModelLoadError(`${o.where}: ${canonical} is missing`);
    return t.source;
  };

  /** Streams one tensor to a new GPU buffer in `dtype` (f32 for vectors), chunk by chunk. */
  const dense = async (canonical: string, dtype: ElementType): Promise<GPUBuffer> => {
    const source = sourceOf(canonical);
    const cached = uploaded.get(`${source}:${dtype}`);
    if (cached) return cached;
    const info = checkpoint.info(source);
    const elements = info.shape.reduce((a, b) => a * b, 1);
    const bytes = elements * (dtype === 'f16' ? 2 : 4);
    if (bytes > maxBinding) {
      throw new ModelLoadError(
        `${o.where}: tensor ${source} needs ${bytes} bytes in one binding, above this GPU's maxStorageBufferBindingSize (${maxBinding}); ` +
          'only the embedding and LM head tables are split across bindings',
      );
    }
    const buffer = e.buffers.acquire(bytes, STORAGE_USAGE, canonical);
    const storedPerElement = (info.end - info.begin) / elements;
    const bytesPerElement = dtype === 'f16' ? 2 : 4;
    // Chunks hold an even number of elements but the last, so every write but the last starts 4-byte aligned.
    for await (const chunk of checkpoint.streamTensor(source, dtype)) {
      const data = chunk.data;
      const padded = data.byteLength % 4 === 0 ? data : padTo4(data);
      e.device.queue.writeBuffer(buffer, chunk.elementOffset * bytesPerElement, padded.buffer as ArrayBuffer, padded.byteOffset, padded.byteLength);
      bytesDone += data.length * storedPerElement;
      o.onProgress?.(bytesDone, bytesTotal);
    }
    uploaded.set(`${source}:${dtype}`, buffer);
    weightBytes += buffer.size;
    return buffer;
  };

  /** Streams a (rows, cols) table to the GPU in `o.dtype`, split by rows into shards that each fit one binding. */
  const table = async (canonical: string): Promise<RowShardedTable> => {
    const source = sourceOf(canonical);
    const cached = tables.get(source);
    if (cached) return cached; // tied head: the embedding's table
    const info = checkpoint.info(source);
    if (info.shape.length !== 2) throw new ModelLoadError(`${o.where}: ${source} has shape [${info.shape}], expected (rows, cols)`);
    const [rows, cols] = info.shape;
    const t = allocateRowSharded(e.buffers, rows, cols, o.dtype, tableLimit, canonical);
    const storedPerElement = (info.end - info.begin) / (rows * cols);
    // Chunks hold an even number of elements but the last and shards start on even elements: the writes stay aligned.
    for await (const chunk of checkpoint.streamTensor(source, o.dtype)) {
      writeRows(e.device, t, chunk.elementOffset, chunk.data);
      bytesDone += chunk.data.length * storedPerElement;
      o.onProgress?.(bytesDone, bytesTotal);
    }
    tables.set(source, t);
    weightBytes += rowShardedBytes(t);
    return t;
  };

  const vector = async (canonical: string) => dense(canonical, 'f32');
  const norm = async (prefix: string): Promise<Norm> => ({
    kind: config.norm.kind,
    eps: config.norm.eps,
    weight: await vector(`${prefix}.weight`),
    bias: config.norm.kind === 'layernorm' ? await vector(`${prefix}.bias`) : undefined,
  });

  const baseWeight = async (m: LinearModule): Promise<BaseWeight> => {
    const canonical = `${m.canonical}.weight`;
    if (o.quant === 'nf4') {
      const source = sourceOf(canonical);
      let w = f32Of(await checkpoint.readTensor(source, 'f32'));
      if (m.fanInFanOut) w = transpose(w, m.inFeatures, m.outFeatures); // Conv1D [in, out] → [out, in], as transformers does
      const q = uploadNf4(e, quantizeNf4(w, { doubleQuant: !!o.doubleQuant }), m.outFeatures, m.inFeatures, canonical);
      bytesDone += checkpoint.info(source).end - checkpoint.info(source).begin;
      o.onProgress?.(bytesDone, bytesTotal);
      weightBytes += q.bytes;
      return { kind: 'nf4', weight: q };
    }
    return { kind: 'dense', buffer: await dense(canonical, o.dtype), elem: o.dtype, conv1d: m.fanInFanOut };
  };

  const embed = await table('embed.weight');
  const posEmbed = config.positions.kind === 'learned' ? await dense('pos_embed.weight', o.dtype) : undefined;
  const modules: GpuModel['modules'] = [];
  const blocks: Block[] = [];
  const all = linearModules(config);
  for (let i = 0; i < config.numLayers; i++) {
    const attnNorm = await norm(`layers.${i}.attn_norm`);
    const linears = new Map<string, Linear>();
    for (const m of all.filter((x) => x.layer === i)) {
      const linear: Linear = {
        path: m.peftPath,
        inFeatures: m.inFeatures,
        outFeatures: m.outFeatures,
        weight: await baseWeight(m),
        bias: m.hasBias ? await vector(`${m.canonical}.bias`) : undefined,
      };
      linears.set(m.canonical.slice(m.canonical.lastIndexOf('.') + 1), linear);
      modules.push({ module: m, linear });
    }
    const headNorm = async (name: string): Promise<Norm> => ({ kind: 'rmsnorm', eps: config.norm.eps, weight: await vector(`layers.${i}.attn.${name}.weight`) });
    const qkNorms = config.qkNorm ? { qNorm: await headNorm('q_norm'), kNorm: await headNorm('k_norm') } : {};
    blocks.push({ attnNorm, mlpNorm: await norm(`layers.${i}.mlp_norm`), linears, ...qkNorms });
  }
  const finalNorm = await norm('final_norm');
  const head = await table('lm_head.weight');
  // A model too big for this GPU's memory fails here, naming the tensor, rather than at the first step.
  await e.buffers.ready().catch((err: Error) => {
    throw new ModelLoadError(`${o.where}: ${err.message}`);
  });
  return { config, dtype: o.dtype, quant: o.quant, embed, posEmbed, blocks, finalNorm, head, weightBytes, modules };
}

function padTo4<T extends Float32Array | Uint16Array>(data: T): Uint8Array {
  const out = new Uint8Array(Math.ceil(data.byteLength / 4) * 4);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return out;
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  return out;
}
