// The transformer as explicit forward and backward passes over the kernels (llm.c's style, no autograd tape):
//
//   x = embed(tokens) (+ wpe[positions])
//   per block:  n1 = norm(x);  q, k, v = linears(n1) (GPT-2: one fused c_attn, split by columns);  RoPE(q, k)
//               o = attention(q, k, v; causal within segments);  xmid = x + o_proj(o)
//               n2 = norm(xmid);  a = gelu(c_fc(n2)) | silu(gate(n2))·up(n2);  x' = xmid + down(a)
//   hs = norm(x_L);  loss = Σ cross-entropy(hs·headᵀ, targets) over targets ≠ −100, and the count
//
// The base weights are frozen unless fully fine-tuned: the backward computes activation gradients all the way down
// and weight gradients only for the method's tensors (LoRA's A and B, …; full fine-tuning: every weight). Activations the backward reads are kept per block (see BlockActs).
import type { Engine } from '../../gpu/engine.ts';
import type { BufferRef, Recorder } from '../../gpu/kernel.ts';
import { recordSwiglu, recordSwigluBackward, recordGelu, recordGeluBackward } from '../../gpu/kernels/activation.ts';
import { attentionStatsBytes, recordAttentionBackward, recordAttentionForward } from '../../gpu/kernels/attention.ts';
import { recordGatherColumns, recordScatterColumns } from '../../gpu/kernels/columns.ts';
import { recordEmbedding } from '../../gpu/kernels/embedding.ts';
import { planEmbeddingGrad, recordEmbeddingGrad } from '../../gpu/kernels/embedding-grad.ts';
import { normStatsLength, recordNormBackward, recordNormForward } from '../../gpu/kernels/norm.ts';
import { recordRope, ropeInvFreq } from '../../gpu/kernels/rope.ts';
import { recordCrossEntropy, xentChunkRows, xentScratchElements } from '../../gpu/kernels/xent.ts';
import { uploadBuffer } from '../../gpu/buffers.ts';
import type { Workspace } from '../../gpu/workspace.ts';
import type { ModelConfig } from '../config.ts';
import type { Block, GpuModel, Norm } from './gpu-model.ts';
import { recordLinearBackward, recordLinearForward, type KernelChoice, type Linear, type LinearSaved } from './linear.ts';

/** One micro-batch on the CPU: rows packed along T. */
export interface HostBatch {
  tokens: Uint32Array; // (T)
  positions: Uint32Array; // (T), restarting at firstPosition (0 unless an attention prefix) per row
  segments: Uint32Array; // (T), one id per row; padding gets ids of its own
  /** (T) the label each position predicts: labels[t+1] of the same row, −100 where nothing is trained. */
  targets: Int32Array;
  /** Where every row's positions start: 0, or P under an attention prefix (its rows take positions 0 … P − 1);
   *  recordForward refuses a batch built for another prefix than the model's. Absent: 0. */
  firstPosition?: number;
}

export interface Batch {
  T: number;
  /** Whether its buffers came from the pool (releaseBatch hands them back) or from a workspace (kept). */
  pooled: boolean;
  tokens: GPUBuffer;
  positions: GPUBuffer;
  segments: GPUBuffer;
  targets: GPUBuffer;
  /** Targets ≠ −100: the denominator of this batch's mean loss. */
  counted: number;
  /** Tokens of the longest row (largest position + 1). */
  longestRow: number;
  /** The batch on the CPU: full fine-tuning's embedding backward groups the positions by token id there. */
  host: HostBatch;
}

export function uploadBatch(e: Engine, b: HostBatch): Batch {
  const T = b.tokens.length;
  return {
    T,
    pooled: true,
    tokens: uploadBuffer(e.buffers, e.device, b.tokens, 'batch.tokens'),
    positions: uploadBuffer(e.buffers, e.device, b.positions, 'batch.positions'),
    segments: uploadBuffer(e.buffers, e.device, b.segments, 'batch.segments'),
    targets: uploadBuffer(e.buffers, e.device, b.targets, 'batch.targets'),
    ...batchStats(b),
    host: b,
  };
}

