// Host side of flash_attention.wgsl: FlashAttention-2-style causal self-attention (GQA, packed sequences), forward
// and backward, with the same buffer contract as attention.ts (see the .wgsl header), plus P prefix key/value rows
// every query sees (prefix tuning; shape.P, prefixKV → dPrefixKV). Each head dim gets its own WGSL (per-lane
// register arrays sized by it), with and without subgroups.
import source from '../../shaders/flash_attention.wgsl?raw';
import teamShared from '../../shaders/flash_attention_team_shared.wgsl?raw';
import teamSubgroup from '../../shaders/flash_attention_team_subgroup.wgsl?raw';
import {
  KernelError,
  packParams,
  type BindingAccess,
  type DispatchCost,
  type KernelSpec,
  type ParamField,
  type Recorder,
  type Workgroups,
} from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';
import { AttentionShapeError, attentionScale, checkShape, prefixRows, type AttentionShape } from '../ref/attention.ref.ts';
import { foldWorkgroups } from './elementwise.ts';

export const FLASH_ATTENTION_PASSES = [
  'forward',
  'backward_prep',
  'backward_dq',
  'backward_dkv',
  'backward_reduce',
  'backward_dprefix',
  'backward_dprefix_reduce',
] as const;
export type FlashAttentionPass = (typeof FLASH_ATTENTION_PASSES)[number];

/** Largest head dim: per-lane arrays hold ⌈D/4⌉ floats. */
export const FLASH_ATTENTION_MAX_HEAD_DIM = 128;

/** Invocations per workgroup and rows (queries or keys) per workgroup: 4 lanes per row. */
const WG = 128;
const ROWS = 32;
/** Workgroup memory the tiles may use: WebGPU's default limit (16 KiB) less room for the small arrays. */
const TILE_BUDGET = 16384 - 1024;

const BINDINGS: Record<FlashAttentionPass, BindingAccess[]> = {
  forward: ['read', 'read', 'read', 'read', 'read', 'read_write', 'read_write'], // Q K V seg prefixKV → O L
  backward_prep: ['read', 'read', 'read', 'read_write'], // O dO L → stats
  backward_dq: ['read', 'read', 'read', 'read', 'read', 'read', 'read', 'read_write'], // Q K V seg prefixKV dO stats → dQ
  backward_dkv: ['read', 'read', 'read', 'read', 'read', 'read_write', 'read_write', 'read_write'], // … stats(+partials) → dK dV
  backward_reduce: ['read', 'read_write', 'read_write'], // stats partials → dK dV
  backward_dprefix: ['read', 'read', 'read', 'read_write'], // Q prefixKV dO stats → stats partials
  backward_dprefix_reduce: ['read', 'read_write'], // stats partials → dPrefixKV
};

export interface FlashAttentionVariant {
  /** head_dim, 1..128, baked into the WGSL. */
  D: number;
  /** Use subgroup shuffles for the per-row sums (the device must have the 'subgroups' feature). */
  subgroups: boolean;
  /** Compile the prefix-row path (shape.P > 0) into forward and backward_dq. Without it the prefix branches are
   *  constant-false and fold away: that code made a cold lavapipe compile of the P = 0 pipelines ~4–5× slower
   *  (forward 9 → 39 s, backward 44 → 234 s at D = 48), which every run without a prefix would pay. */
  prefix?: boolean;
}

/** Rows of the streamed operand per tile: two (BT, 4·⌈D/4⌉) f32 tiles, plus (without subgroups) the (32 rows,
 *  4 lanes, BT, 2) exchange buffer, within TILE_BUDGET; at most 32 (the visibility bitmask is one u32). */
export function flashTileRows(v: FlashAttentionVariant): number {
  const dp = 4 * Math.ceil(v.D / 4);
  const perRow = 8 * dp + (v.subgroups ? 0 : ROWS * 4 * 2 * 4);
  return Math.max(1, Math.min(32, Math.floor(TILE_BUDGET / perRow)));
}

