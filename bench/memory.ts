// Table 4: GPU memory of a Qwen2.5-0.5B-shaped layer stack for LoRA over f32 weights, LoRA over f16 weights and
// QLoRA (NF4), measured by the BufferPool's live/peak counters while every tensor of the stack is allocated as a
// real GPU buffer of its shape, against the analytic estimate (src/model/memory.ts). No model runs: weights, LoRA
// parameters, their gradients and AdamW moments are allocated; activations are the estimate's alone here (table 5
// measures the trainer's own peak on the models it runs).
import { BufferPool, GpuOutOfMemoryError } from '../src/gpu/buffers.ts';
import { CATALOGUE } from '../src/model/catalogue.ts';
import { PEFT_DEFAULT_TARGET_MODULES } from '../src/model/weights.ts';
import { estimateTrainingMemory, linearShapes, type BaseDtype, type ModelDims } from '../src/model/memory.ts';
import type { BenchContext, SectionResult } from './context.ts';
import { formatBytes, formatRatio, ratio } from './lib/stats.ts';

const MODEL = 'Qwen/Qwen2.5-0.5B-Instruct';
const RANK = 16;
const BATCH = 1;
const SEQ_LEN = 256;

interface MemoryRow {
  config: string;
  base: BaseDtype;
  embeddingDtype: 'f32' | 'f16';
  measured: { baseWeightBytes: number; loraBytes: number; liveBytes: number; peakBytes: number } | null;
  estimate: ReturnType<typeof estimateTrainingMemory>;
  largestBufferBytes: number;
  /** Why the measurement is missing or partial: over maxBufferSize, out of memory, no shader-f16. */
  problems: string[];
  /** Buffers above maxStorageBufferBindingSize: allocatable, but a kernel must bind them in slices. */
  overBindingLimit: string[];
}

/** Bytes of one NF4 weight as nf4.ts lays it out without double quantization (the estimate's assumption):
 *  4-bit codes (u32-padded) and one f32 absmax per block of 64. */
function nf4Bytes(elements: number): { codes: number; absmax: number } {
  return { codes: Math.ceil(elements / 2), absmax: Math.ceil(elements / 64) * 4 };
}

export async function runMemory(ctx: BenchContext): Promise<SectionResult> {
  const entry = CATALOGUE.find((m) => m.repo === MODEL);
  if (!entry) throw new Error(`memory benchmark: ${MODEL} is not in the catalogue`);
  const dims = entry.dims;
  const shapes = linearShapes(dims);
  const defaults = PEFT_DEFAULT_TARGET_MODULES[entry.modelType];
  const targets = shapes.filter((s) => defaults.includes(s.name));
  const emb: 'f32' | 'f16' = ctx.e.gpu.hasF16 ? 'f16' : 'f32';
  const configs: { config: string; base: BaseDtype }[] = [
    { config: 'LoRA f32', base: 'f32' },
    { config: 'LoRA f16', base: 'f16' },
    { config: 'QLoRA (NF4)', base: 'nf4' },
  ];
  const rows: MemoryRow[] = [];
  for (const c of configs) {
    ctx.log(`  memory ${c.config}`);
    rows.push(await measureConfig(ctx, dims, c.config, c.base, emb, targets));
  }
  const f32 = rows[0];
  const q = rows[2];
  const gib = (b?: number | null) => formatBytes(b);
  return {
    table: {
      title: `4. memory: ${entry.title}-shaped stack, r = ${RANK} on ${targets.map((t) => t.name).join(', ')}, batch ${BATCH} × ${SEQ_LEN} tokens`,
      columns: [
        { header: 'config' },
        { header: 'linears / embeddings' },
        { header: 'base weights measured', align: 'right' },
        { header: 'estimate', align: 'right' },
        { header: 'measured − estimate', align: 'right' },
        { header: 'LoRA + grads + Adam measured', align: 'right' },
        { header: 'estimate', align: 'right' },
        { header: 'pool peak', align: 'right' },
        { header: 'est. activations + transients', align: 'right' },
        { header: 'est. total', align: 'right' },
        { header: 'largest buffer', align: 'right' },
        { header: 'notes' },
      ],
      rows: rows.map((r) => [
        r.config,
        `${r.base} / ${r.embeddingDtype}`,
        gib(r.measured?.baseWeightBytes),
        gib(r.estimate.baseWeightBytes),
        r.measured ? `${r.measured.baseWeightBytes - r.estimate.baseWeightBytes} B` : '–',
        gib(r.measured?.loraBytes),
        gib(r.estimate.loraBytes),
        gib(r.measured?.peakBytes),
        gib(r.estimate.activationBytes + r.estimate.transientBytes),
        gib(r.estimate.totalBytes),
        r.measured ? gib(r.largestBufferBytes) : '–',
        [...r.problems, ...(r.overBindingLimit.length ? [`above the ${gib(ctx.e.gpu.limits.maxStorageBufferBindingSize)} binding limit (bind in slices): ${r.overBindingLimit.join(', ')}`] : [])].join('; ') || 'ok',
      ]),
      notes: [
        'measured: BufferPool live/peak bytes while real GPU buffers of every weight (linears, q/k/v biases, norms, tied embedding) and every LoRA A/B with its gradient and two AdamW moments are held; no model runs.',
        'estimate: estimateTrainingMemory (src/model/memory.ts). Activations and transients are not allocated here: they are the estimate alone (table 5 has the trainer\'s measured peak).',
        `embeddings in ${emb} for every config${emb === 'f32' ? ' (no shader-f16 on this adapter)' : ''}; NF4 without double quantization, as the estimate assumes.`,
        `QLoRA / LoRA-f32: measured weights + LoRA state ${formatRatio(ratio(q.measured?.peakBytes, f32.measured?.peakBytes))}, estimated training total ${formatRatio(ratio(q.estimate.totalBytes, f32.estimate.totalBytes))} (target ≤ 0.40× of the LoRA-f32 peak).`,
      ],
    },
    data: { model: MODEL, rank: RANK, batch: BATCH, seqLen: SEQ_LEN, targets: targets.map((t) => t.name), rows },
  };
}