function batchStats(b: HostBatch): { counted: number; longestRow: number } {
  const T = b.tokens.length;
  if (b.positions.length !== T || b.segments.length !== T || b.targets.length !== T) {
    throw new Error(`batch: tokens, positions, segments and targets must have the same length (${T})`);
  }
  let counted = 0;
  for (const t of b.targets) if (t !== -100) counted++;
  let longestRow = 0;
  for (const p of b.positions) longestRow = Math.max(longestRow, p + 1);
  return { counted, longestRow };
}

/** The batch in `slot`'s workspace buffers (one slot per micro-batch of a submission), written when `rec` submits:
 *  no allocation once the workspace holds the run's largest batch. */
export function uploadBatchInto(rec: Recorder, ws: Workspace, b: HostBatch, slot: number): Batch {
  const T = b.tokens.length;
  const stats = batchStats(b);
  const bytes = ws.rows(T) * 4;
  const put = (name: string, data: Uint32Array | Int32Array) => {
    const buffer = ws.get(`batch${slot}.${name}`, bytes);
    rec.write(buffer, data);
    return buffer;
  };
  return {
    T,
    pooled: false,
    tokens: put('tokens', b.tokens),
    positions: put('positions', b.positions),
    segments: put('segments', b.segments),
    targets: put('targets', b.targets),
    ...stats,
    host: b,
  };
}

export function releaseBatch(e: Engine, b: Batch): void {
  if (!b.pooled) return;
  for (const buf of [b.tokens, b.positions, b.segments, b.targets]) e.buffers.release(buf);
}

/** The buffers one block's forward writes, T rows. */
export interface BlockBuffers {
  n1: GPUBuffer; // (T, C)
  stats1: GPUBuffer;
  qkv?: GPUBuffer; // (T, 3C) GPT-2's fused projection output
  q: GPUBuffer; // (T, Hq·D) after RoPE
  k: GPUBuffer; // (T, Hkv·D) after RoPE
  /** Qwen3's q/k norms: the projections before their per-head RMSNorm, and its row stats (T·H, 2). */
  qRaw?: GPUBuffer;
  kRaw?: GPUBuffer;
  qStats?: GPUBuffer;
  kStats?: GPUBuffer;
  v: GPUBuffer;
  o: GPUBuffer; // (T, Hq·D) attention output
  xmid: GPUBuffer; // (T, C) x + attention branch
  n2: GPUBuffer;
  stats2: GPUBuffer;
  up: GPUBuffer; // (T, I): c_fc output (GPT-2) or up_proj output
  gate?: GPUBuffer; // (T, I) gate_proj output
  act: GPUBuffer; // (T, I): gelu(up) or silu(gate)·up
  out: GPUBuffer; // (T, C) block output: xmid + MLP branch
}

/** What the backward reads of one block: its buffers, its input, attention's log-sum-exp, LoRA's saved h. */
interface BlockActs extends BlockBuffers {
  x: GPUBuffer; // (T, C) block input
  lse: GPUBuffer; // (T, Hq)
  saved: Map<string, LinearSaved>;
}

export interface ForwardActs {
  T: number;
  blocks: BlockActs[];
  xL: GPUBuffer;
  hs: GPUBuffer;
  statsF: GPUBuffer;
  /** (2) f32: [loss sum, counted tokens]. */
  total: GPUBuffer;
  /** The loss is left to recordBackward, whose fused pass computes the same logits anyway (see ForwardOptions). */
  lossInBackward: boolean;
  /** Whether that loss adds into `total`. */
  accumulateLoss: boolean;
}

export interface ForwardOptions {
  /** Training: leave the loss to recordBackward. Its cross-entropy pass computes the logits once for both the
   *  loss and dhs, so computing them here as well would run the LM head's largest product twice per step. */
  lossInBackward?: boolean;
}

/** The engine-side model: weights plus what the kernels need that is not a weight (the RoPE table). */
export interface Transformer {
  model: GpuModel;
  kernels: KernelChoice;
  invFreq?: GPUBuffer; // (D/2) f32
  /** Where recordForward/recordBackward take their activations: a workspace (the same buffers every step: the
   *  trainer sets one) or, when absent, the engine's pool (acquired and released per recording). */
  workspace?: Workspace;
}