const wgslCache = new Map<string, string>();
/** The module for one variant: `enable subgroups;` and the head-dim constants on line 1 (so compile errors keep
 *  flash_attention.wgsl's line numbers), the team helpers appended. */
function flashWgsl(v: FlashAttentionVariant): string {
  const key = `${v.D}|${v.subgroups}|${!!v.prefix}`;
  let text = wgslCache.get(key);
  if (!text) {
    const head = `${v.subgroups ? 'enable subgroups; ' : ''}const HD = ${v.D}u; const BT = ${flashTileRows(v)}u; const PREFIX = ${!!v.prefix}; `;
    const body = renderWgsl('flash_attention', source);
    const team = renderWgsl('flash_attention_team', v.subgroups ? teamSubgroup : teamShared);
    text = `${head}${body}\n${team}`;
    wgslCache.set(key, text);
  }
  return text;
}

function checkVariant(v: FlashAttentionVariant): void {
  if (!Number.isInteger(v.D) || v.D < 1 || v.D > FLASH_ATTENTION_MAX_HEAD_DIM) {
    throw new AttentionShapeError(`attention: head_dim ${v.D} exceeds the kernel's maximum ${FLASH_ATTENTION_MAX_HEAD_DIM}`);
  }
}

export function flashAttentionSpec(pass: FlashAttentionPass, v: FlashAttentionVariant): KernelSpec {
  checkVariant(v);
  return {
    label: `flash_attention.${pass}.d${v.D}${v.subgroups ? '.sg' : ''}${v.prefix ? '.prefix' : ''}`,
    file: 'src/shaders/flash_attention.wgsl',
    wgsl: flashWgsl(v),
    entryPoint: pass,
    constants: {},
    bindings: BINDINGS[pass],
    paramsBytes: 32,
  };
}

/** Head dims the compile-everything test instantiates: odd and small ones (fixtures) and the real models'. */
export const FLASH_ATTENTION_TESTED_HEAD_DIMS = [1, 5, 8, 12, 16, 32, 64, 80, 96, 128] as const;

/** Every pass at the listed head dims, for the compile-everything test (subgroup variants only when asked: the
 *  validating device must have the feature). */
export function allFlashAttentionSpecs(subgroups = false): KernelSpec[] {
  return FLASH_ATTENTION_TESTED_HEAD_DIMS.flatMap((D) => FLASH_ATTENTION_PASSES.map((pass) => flashAttentionSpec(pass, { D, subgroups })));
}

/** The flash kernel's params: the shared six, then backward_dprefix's chunking (chunks, span). */
function params(shape: AttentionShape): ArrayBuffer {
  const { chunks, span } = flashPrefixChunks(shape);
  return attentionParams(shape, FLASH_ATTENTION_MAX_HEAD_DIM, [
    ['u32', chunks],
    ['u32', span],
  ]);
}

/** The params uniform both attention kernels take (T, Hq, Hkv, D, scale, P, then `extra`), after checking the shape
 *  against the kernel's largest head dim. */
export function attentionParams(shape: AttentionShape, maxHeadDim: number, extra: readonly ParamField[] = []): ArrayBuffer {
  checkShape(shape);
  if (shape.D > maxHeadDim) {
    throw new AttentionShapeError(`attention: head_dim ${shape.D} exceeds the kernel's maximum ${maxHeadDim}`);
  }
  const scale = attentionScale(shape);
  if (!Number.isFinite(scale)) throw new KernelError(`attention: scale must be finite, got ${scale}`);
  return packParams([
    ['u32', shape.T],
    ['u32', shape.Hq],
    ['u32', shape.Hkv],
    ['u32', shape.D],
    ['f32', scale],
    ['u32', prefixRows(shape)],
    ...extra,
  ]);
}

/** backward_dprefix aims for at least this many workgroups (a GPU's SMs several times over) when there is work
 *  enough … */
const PREFIX_TARGET_WORKGROUPS = 256;
/** … but gives each chunk at least this many query rows (about 2–9 tiles), so that its partials (2·D floats per
 *  prefix row) and the reduce stay small beside the chunk's reads of Q and dO (2·D floats per query row). */
