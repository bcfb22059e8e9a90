// A whole model in plain float64 TypeScript, composed from the kernels' references (src/gpu/ref/*.ref.ts): the same
// forward as transformer.ts's recordForward and the backward of recordBackward, down to LoRA's A and B. It exists to
// prove the composition: the reference's gradients are checked against float64 finite differences of its own loss
// (reference.test.ts), and the GPU runtime's gradients against the reference's (block-grad.gpu.test.ts).
//
//   x = embed(tokens) (+ wpe[positions])
//   per block:  n1 = norm(x);  q, k, v = linears(n1) (GPT-2: one fused Conv1D c_attn, split by columns);  RoPE(q, k)
//               o = attention(q, k, v; causal within segments);  xmid = x + o_proj(o)
//               n2 = norm(xmid);  a = gelu(c_fc(n2)) | silu(gate(n2))·up(n2);  x' = xmid + down(a)
//   hs = norm(x_L);  lossSum = Σ cross-entropy(hs·headᵀ, targets) over targets ≠ −100, and the count
//
// Every linear is y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ, LoRA where targeted; a linear without LoRA is the same reference with
// rank 0. No dropout: the reference is deterministic so finite differences mean something.
import { geluBackwardRef, geluRef, swigluBackwardRef, swigluRef } from '../../gpu/ref/activation.ref.ts';
import { attentionBackwardRef, attentionRef } from '../../gpu/ref/attention.ref.ts';
import { gatherColumnsRef, scatterColumnsRef } from '../../gpu/ref/columns.ref.ts';
import { embeddingRef } from '../../gpu/ref/embedding.ref.ts';
import { loraBackwardRef, loraForwardRef, type LoraRefInputs } from '../../gpu/ref/lora.ref.ts';
import { normBackwardRef, normForwardRef, type NormShape } from '../../gpu/ref/norm.ref.ts';
import { ropeRef } from '../../gpu/ref/rope.ref.ts';
import { xentBackwardRef, xentForwardRef, type XentRefInputs } from '../../gpu/ref/xent.ref.ts';
import { ropeInvFreq } from '../../gpu/kernels/rope.ts';
import type { ModelConfig } from '../config.ts';
import { linearModules, type LinearModule } from '../weights.ts';
import type { HostBatch } from './transformer.ts';

/** One targeted linear's LoRA pair. */
export interface RefLoraPair {
  A: ArrayLike<number>; // [r, in]
  B: ArrayLike<number>; // [out, r]
}

export interface RefModel {
  config: ModelConfig;
  /** Canonical name (weights.ts) → values as the checkpoint stores them (Conv1D [in, out], nn.Linear [out, in]).
   *  lm_head.weight may be absent when tied: the embedding is used. */
  weights: Map<string, ArrayLike<number>>;
  lora: {
    rank: number;
    /** s = α/r (loraScale). */
    scale: number;
    /** Canonical module name ("layers.0.attn.q") → its pair; modules not listed have no LoRA. */
    modules: Map<string, RefLoraPair>;
  };
}

export interface RefLoraGrads {
  dA: Float64Array; // [r, in]
  dB: Float64Array; // [out, r]
}

export interface RefLoss {
  /** Σ over counted targets of the token's cross-entropy. */
  lossSum: number;
  /** Targets ≠ −100. */
  count: number;
}

export class ReferenceModelError extends Error {
  override name = 'ReferenceModelError';
}

// --- set-up ------------------------------------------------------------------------------------------------------

/** Everything the passes need that is not per batch: dims, the linear modules by canonical name, the RoPE table. */
interface Setup {
  m: RefModel;
  cfg: ModelConfig;
  C: number;
  Hq: number;
  Hkv: number;
  D: number;
  modules: Map<string, LinearModule>;
  invFreq?: Float32Array; // (D/2)
}

function setup(m: RefModel): Setup {
  const cfg = m.config;
  if (cfg.qkNorm) throw new ReferenceModelError(`reference: ${cfg.modelType}'s q/k norms are not implemented`);
  const gelu = cfg.activation === 'gelu_new' || cfg.activation === 'gelu_pytorch_tanh';
  if (cfg.mlp === 'plain' ? !gelu : cfg.activation !== 'silu') {
    throw new ReferenceModelError(`reference: activation ${cfg.activation} with a ${cfg.mlp} MLP is not implemented (gelu_new or silu)`);
  }
  const modules = new Map(linearModules(cfg).map((l) => [l.canonical, l]));
  for (const name of m.lora.modules.keys()) if (!modules.has(name)) throw new ReferenceModelError(`reference: LoRA on ${name}, which is not a linear module`);
  let invFreq: Float32Array | undefined;
  if (cfg.positions.kind === 'rope') {
    // As createTransformer builds the table: config.ts keeps the rope type beside the scaling parameters.
    const p = cfg.positions;
    invFreq = ropeInvFreq({
      headDim: cfg.headDim,
      theta: p.theta,
      scaling: p.type === 'default' ? null : { ...(p.scaling ?? {}), rope_type: p.type },
      maxPositionEmbeddings: cfg.maxPositions,
    });
  }
  return { m, cfg, C: cfg.hiddenSize, Hq: cfg.numHeads, Hkv: cfg.numKvHeads, D: cfg.headDim, modules, invFreq };
}