/** Activation buffers for one recording: from the transformer's workspace (by role, sized for its reserved rows)
 *  or from the pool (collected in `owned` for the caller to release). `rows` is what row-scaled buffers are sized
 *  for. */
function activationSource(e: Engine, tf: Transformer, T: number) {
  const ws = tf.workspace;
  const owned: GPUBuffer[] = [];
  const alloc = (floats: number, label: string): GPUBuffer => {
    if (ws) return ws.get(label, floats * 4);
    const b = e.buffers.acquire(floats * 4, undefined, label);
    owned.push(b);
    return b;
  };
  return { rows: ws ? ws.rows(T) : T, owned, alloc, ws };
}

export function createTransformer(e: Engine, model: GpuModel, kernels: KernelChoice): Transformer {
  const c = model.config;
  let invFreq: GPUBuffer | undefined;
  if (c.positions.kind === 'rope') {
    const table = ropeInvFreq({
      headDim: c.headDim,
      theta: c.positions.theta,
      // config.ts keeps the type beside the scaling parameters; ropeInvFreq reads it from rope_type.
      scaling: c.positions.type === 'default' ? null : { ...(c.positions.scaling ?? {}), rope_type: c.positions.type },
      maxPositionEmbeddings: c.maxPositions,
    });
    invFreq = uploadBuffer(e.buffers, e.device, table, 'rope.invFreq');
  }
  return { model, kernels, invFreq };
}

export function dims(c: ModelConfig) {
  return { C: c.hiddenSize, I: c.intermediateSize, Hq: c.numHeads, Hkv: c.numKvHeads, D: c.headDim, qDim: c.numHeads * c.headDim, kvDim: c.numKvHeads * c.headDim };
}

export function linear(block: Block, name: string): Linear {
  const l = block.linears.get(name);
  if (!l) throw new Error(`block has no ${name} projection`);
  return l;
}

export function normForward(rec: Recorder, n: Norm, T: number, C: number, x: GPUBuffer, y: GPUBuffer, stats: GPUBuffer): void {
  recordNormForward(rec, { rows: T, C, eps: n.eps }, { x, weight: n.weight, bias: n.bias, y, stats }, { kind: n.kind });
}

/** x (T, C) = embed(tokens) (+ wpe[positions] for learned positions). */
export function recordEmbed(rec: Recorder, tf: Transformer, T: number, tokens: GPUBuffer, positions: GPUBuffer, x: GPUBuffer): void {
  const { model } = tf;
  const cfg = model.config;
  recordEmbedding(
    rec,
    { rows: T, C: cfg.hiddenSize, vocab: cfg.vocabSize, maxPos: cfg.positions.kind === 'learned' ? cfg.maxPositions : 0 },
    { ids: tokens, wte: model.embed, out: x, positions: model.posEmbed ? positions : undefined, wpe: model.posEmbed },
    { elem: model.dtype },
  );
  model.virtualTokens?.recordForward(rec, T, tokens, x); // prompt tuning: the virtual tokens' rows
}

/** Allocates one block's forward buffers for T rows; `alloc(floats, label)` decides who owns them. */
export function allocBlockBuffers(cfg: ModelConfig, T: number, alloc: (floats: number, label: string) => GPUBuffer): BlockBuffers {
  const { C, I, qDim, kvDim } = dims(cfg);
  return {
    n1: alloc(T * C, 'n1'),
    stats1: alloc(normStatsLength(T), 'stats1'),
    qkv: cfg.family === 'gpt2' ? alloc(T * 3 * C, 'qkv') : undefined,
    q: alloc(T * qDim, 'q'),
    k: alloc(T * kvDim, 'k'),
    ...(cfg.qkNorm
      ? {
          qRaw: alloc(T * qDim, 'qRaw'),
          kRaw: alloc(T * kvDim, 'kRaw'),
          qStats: alloc(normStatsLength(T * cfg.numHeads), 'qStats'),
          kStats: alloc(normStatsLength(T * cfg.numKvHeads), 'kStats'),
        }
      : {}),
    v: alloc(T * kvDim, 'v'),
    o: alloc(T * qDim, 'o'),
    xmid: alloc(T * C, 'xmid'),
    n2: alloc(T * C, 'n2'),
    stats2: alloc(normStatsLength(T), 'stats2'),
    up: alloc(T * I, 'up'),
    gate: cfg.mlp === 'gated' ? alloc(T * I, 'gate') : undefined,
    act: alloc(T * I, 'act'),
    out: alloc(T * C, 'out'),
  };
}