const PREFIX_MIN_SPAN = 64;

/** How backward_dprefix splits the G·T query rows of each kv head (numbered head by head, f = hh·T + i): `chunks`
 *  chunks (the dispatch's z) of `span` consecutive rows, the last one shorter. One chunk when G·T < 2·PREFIX_MIN_SPAN
 *  or the prefix alone fills PREFIX_TARGET_WORKGROUPS; else as many as bring ⌈P/32⌉·Hkv·chunks up to that target,
 *  with spans of at least PREFIX_MIN_SPAN. A function of the shape only (rows, not tiles: not of the variant's BT),
 *  since flashAttentionStatsBytes sizes the partials with it. E.g. Qwen2.5-0.5B (Hq = 14, Hkv = 2), T = 2048,
 *  P ≤ 32: 128 chunks of 112 rows, 256 workgroups (before: 2, each over all 14,336 rows). */
export function flashPrefixChunks(shape: AttentionShape): { chunks: number; span: number } {
  const rows = shape.T * (shape.Hq / shape.Hkv);
  const P = prefixRows(shape);
  if (P === 0 || rows === 0) return { chunks: 1, span: rows };
  const base = Math.ceil(P / ROWS) * shape.Hkv;
  const want = Math.max(1, Math.min(Math.ceil(PREFIX_TARGET_WORKGROUPS / base), Math.floor(rows / PREFIX_MIN_SPAN)));
  const span = Math.ceil(rows / want);
  return { chunks: Math.ceil(rows / span), span };
}

/** Whether the recorder's device can run the subgroup variant. */
function useSubgroups(rec: Recorder, option: boolean | undefined): boolean {
  const has = rec.features.has('subgroups');
  if (option && !has) throw new KernelError('flash attention: subgroups requested but the device does not have them');
  return option ?? has;
}

/** (⌈T/32⌉, heads, 1): a workgroup per block of 32 rows and one query head. */
function blockGroups(T: number, heads: number): Workgroups {
  return [Math.ceil(T / ROWS), heads, 1];
}

/** One invocation per item, folded into x and y. */
function flatGroups(n: number): Workgroups {
  return foldWorkgroups(Math.ceil(n / WG));
}

/** FLOPs and bytes of each pass, counted as one causal sequence of T rows (T²/2 query-key pairs per head; packed
 *  segments do less) plus T·P query-prefix pairs. Per pair and head: forward q·k and p·v (4·D); backward_dq q·k,
 *  dO·v, ds·k (6·D); backward_dkv and backward_dprefix k·q, v·dO, p·dO, ds·q (8·D). `groupPartials`: dkv writes
 *  per-query-head partials where heads are grouped (the flash kernel; the row kernel sums its group in place and
 *  writes dK, dV whole). backward_dprefix writes one dPrefixKV-sized partial per chunk (flashPrefixChunks), which
 *  backward_dprefix_reduce sums into dPrefixKV. */
export function flashAttentionCost(pass: FlashAttentionPass, s: AttentionShape, groupPartials = true): DispatchCost {
  const prefixPairs = s.T * prefixRows(s);
  const pairs = (s.T * (s.T + 1)) / 2;
  const q = s.T * s.Hq * s.D * 4; // bytes of Q, O, dO or dQ
  const kv = s.T * s.Hkv * s.D * 4; // bytes of K, V, dK or dV
  const pkv = prefixRows(s) * 2 * s.Hkv * s.D * 4; // bytes of prefixKV or dPrefixKV
  const rows = s.T * s.Hq * 4; // one f32 per query row (L; stats hold two)
  const partialsOut = groupPartials && s.Hq !== s.Hkv ? 2 * q : 0; // dkv's per-query-head partials
  switch (pass) {
    case 'forward':
      return { flops: 4 * s.D * (pairs + prefixPairs) * s.Hq, bytes: 2 * q + 2 * kv + pkv + rows + s.T * 4 };
    case 'backward_prep':
      return { flops: 2 * s.D * s.T * s.Hq, bytes: 2 * q + 3 * rows };
    case 'backward_dq':
      return { flops: 6 * s.D * (pairs + prefixPairs) * s.Hq, bytes: 3 * q + 2 * kv + pkv + 2 * rows + s.T * 4 };
    case 'backward_dkv':
      return { flops: 8 * s.D * pairs * s.Hq, bytes: 2 * q + 2 * kv + (partialsOut || 2 * kv) + 2 * rows + s.T * 4 };
    case 'backward_reduce':
      return { flops: 2 * s.T * s.Hq * s.D, bytes: 2 * q + 2 * kv };
    case 'backward_dprefix':
      return { flops: 8 * s.D * prefixPairs * s.Hq, bytes: 2 * q + (1 + flashPrefixChunks(s).chunks) * pkv + 2 * rows };
    case 'backward_dprefix_reduce': {
      const { chunks } = flashPrefixChunks(s);
      return { flops: chunks * (pkv / 4), bytes: (chunks + 1) * pkv };
    }
  }
}