function tensor(s: Setup, name: string): ArrayLike<number> {
  const t = s.m.weights.get(name);
  if (!t) throw new ReferenceModelError(`reference: weight ${name} is missing`);
  return t;
}

/** loraForwardRef's inputs for one linear of block `layer`; rank 0 (the plain linear) when not targeted. */
function linearInputs(s: Setup, layer: number, name: string, T: number, x: ArrayLike<number>): LoraRefInputs {
  const canonical = `layers.${layer}.${name}`;
  const mod = s.modules.get(canonical);
  if (!mod) throw new ReferenceModelError(`reference: no linear ${canonical}`);
  const pair = s.m.lora.modules.get(canonical);
  return {
    T,
    inFeatures: mod.inFeatures,
    outFeatures: mod.outFeatures,
    r: pair ? s.m.lora.rank : 0,
    conv1d: mod.fanInFanOut,
    x,
    W: tensor(s, `${canonical}.weight`),
    bias: mod.hasBias ? tensor(s, `${canonical}.bias`) : undefined,
    A: pair ? pair.A : [],
    B: pair ? pair.B : [],
    scale: pair ? s.m.lora.scale : 0,
  };
}

function norm(s: Setup, prefix: string, T: number, x: ArrayLike<number>): Float64Array {
  const { kind, eps } = s.cfg.norm;
  return normForwardRef(kind, { rows: T, C: s.C, eps }, x, tensor(s, `${prefix}.weight`), kind === 'layernorm' ? tensor(s, `${prefix}.bias`) : undefined).y;
}

function normShape(s: Setup, T: number): NormShape {
  return { rows: T, C: s.C, eps: s.cfg.norm.eps };
}

function add(a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  return Float64Array.from(a as ArrayLike<number>, (v, i) => v + b[i]);
}

// --- forward -----------------------------------------------------------------------------------------------------

/** What the backward reads of one block. q and k are after RoPE. */
interface BlockActs {
  x: Float64Array; // (T, C) block input
  n1: Float64Array; // (T, C)
  q: Float64Array; // (T, Hq·D)
  k: Float64Array; // (T, Hkv·D)
  v: Float64Array; // (T, Hkv·D)
  o: Float64Array; // (T, Hq·D)
  xmid: Float64Array; // (T, C)
  n2: Float64Array; // (T, C)
  gate?: Float64Array; // (T, I)
  up: Float64Array; // (T, I)
  act: Float64Array; // (T, I)
}

interface Forward extends RefLoss {
  blocks: BlockActs[];
  xL: Float64Array; // (T, C)
  xent: XentRefInputs;
}

function checkBatch(s: Setup, b: HostBatch): number {
  const T = b.tokens.length;
  if (b.positions.length !== T || b.segments.length !== T || b.targets.length !== T) {
    throw new ReferenceModelError(`reference: tokens, positions, segments and targets must have the same length (${T})`);
  }
  if (s.cfg.slidingWindow !== null && T > s.cfg.slidingWindow) {
    throw new ReferenceModelError(`reference: sliding-window attention (${s.cfg.slidingWindow}) is not implemented, and ${T} tokens would need it`);
  }
  return T;
}

function forward(s: Setup, b: HostBatch): Forward {
  const { cfg, C, Hq, Hkv, D } = s;
  const T = checkBatch(s, b);
  const learned = cfg.positions.kind === 'learned';
  let x = embeddingRef(
    { rows: T, C, vocab: cfg.vocabSize, maxPos: learned ? cfg.maxPositions : 0 },
    b.tokens,
    tensor(s, 'embed.weight'),
    learned ? b.positions : undefined,
    learned ? tensor(s, 'pos_embed.weight') : undefined,
  );
  const lin = (i: number, name: string, input: ArrayLike<number>) => loraForwardRef(linearInputs(s, i, name, T, input)).y;
  const rope = (H: number, y: Float64Array) => (s.invFreq ? ropeRef({ T, H, D, x: y, positions: b.positions, invFreq: s.invFreq }) : y);

  const blocks: BlockActs[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const n1 = norm(s, `layers.${i}.attn_norm`, T, x);
    let q: Float64Array, k: Float64Array, v: Float64Array;
    if (cfg.family === 'gpt2') {
      const qkv = lin(i, 'attn.qkv', n1);
      [q, k, v] = [0, 1, 2].map((j) => gatherColumnsRef({ rows: T, wide: 3 * C, narrow: C, offset: j * C }, qkv));
    } else {
      [q, k, v] = [lin(i, 'attn.q', n1), lin(i, 'attn.k', n1), lin(i, 'attn.v', n1)];
    }
    q = rope(Hq, q);
    k = rope(Hkv, k);
    const o = attentionRef({ T, Hq, Hkv, D, scale: cfg.attentionScale, Q: q, K: k, V: v, seg: b.segments }).O;
    const xmid = add(x, lin(i, 'attn.o', o));
    const n2 = norm(s, `layers.${i}.mlp_norm`, T, xmid);
    let gate: Float64Array | undefined, up: Float64Array, act: Float64Array;
    if (cfg.mlp === 'gated') {
      gate = lin(i, 'mlp.gate', n2);
      up = lin(i, 'mlp.up', n2);
      act = swigluRef(gate, up);
    } else {
      up = lin(i, 'mlp.up', n2);
      act = geluRef(up);
    }
    blocks.push({ x, n1, q, k, v, o, xmid, n2, gate, up, act });
    x = add(xmid, lin(i, 'mlp.down', act));
  }
  const hs = norm(s, 'final_norm', T, x);
  const xent: XentRefInputs = { T, C, V: cfg.vocabSize, hs, Wh: s.m.weights.get('lm_head.weight') ?? tensor(s, 'embed.weight'), labels: b.targets };
  const { lossSum, count } = xentForwardRef(xent);
  return { blocks, xL: x, xent, lossSum, count };
}