/** Records one linear layer of the current block: out = layer(input) (+ out when accumulating). */
export type LinearRunner = (name: string, input: GPUBuffer, out: GPUBuffer, accumulate?: boolean) => void;

/** Records attention o = attend(q, k, v) (after RoPE): the training forward over packed segments, or the KV-cache
 *  decode during generation. */
export type AttentionRunner = (q: GPUBuffer, k: GPUBuffer, v: GPUBuffer, o: GPUBuffer) => void;

/** Records one block: x (T, C) → b.out. Linears go through `run`, attention through `attend`. */
export function recordBlockForward(
  rec: Recorder,
  tf: Transformer,
  block: Block,
  T: number,
  positions: GPUBuffer,
  x: GPUBuffer,
  b: BlockBuffers,
  run: LinearRunner,
  attend: AttentionRunner,
): void {
  const cfg = tf.model.config;
  const { C, I, Hq, Hkv, D } = dims(cfg);
  normForward(rec, block.attnNorm, T, C, x, b.n1, b.stats1);
  if (cfg.family === 'gpt2') {
    run('qkv', b.n1, b.qkv!);
    for (const [j, dst] of [b.q, b.k, b.v].entries()) {
      recordGatherColumns(rec, { rows: T, wide: 3 * C, narrow: C, offset: j * C }, { wide: b.qkv!, narrow: dst });
    }
  } else if (block.qNorm && block.kNorm) {
    // Qwen3: each head's q and k are RMS-normalised over head_dim (rows T·H of width D) before RoPE.
    run('q', b.n1, b.qRaw!);
    run('k', b.n1, b.kRaw!);
    run('v', b.n1, b.v);
    normForward(rec, block.qNorm, T * Hq, D, b.qRaw!, b.q, b.qStats!);
    normForward(rec, block.kNorm, T * Hkv, D, b.kRaw!, b.k, b.kStats!);
  } else {
    run('q', b.n1, b.q);
    run('k', b.n1, b.k);
    run('v', b.n1, b.v);
  }
  if (tf.invFreq) {
    recordRope(rec, { T, H: Hq, D }, { y: b.q, positions, invFreq: tf.invFreq });
    recordRope(rec, { T, H: Hkv, D }, { y: b.k, positions, invFreq: tf.invFreq });
  }
  attend(b.q, b.k, b.v, b.o);
  rec.copy(x, 0, b.xmid, 0, T * C * 4);
  run('o', b.o, b.xmid, true);

  normForward(rec, block.mlpNorm, T, C, b.xmid, b.n2, b.stats2);
  rec.copy(b.xmid, 0, b.out, 0, T * C * 4);
  if (cfg.mlp === 'gated') {
    run('gate', b.n2, b.gate!);
    run('up', b.n2, b.up);
    recordSwiglu(rec, T * I, { gate: b.gate!, up: b.up, out: b.act });
  } else {
    run('up', b.n2, b.up);
    recordGelu(rec, T * I, { x: b.up, y: b.act });
  }
  run('down', b.act, b.out, true);
}

/**
 * Records the forward pass and the loss of one micro-batch. `keep`: the activations stay allocated for
 * recordBackward (training); otherwise they are released once the submission completes (evaluation).
 * `accumulateLoss` adds into `total` rather than overwriting it.
 */