export interface FlashAttentionForwardBuffers {
  /** (T, Hq, D) */
  Q: GPUBuffer;
  /** (T, Hkv, D) */
  K: GPUBuffer;
  /** (T, Hkv, D) */
  V: GPUBuffer;
  /** (T) u32 segment ids */
  seg: GPUBuffer;
  /** (T, Hq, D) output */
  O: GPUBuffer;
  /** (T, Hq) output: log-sum-exp per row (prefix rows included), kept for the backward pass */
  L: GPUBuffer;
  /** f32 (P, 2, Hkv, D): prefix key p then prefix value p, seen by every query of every segment; required iff
   *  shape.P > 0 */
  prefixKV?: GPUBuffer;
}

/** Checks that a (P, 2, Hkv, D) f32 prefix buffer (`name`: prefixKV or dPrefixKV) is given iff shape.P > 0 and is
 *  large enough. */
function checkPrefixBuffer(name: string, shape: AttentionShape, buf: GPUBuffer | undefined): void {
  const P = prefixRows(shape);
  if (P > 0 && !buf) throw new KernelError(`attention: shape.P = ${P} prefix rows but no ${name} buffer (f32 (P, 2, Hkv, D)) was given`);
  if (P === 0 && buf) throw new KernelError(`attention: a ${name} buffer was given but shape.P is 0 (set P to its prefix rows)`);
  const need = P * 2 * shape.Hkv * shape.D * 4;
  if (buf && buf.size < need) {
    throw new KernelError(`attention: ${name} holds ${buf.size} bytes, (P, 2, Hkv, D) = (${P}, 2, ${shape.Hkv}, ${shape.D}) f32 needs ${need}`);
  }
}

/** The prefixKV buffer to bind after checking it: any small buffer when P = 0 (the kernel then never reads it). */
export function prefixBinding(rec: Recorder, shape: AttentionShape, prefixKV: GPUBuffer | undefined): GPUBuffer {
  checkPrefixBuffer('prefixKV', shape, prefixKV);
  return prefixKV ?? rec.unused;
}

export interface FlashAttentionOptions {
  /** Force the subgroup variant on or off; default: on where the device has 'subgroups'. */
  subgroups?: boolean;
}

/** Records O = softmax(scale·QKᵀ + mask)·V and L into `rec`: one dispatch. */
export function recordFlashAttentionForward(rec: Recorder, shape: AttentionShape, b: FlashAttentionForwardBuffers, o: FlashAttentionOptions = {}): void {
  const p = params(shape);
  const v = { D: shape.D, subgroups: useSubgroups(rec, o.subgroups), prefix: prefixRows(shape) > 0 };
  const prefix = prefixBinding(rec, shape, b.prefixKV);
  if (shape.T === 0) return;
  rec.dispatch(flashAttentionSpec('forward', v), [b.Q, b.K, b.V, b.seg, prefix, b.O, b.L], p, blockGroups(shape.T, shape.Hq), flashAttentionCost('forward', shape));
}