async function measureConfig(
  ctx: BenchContext,
  dims: ModelDims,
  config: string,
  base: BaseDtype,
  embeddingDtype: 'f32' | 'f16',
  targets: { name: string; in: number; out: number }[],
): Promise<MemoryRow> {
  const { device } = ctx.e;
  const estimate = estimateTrainingMemory({
    dims,
    base,
    embeddingDtype,
    // LoRA r = RANK on these targets of every layer (the lora method's footprint).
    trainable: {
      params: dims.numLayers * targets.reduce((s, t) => s + RANK * (t.in + t.out), 0),
      activationsPerToken: dims.numLayers * RANK * targets.length,
    },
    batch: BATCH,
    seqLen: SEQ_LEN,
  });
  const row: MemoryRow = { config, base, embeddingDtype, measured: null, estimate, largestBufferBytes: 0, problems: [], overBindingLimit: [] };
  if (base === 'f16' && !ctx.e.gpu.hasF16) {
    row.problems.push('f16 weights need shader-f16');
    return row;
  }
  // A pool of its own, so its counters hold this stack and nothing else.
  const pool = new BufferPool(device);
  const held: GPUBuffer[] = [];
  const bindingLimit = ctx.e.gpu.limits.maxStorageBufferBindingSize;
  const alloc = (bytes: number, label: string) => {
    row.largestBufferBytes = Math.max(row.largestBufferBytes, bytes);
    if (bytes > bindingLimit && !row.overBindingLimit.includes(label.replace(/\.\d+\./, '.N.'))) row.overBindingLimit.push(label.replace(/\.\d+\./, '.N.'));
    held.push(pool.acquire(bytes, undefined, label));
  };
  device.pushErrorScope('out-of-memory');
  try {
    const embBytes = embeddingDtype === 'f32' ? 4 : 2;
    const weightBytes = base === 'f32' ? 4 : 2;
    alloc(dims.vocabSize * dims.hiddenSize * embBytes, 'embed_tokens');
    if (dims.learnedPositions) alloc(dims.learnedPositions * dims.hiddenSize * embBytes, 'embed_positions');
    if (!dims.tieWordEmbeddings) alloc(dims.vocabSize * dims.hiddenSize * embBytes, 'lm_head');
    const normBytes = dims.hiddenSize * 4 * (dims.normBias ? 2 : 1);
    const linears = linearShapes(dims);
    const biased = dims.linearBias === 'all' ? linears : dims.linearBias === 'qkv' ? linears.slice(0, 3) : [];
    for (let l = 0; l < dims.numLayers; l++) {
      for (const s of linears) {
        const n = s.in * s.out;
        if (base === 'nf4') {
          const b = nf4Bytes(n);
          alloc(b.codes, `layers.${l}.${s.name}.codes`);
          alloc(b.absmax, `layers.${l}.${s.name}.absmax`);
        } else {
          alloc(n * weightBytes, `layers.${l}.${s.name}`);
        }
      }
      for (const s of biased) alloc(s.out * 4, `layers.${l}.${s.name}.bias`);
      alloc(normBytes, `layers.${l}.input_layernorm`);
      alloc(normBytes, `layers.${l}.post_attention_layernorm`);
    }
    alloc(normBytes, 'norm');
    const baseWeightBytes = pool.stats().liveBytes;
    for (let l = 0; l < dims.numLayers; l++) {
      for (const t of targets) {
        for (const part of ['weight', 'grad', 'adam_m', 'adam_v']) {
          alloc(RANK * t.in * 4, `layers.${l}.${t.name}.lora_A.${part}`);
          alloc(t.out * RANK * 4, `layers.${l}.${t.name}.lora_B.${part}`);
        }
      }
    }
    const stats = pool.stats();
    row.measured = { baseWeightBytes, loraBytes: stats.liveBytes - baseWeightBytes, liveBytes: stats.liveBytes, peakBytes: stats.peakBytes };
  } catch (err) {
    if (!(err instanceof GpuOutOfMemoryError)) throw err;
    row.problems.push(err.message);
  } finally {
    const oom = await device.popErrorScope();
    if (oom) {
      row.problems.push(`out of memory: ${oom.message}`);
      row.measured = null;
    }
    for (const b of held) pool.release(b);
    pool.trim();
  }
  return row;
}