/** The loss of one batch: Σ token cross-entropy over targets ≠ −100 (already shifted), and their count. */
export function referenceLoss(m: RefModel, b: HostBatch): RefLoss {
  const { lossSum, count } = forward(setup(m), b);
  return { lossSum, count };
}

// --- backward ----------------------------------------------------------------------------------------------------

/**
 * The loss and the gradients of gradScale·lossSum (gradScale = 1/count: the token-weighted mean, as the trainer
 * uses) with respect to every targeted module's A and B, keyed by canonical module name.
 */
export function referenceGradients(m: RefModel, b: HostBatch, gradScale: number): RefLoss & { grads: Map<string, RefLoraGrads> } {
  const s = setup(m);
  const { cfg, C, Hq, Hkv, D } = s;
  const fw = forward(s, b);
  const T = fw.xL.length / C;
  const grads = new Map<string, RefLoraGrads>();
  const { kind } = cfg.norm;

  /** dx of one linear for upstream dy, recording dA/dB when it has LoRA. */
  const back = (i: number, name: string, input: ArrayLike<number>, dy: ArrayLike<number>): Float64Array => {
    const g = loraBackwardRef(linearInputs(s, i, name, T, input), dy);
    if (m.lora.modules.has(`layers.${i}.${name}`)) grads.set(`layers.${i}.${name}`, { dA: g.dA, dB: g.dB });
    return g.dx;
  };
  const unrope = (H: number, dy: Float64Array) =>
    s.invFreq ? ropeRef({ T, H, D, x: dy, positions: b.positions, invFreq: s.invFreq, inverse: true }) : dy;

  const dhs = xentBackwardRef(fw.xent, gradScale);
  let dx = normBackwardRef(kind, normShape(s, T), fw.xL, tensor(s, 'final_norm.weight'), dhs).dx;
  for (let i = cfg.numLayers - 1; i >= 0; i--) {
    const a = fw.blocks[i];
    // MLP: dx is d(x_out) = d(xmid) through the residual, plus the MLP branch.
    const dAct = back(i, 'mlp.down', a.act, dx);
    let dn: Float64Array;
    if (cfg.mlp === 'gated') {
      const { dgate, dup } = swigluBackwardRef(a.gate!, a.up, dAct);
      dn = add(back(i, 'mlp.gate', a.n2, dgate), back(i, 'mlp.up', a.n2, dup));
    } else {
      dn = back(i, 'mlp.up', a.n2, geluBackwardRef(a.up, dAct));
    }
    dx = normBackwardRef(kind, normShape(s, T), a.xmid, tensor(s, `layers.${i}.mlp_norm.weight`), dn, dx).dx;

    // Attention: dx is d(xmid) = d(x) through the residual, plus the attention branch.
    const dO = back(i, 'attn.o', a.o, dx);
    const att = attentionBackwardRef({ T, Hq, Hkv, D, scale: cfg.attentionScale, Q: a.q, K: a.k, V: a.v, seg: b.segments, dO });
    const dQ = unrope(Hq, att.dQ);
    const dK = unrope(Hkv, att.dK);
    if (cfg.family === 'gpt2') {
      let dQKV: Float64Array = new Float64Array(T * 3 * C);
      for (const [j, d] of [dQ, dK, att.dV].entries()) dQKV = scatterColumnsRef({ rows: T, wide: 3 * C, narrow: C, offset: j * C }, d, dQKV, false);
      dn = back(i, 'attn.qkv', a.n1, dQKV);
    } else {
      dn = add(add(back(i, 'attn.q', a.n1, dQ), back(i, 'attn.k', a.n1, dK)), back(i, 'attn.v', a.n1, att.dV));
    }
    dx = normBackwardRef(kind, normShape(s, T), a.x, tensor(s, `layers.${i}.attn_norm.weight`), dn, dx).dx;
  }
  // dx is now d(embeddings): frozen, so the gradient stops here.
  return { lossSum: fw.lossSum, count: fw.count, grads };
}