export interface FlashAttentionBackwardBuffers extends FlashAttentionForwardBuffers {
  /** (T, Hq, D) upstream gradient */
  dO: GPUBuffer;
  /** f32 scratch of flashAttentionStatsBytes(shape), overwritten */
  stats: GPUBuffer;
  /** (T, Hq, D) output, overwritten */
  dQ: GPUBuffer;
  /** (T, Hkv, D) outputs, overwritten */
  dK: GPUBuffer;
  dV: GPUBuffer;
  /** f32 (P, 2, Hkv, D) output, overwritten: the gradient of prefixKV summed over every query of every segment and
   *  over each group's query heads; required iff shape.P > 0 */
  dPrefixKV?: GPUBuffer;
}

/** Bytes of the backward's `stats` scratch: (L, Δ) per row, then room for the larger of backward_dkv's per-query-head
 *  dK, dV partials (G > 1) and backward_dprefix's per-chunk dPrefixKV partials (P > 0: flashPrefixChunks), which use
 *  it in turn. */
export function flashAttentionStatsBytes(shape: AttentionShape): number {
  const rows = shape.T * shape.Hq;
  const dkvPartials = shape.Hq === shape.Hkv ? 0 : 2 * rows * shape.D;
  const { chunks } = flashPrefixChunks(shape);
  const prefixPartials = chunks * prefixRows(shape) * 2 * shape.Hkv * shape.D;
  return (2 * rows + Math.max(dkvPartials, prefixPartials)) * 4;
}

/** Records dQ, dK, dV (overwritten) from the forward's O and L: prep → dq → dkv (→ reduce when G > 1), and with
 *  P > 0 dPrefixKV: dprefix → dprefix_reduce. */
export function recordFlashAttentionBackward(rec: Recorder, shape: AttentionShape, b: FlashAttentionBackwardBuffers, o: FlashAttentionOptions = {}): void {
  const p = params(shape);
  const v = { D: shape.D, subgroups: useSubgroups(rec, o.subgroups) };
  const prefix = prefixBinding(rec, shape, b.prefixKV);
  checkPrefixBuffer('dPrefixKV', shape, b.dPrefixKV);
  const P = prefixRows(shape);
  const { T, Hq, Hkv } = shape;
  if (T === 0) {
    // No query sees the prefix: its gradient is zero, and "overwritten" still holds.
    if (b.dPrefixKV) rec.clear(b.dPrefixKV);
    return;
  }
  rec.dispatch(flashAttentionSpec('backward_prep', v), [b.O, b.dO, b.L, b.stats], p, flatGroups(T * Hq), flashAttentionCost('backward_prep', shape));
  rec.dispatch(
    flashAttentionSpec('backward_dq', { ...v, prefix: P > 0 }),
    [b.Q, b.K, b.V, b.seg, prefix, b.dO, b.stats, b.dQ],
    p,
    blockGroups(T, Hq),
    flashAttentionCost('backward_dq', shape),
  );
  rec.dispatch(
    flashAttentionSpec('backward_dkv', v),
    [b.Q, b.K, b.V, b.seg, b.dO, b.stats, b.dK, b.dV],
    p,
    blockGroups(T, Hq),
    flashAttentionCost('backward_dkv', shape),
  );
  if (Hq !== Hkv) {
    rec.dispatch(flashAttentionSpec('backward_reduce', v), [b.stats, b.dK, b.dV], p, flatGroups(T * Hkv * shape.D), flashAttentionCost('backward_reduce', shape));
  }
  if (P > 0) {
    const dPrefixKV = b.dPrefixKV as GPUBuffer;
    const { chunks } = flashPrefixChunks(shape);
    const dprefix = flashAttentionSpec('backward_dprefix', v);
    rec.dispatch(dprefix, [b.Q, prefix, b.dO, b.stats], p, [Math.ceil(P / ROWS), Hkv, chunks], flashAttentionCost('backward_dprefix', shape));
    const reduce = flashAttentionSpec('backward_dprefix_reduce', v);
    rec.dispatch(reduce, [b.stats, dPrefixKV], p, flatGroups(P * 2 * Hkv * shape.D), flashAttentionCost('backward_dprefix_reduce', shape));
  }
}