export function recordForward(
  rec: Recorder,
  e: Engine,
  tf: Transformer,
  batch: Batch,
  keep: boolean,
  total?: GPUBuffer,
  options: ForwardOptions = {},
): ForwardActs {
  const lossInBackward = !!options.lossInBackward;
  if (lossInBackward && !keep) throw new Error('recordForward: lossInBackward needs keep (a backward to follow)');
  const { model, kernels: k } = tf;
  const cfg = model.config;
  // The attention kernel has no sliding window: a row longer than the window would attend past it, unlike
  // transformers, so it is refused (rows within the window are exact).
  if (cfg.slidingWindow !== null && batch.longestRow > cfg.slidingWindow) {
    throw new Error(`a row of ${batch.longestRow} tokens exceeds this model's sliding window of ${cfg.slidingWindow}, which the engine does not implement: use a max length ≤ ${cfg.slidingWindow}`);
  }
  const first = batch.host.firstPosition ?? 0;
  if (first !== (model.attentionPrefix?.count ?? 0)) {
    throw new Error(`recordForward: the batch's positions start at ${first}, but the model's attention prefix takes ${model.attentionPrefix?.count ?? 0} (build it with that offset)`);
  }
  // Learned positions end at the table's last row (an attention prefix's P positions come first: the batch's
  // positions already start after them).
  if (cfg.positions.kind === 'learned' && batch.longestRow > cfg.maxPositions) {
    const ahead = model.attentionPrefix ? ` (the attention prefix's ${model.attentionPrefix.count} positions included)` : '';
    throw new Error(`a row reaches position ${batch.longestRow - 1}${ahead}, past this model's ${cfg.maxPositions} learned positions: use a shorter max length`);
  }
  const { C, Hq, Hkv, D } = dims(cfg);
  const T = batch.T;
  const { rows: R, owned, alloc, ws } = activationSource(e, tf, T);

  let x = alloc(R * C, 'x0');
  recordEmbed(rec, tf, T, batch.tokens, batch.positions, x);
  // Prefix tuning: every layer's key/value rows, made once for this forward (the batch's positions start at P).
  const prefix = model.attentionPrefix;
  prefix?.recordForward(rec);

  // The MLP's activation (gelu(up) or silu(gate)·up) is only the down projection's input: the backward recomputes
  // it from up (and gate), so one (T, I) buffer serves every block instead of one kept per block.
  let sharedAct: GPUBuffer | undefined;
  const blocks: BlockActs[] = [];
  for (const [i, block] of model.blocks.entries()) {
    const b = allocBlockBuffers(cfg, R, (floats, label) =>
      label === 'act' ? (sharedAct ??= alloc(floats, 'act')) : alloc(floats, `b${i}.${label}`),
    );
    const a: BlockActs = { ...b, x, lse: alloc(R * Hq, `b${i}.lse`), saved: new Map() };
    const run: LinearRunner = (name, input, out, accumulate = false) =>
      rec.scope(name, () => {
        const saved = recordLinearForward(rec, e, k, linear(block, name), T, input, out, accumulate, ws);
        a.saved.set(name, saved);
        if (saved.h && !ws) owned.push(saved.h);
        if (saved.ia3Base && !ws) owned.push(saved.ia3Base);
        if (saved.bottleneck && !ws) owned.push(saved.bottleneck.h, saved.bottleneck.z, saved.bottleneck.a);
      });
    rec.scope(`b${i}`, () =>
      rec.scope('fwd', () =>
        recordBlockForward(rec, tf, block, T, batch.positions, x, b, run, (q, kk, v, o) =>
          rec.scope('attn', () =>
            recordAttentionForward(rec, { T, Hq, Hkv, D, scale: cfg.attentionScale, P: prefix?.count }, {
              Q: q, K: kk, V: v, seg: batch.segments, O: o, L: a.lse, prefixKV: prefix?.layer(i),
            }),
          ),
        ),
      ),
    );
    blocks.push(a);
    x = b.out;
  }

  const hs = alloc(R * C, 'hs');
  const statsF = alloc(normStatsLength(R), 'statsF');
  const lossTotal = total ?? alloc(2, 'loss.total');
  rec.scope('head', () => {
    normForward(rec, model.finalNorm, T, C, x, hs, statsF);
    if (lossInBackward) return;
    const chunkRows = xentChunkRows(R, cfg.vocabSize, e.gpu.limits.maxStorageBufferBindingSize);
    const work = alloc(xentScratchElements({ T: R, C, V: cfg.vocabSize }, chunkRows), 'xent.work');
    recordCrossEntropy(rec, { T, C, V: cfg.vocabSize }, { hs, Wh: model.head, labels: batch.targets, work, total: lossTotal }, {
      elem: model.dtype,
      accumulate: !!total,
      chunkRows,
      matmul: k.matmul,
    });
  });
  const acts: ForwardActs = { T, blocks, xL: x, hs, statsF, total: lossTotal, lossInBackward, accumulateLoss: !!total };
  if (!keep) {
    rec.afterSubmit(() => {
      for (const b of owned) if (b !== lossTotal) e.buffers.release(b);
    });
  } else {
    actsOwned.set(acts, owned);
  }
  return acts;
}

const actsOwned = new WeakMap<ForwardActs, GPUBuffer[]>();

/** Frees what recordForward(keep = true) allocated, except `total` when the caller owns it. */
export function releaseActs(e: Engine, acts: ForwardActs, keepTotal = false): void {
  for (const b of actsOwned.get(acts) ?? []) if (!(keepTotal && b === acts.total)) e.buffers.release(b);
  actsOwned.delete(acts);
}

const backwardSlots = new WeakMap<Recorder, number>();

/** 0, 1, … for the backward passes recorded into `rec`. */
function nextBackwardSlot(rec: Recorder): number {
  const slot = backwardSlots.get(rec) ?? 0;
  backwardSlots.set(rec, slot + 1);
  return slot;
}

/** dTable[ids[t]] += dx[t] for every t < T (a one-shard f32 table gradient). Always adds: the cross-entropy's head
 *  gradient (the same tensor when tied) adds too, so the caller zeroes table gradients before a step's first
 *  micro-batch, as the trainer zeroes every gradient. */
function recordTableGrad(
  rec: Recorder,
  alloc: (floats: number, label: string) => GPUBuffer,
  T: number,
  C: number,
  ids: Uint32Array,
  rows: number,
  dx: GPUBuffer,
  dTable: BufferRef,
  label: string,
): void {
  const plan = planEmbeddingGrad(ids, rows);
  const put = (name: string, data: Uint32Array) => {
    // Sized for T (+ 1 for starts) whatever this batch's distinct ids, so a workspace keeps one buffer per role.
    const buffer = alloc(T + 1, `embedGrad.${label}.${name}`);
    rec.write(buffer, data);
    return buffer;
  };
  recordEmbeddingGrad(
    rec,
    { T, C },
    plan,
    { dx, order: put('order', plan.order), starts: put('starts', plan.starts), ids: put('ids', plan.ids) },
    [{ dE: dTable, firstRow: 0, rows }],
    true,
  );
}

export interface BackwardOptions {
  /** 1 / (counted tokens of the whole optimizer step): the loss is token-weighted across micro-batches. */
  gradScale: number;
  /** Add into LoRA's dA/dB (every micro-batch after the first of a step). */
  accumulateGrads: boolean;
}

/** Records the backward pass of a kept forward: LoRA gradients into each layer's dA/dB. */
export function recordBackward(rec: Recorder, e: Engine, tf: Transformer, batch: Batch, acts: ForwardActs, o: BackwardOptions): void {
  const { model, kernels: k } = tf;
  const cfg = model.config;
  const { C, I, Hq, Hkv, D, qDim, kvDim } = dims(cfg);
  const T = batch.T;
  const { rows: R, owned: scratch, alloc, ws } = activationSource(e, tf, T);
  // Full fine-tuning: the weights' own gradients too (see GpuModel.tableGrads, Linear.grad, Norm.grad).
  const tables = model.tableGrads;
  // Every micro-batch of one submission has its own embedding-plan buffers: a recorder's writes all land before its
  // first command runs.
  const slot = tables ? nextBackwardSlot(rec) : 0;
  // Bias gradients are onesᵀ·dy (full fine-tuning's biases, bottleneck adapters' b_d and b_u): one ones vector per
  // backward serves every layer. Whether any layer has one was decided when its method attached.
  let ones: GPUBuffer | undefined;
  if (model.backwardNeedsOnes) {
    ones = alloc(R, 'ones');
    rec.write(ones, new Float32Array(R).fill(1));
  }
  const lb = { accumulateGrads: o.accumulateGrads, ones };
  const normGrad = (n: Norm) => ({ dweight: n.grad?.dweight, dbias: n.grad?.dbias });

  // Loss → hs → x_L. The cross-entropy's backward recomputes its logits chunk by chunk.
  const dhs = alloc(R * C, 'dhs');
  const chunkRows = xentChunkRows(R, cfg.vocabSize, e.gpu.limits.maxStorageBufferBindingSize);
  const work = alloc(xentScratchElements({ T: R, C, V: cfg.vocabSize }, chunkRows), 'xent.work.bw');
  const lossTotal = acts.lossInBackward ? acts.total : alloc(2, 'xent.total.bw');
  const dx = alloc(R * C, 'dx');
  rec.scope('head', () =>
    rec.scope('bwd', () => {
      // A tied head's gradient adds into the embedding's (the same tensor).
      const dWh = tables ? (tables.head ?? tables.embed) : undefined;
      recordCrossEntropy(rec, { T, C, V: cfg.vocabSize }, { hs: acts.hs, Wh: model.head, labels: batch.targets, work, total: lossTotal, dhs, dWh }, {
        elem: model.dtype,
        gradScale: o.gradScale,
        accumulate: acts.lossInBackward && acts.accumulateLoss,
        chunkRows,
        matmul: k.matmul,
      });
      recordNormBackward(rec, { rows: T, C, eps: model.finalNorm.eps }, { x: acts.xL, weight: model.finalNorm.weight, dy: dhs, stats: acts.statsF, dx, ...normGrad(model.finalNorm) }, {
        kind: model.finalNorm.kind,
        accumulateWeightGrad: o.accumulateGrads,
      });
    }),
  );

  const dAct = alloc(R * I, 'dAct');
  const dUp = alloc(R * I, 'dUp');
  const dGate = cfg.mlp === 'gated' ? alloc(R * I, 'dGate') : undefined;
  const dn = alloc(R * C, 'dn');
  const dO = alloc(R * qDim, 'dO');
  const dQ = alloc(R * qDim, 'dQ');
  const dK = alloc(R * kvDim, 'dK');
  const dV = alloc(R * kvDim, 'dV');
  const prefix = model.attentionPrefix;
  if (prefix && !prefix.grad) throw new Error('recordBackward: the attached attention prefix is not trainable (an adapter attached for inference)');
  const stats = alloc(attentionStatsBytes({ T: R, Hq, Hkv, D, P: prefix?.count }) / 4, 'attn.stats');
  const dQKV = cfg.family === 'gpt2' ? alloc(R * 3 * C, 'dQKV') : undefined;
  const dQraw = cfg.qkNorm ? alloc(R * qDim, 'dQraw') : undefined;
  const dKraw = cfg.qkNorm ? alloc(R * kvDim, 'dKraw') : undefined;

  for (let i = model.blocks.length - 1; i >= 0; i--) rec.scope(`b${i}`, () => rec.scope('bwd', () => {
    const block = model.blocks[i];
    const a = acts.blocks[i];
    const back = (name: string, input: GPUBuffer, dy: GPUBuffer, dIn: GPUBuffer | undefined, accumulateDx: boolean) =>
      rec.scope(name, () => recordLinearBackward(rec, e, k, linear(block, name), T, input, a.saved.get(name)!, dy, dIn, { ...lb, accumulateDx }, ws));

    // MLP: dx holds d(x_out) = d(xmid) through the residual, plus the MLP branch below. The down projection's
    // input is recomputed (the forward kept one shared buffer for it) into dGate (or dUp), before they are written.
    const act = dGate ?? dUp;
    if (cfg.mlp === 'gated') recordSwiglu(rec, T * I, { gate: a.gate!, up: a.up, out: act });
    else recordGelu(rec, T * I, { x: a.up, y: act });
    back('down', act, dx, dAct, false);
    if (cfg.mlp === 'gated') {
      recordSwigluBackward(rec, T * I, { gate: a.gate!, up: a.up, dout: dAct, dgate: dGate!, dup: dUp });
      back('gate', a.n2, dGate!, dn, false);
      back('up', a.n2, dUp, dn, true);
    } else {
      recordGeluBackward(rec, T * I, { x: a.up, dy: dAct, dx: dUp });
      back('up', a.n2, dUp, dn, false);
    }
    recordNormBackward(rec, { rows: T, C, eps: block.mlpNorm.eps }, { x: a.xmid, weight: block.mlpNorm.weight, dy: dn, stats: a.stats2, dx, ...normGrad(block.mlpNorm) }, {
      kind: block.mlpNorm.kind,
      accumulate: true,
      accumulateWeightGrad: o.accumulateGrads,
    });

    // Attention: dx now holds d(xmid) = d(x) through the residual, plus the attention branch below.
    back('o', a.o, dx, dO, false);
    rec.scope('attn', () =>
      recordAttentionBackward(rec, { T, Hq, Hkv, D, scale: cfg.attentionScale, P: prefix?.count }, {
        Q: a.q, K: a.k, V: a.v, seg: batch.segments, O: a.o, L: a.lse, dO, stats, dQ, dK, dV,
        prefixKV: prefix?.layer(i), dPrefixKV: prefix?.grad?.(i),
      }),
    );
    if (tf.invFreq) {
      recordRope(rec, { T, H: Hq, D }, { y: dQ, positions: batch.positions, invFreq: tf.invFreq }, { inverse: true });
      recordRope(rec, { T, H: Hkv, D }, { y: dK, positions: batch.positions, invFreq: tf.invFreq }, { inverse: true });
    }
    if (cfg.family === 'gpt2') {
      for (const [j, src] of [dQ, dK, dV].entries()) {
        recordScatterColumns(rec, { rows: T, wide: 3 * C, narrow: C, offset: j * C }, { narrow: src, wide: dQKV! });
      }
      back('qkv', a.n1, dQKV!, dn, false);
    } else if (block.qNorm && block.kNorm) {
      // Through Qwen3's per-head norms first: d(projection) from d(normalised q/k).
      recordNormBackward(rec, { rows: T * Hq, C: D, eps: block.qNorm.eps }, { x: a.qRaw!, weight: block.qNorm.weight, dy: dQ, stats: a.qStats!, dx: dQraw!, ...normGrad(block.qNorm) }, {
        kind: 'rmsnorm',
        accumulateWeightGrad: o.accumulateGrads,
      });
      recordNormBackward(rec, { rows: T * Hkv, C: D, eps: block.kNorm.eps }, { x: a.kRaw!, weight: block.kNorm.weight, dy: dK, stats: a.kStats!, dx: dKraw!, ...normGrad(block.kNorm) }, {
        kind: 'rmsnorm',
        accumulateWeightGrad: o.accumulateGrads,
      });
      back('q', a.n1, dQraw!, dn, false);
      back('k', a.n1, dKraw!, dn, true);
      back('v', a.n1, dV, dn, true);
    } else {
      back('q', a.n1, dQ, dn, false);
      back('k', a.n1, dK, dn, true);
      back('v', a.n1, dV, dn, true);
    }
    recordNormBackward(rec, { rows: T, C, eps: block.attnNorm.eps }, { x: a.x, weight: block.attnNorm.weight, dy: dn, stats: a.stats1, dx, ...normGrad(block.attnNorm) }, {
      kind: block.attnNorm.kind,
      accumulate: true,
      accumulateWeightGrad: o.accumulateGrads,
    });
  }));
  // Prefix tuning: every layer's dPrefixKV into the method's tensors.
  prefix?.recordBackward?.(rec, o.accumulateGrads);
  // A prompt method (prompt tuning, P-tuning) takes d(embeddings) at its virtual tokens.
  model.virtualTokens?.recordBackward?.(rec, T, batch.tokens, dx, o.accumulateGrads);
  // dx is now d(embeddings): frozen unless fully fine-tuned, where each row adds into its token's (and position's)
  // gradient row — grouped by id on the CPU, so no float atomics (embedding_grad.wgsl).
  if (tables) {
    rec.scope('embed', () => {
      recordTableGrad(rec, alloc, T, C, batch.host.tokens, cfg.vocabSize, dx, tables.embed, `${slot}.tok`);
      if (tables.posEmbed) recordTableGrad(rec, alloc, T, C, batch.host.positions, cfg.maxPositions, dx, tables.posEmbed, `${slot}.pos`);
    });
  }
  rec.afterSubmit(() => {
    for (const b of scratch) e.buffers.release(b);
  });
}
