// Host side of lora.wgsl: the fused LoRA linear layer's specs and its forward/backward recordings, plus the same
// computation as separate passes (recordLoraForwardUnfused/BackwardUnfused) so a benchmark can measure what the
// fusion saves. See the .wgsl header for the contract.
import source from '../../shaders/lora.wgsl?raw';
import { packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import { renderWgsl, type ElementType } from '../wgsl.ts';
import { dropoutKeepScale, dropoutThreshold, type LoraShape } from '../ref/lora.ref.ts';
import { elemBytes } from './cost.ts';
import { recordMatmul, type MatmulVariant } from './matmul.ts';

export type { LoraShape } from '../ref/lora.ref.ts';

/** The big fused passes (y and dx). The small pieces are fixed: `down`/`gradA` naive, the rest matmul naive. */
export const LORA_VARIANTS = ['naive', 'tiled'] as const;
export type LoraVariant = (typeof LORA_VARIANTS)[number];
const TILE: Record<LoraVariant, number> = { naive: 8, tiled: 16 };

export const LORA_ENTRIES = [...LORA_VARIANTS, 'down', 'gradA', 'maskedAdd', 'hashProbe', 'splitRows', 'splitCols', 'splitReduce'] as const;
export type LoraEntry = (typeof LORA_ENTRIES)[number];

export interface LoraSpecOptions {
  entry: LoraEntry;
  /** Storage of W; only the fused entries read W. */
  elemW?: ElementType;
  transW?: boolean;
  transR?: boolean;
  hasBias?: boolean;
  hasDropout?: boolean;
  accumulate?: boolean;
}

export function loraSpec(o: LoraSpecOptions): KernelSpec {
  const fused = o.entry === 'naive' || o.entry === 'tiled';
  const elemW = fused ? (o.elemW ?? 'f32') : 'f32';
  const flags = [
    o.transW && 'tW',
    o.transR && 'tR',
    o.hasBias && 'bias',
    o.hasDropout && 'drop',
    o.accumulate && 'acc',
  ].filter(Boolean);
  return {
    label: `lora.${o.entry}${fused ? '.' + elemW : ''}${flags.length ? '.' + flags.join('.') : ''}`,
    file: 'src/shaders/lora.wgsl',
    wgsl: renderWgsl('lora', source, { ELEM_B: elemW }),
    entryPoint: o.entry,
    constants: {
      TRANS_W: o.transW ? 1 : 0,
      TRANS_R: o.transR ? 1 : 0,
      HAS_BIAS: o.hasBias ? 1 : 0,
      HAS_DROPOUT: o.hasDropout ? 1 : 0,
      ACCUMULATE: o.accumulate ? 1 : 0,
    },
    bindings: ['read', 'read', 'read', 'read', 'read', 'read_write'],
    paramsBytes: 32,
  };
}

/** Every spec the runtime can instantiate, for the compile-everything test. */
export function allLoraSpecs(hasF16: boolean): KernelSpec[] {
  const elems: ElementType[] = hasF16 ? ['f32', 'f16'] : ['f32'];
  const specs: KernelSpec[] = [];
  const bools = [false, true];
  for (const entry of LORA_VARIANTS)
    for (const elemW of elems)
      for (const transW of bools) {
        // forward: TRANS_R, maybe bias, never dropout in the epilogue; backward dx: no bias, maybe dropout.
        for (const hasBias of bools)
          for (const accumulate of bools) specs.push(loraSpec({ entry, elemW, transW, transR: true, hasBias, accumulate }));
        for (const hasDropout of bools)
          for (const accumulate of bools) specs.push(loraSpec({ entry, elemW, transW, hasDropout, accumulate }));
      }
  for (const hasDropout of bools) {
    specs.push(loraSpec({ entry: 'down', hasDropout }));
    specs.push(loraSpec({ entry: 'maskedAdd', hasDropout }));
    for (const accumulate of bools) specs.push(loraSpec({ entry: 'gradA', hasDropout, accumulate }));
  }
  specs.push(loraSpec({ entry: 'hashProbe' }));
  for (const hasDropout of bools) {
    for (const transR of bools) specs.push(loraSpec({ entry: 'splitRows', hasDropout, transR }));
    specs.push(loraSpec({ entry: 'splitCols', hasDropout }));
  }
  for (const transR of bools) for (const accumulate of bools) specs.push(loraSpec({ entry: 'splitReduce', transR, accumulate }));
  return specs;
}

export interface LoraOptions {
  /** Which fused entry computes y and dx. */
  variant: LoraVariant;
  /** Storage of W (f16 only where the adapter has shader-f16). */
  elemW?: ElementType;
  /** s, see loraScale. */
  scale: number;
  /** Dropout probability on the LoRA path's input, in [0, 1). Default 0: no mask at all. */
  dropout?: number;
  /** u32 seed of the dropout mask; the backward must get the forward's seed. */
  seed?: number;
  /** f32 scratch of loraPartialsFloats(shape): the rank-r products (x·Aᵀ, dy·B, dA, dB) then run split over k
   *  (enough workgroups to fill a GPU) instead of one thread per output with a serial k loop. */
  partials?: GPUBuffer;
}

export interface LoraForwardBuffers {
  x: GPUBuffer; // (T, in) f32
  W: GPUBuffer; // [out, in], or [in, out] when conv1d; elemW
  bias?: GPUBuffer; // (out) f32
  A: BufferRef; // [r, in] f32
  B: BufferRef; // [out, r] f32
  /** (T, r) f32, written: drop(x)·Aᵀ, kept for the backward. */
  h: GPUBuffer;
  /** (T, out) f32, written (added to when accumulate). */
  y: GPUBuffer;
}

export interface LoraBackwardBuffers {
  x: GPUBuffer; // (T, in)
  W: GPUBuffer; // as in the forward
  A: BufferRef; // [r, in]
  B: BufferRef; // [out, r]
  h: GPUBuffer; // (T, r), from the forward
  dy: GPUBuffer; // (T, out)
  /** (T, r) f32 scratch: g = dy·B. */
  g: GPUBuffer;
  /** (T, in) f32, written or accumulated; omit when x needs no gradient (e.g. the first layer's input). */
  dx?: GPUBuffer;
  dA: BufferRef; // [r, in] f32
  dB: BufferRef; // [out, r] f32
}

interface Dropout {
  on: boolean;
  seed: number;
  threshold: number;
  keepScale: number;
}

function dropoutOf(o: Pick<LoraOptions, 'dropout' | 'seed'>): Dropout {
  const p = o.dropout ?? 0;
  const seed = o.seed ?? 0;
  if (!(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff)) throw new RangeError(`lora: seed ${seed} is not a u32`);
  return { on: p > 0, seed, threshold: dropoutThreshold(p), keepScale: dropoutKeepScale(p) };
}

function checkShape(s: LoraShape): void {
  for (const key of ['T', 'inFeatures', 'outFeatures', 'r'] as const) {
    if (!(Number.isInteger(s[key]) && s[key] > 0)) throw new RangeError(`lora: ${key} = ${s[key]} must be a positive integer`);
  }
}

function params(M: number, N: number, K: number, R: number, scale: number, d: Dropout): ArrayBuffer {
  return packParams([
    ['u32', M],
    ['u32', N],
    ['u32', K],
    ['u32', R],
    ['u32', d.seed],
    ['u32', d.threshold],
    ['f32', scale],
    ['f32', d.keepScale],
  ]);
}

const grid8 = (M: number, N: number) => [Math.ceil(N / 8), Math.ceil(M / 8), 1] as const;

/** A fused pass (y, or dx): the full product rows×cols×K with W (2·rows·cols·K) plus the rank-r term (2·rows·cols·r);
 *  its input, W, the rank-r factors and its output (read too when accumulating). */
function fusedCost(rows: number, cols: number, K: number, r: number, elemW: ElementType | undefined, o: { accumulate?: boolean; hasBias?: boolean }) {
  return {
    flops: 2 * rows * cols * (K + r),
    bytes: rows * K * 4 + cols * K * elemBytes(elemW) + rows * r * 4 + cols * r * 4 + rows * cols * 4 * (o.accumulate ? 2 : 1) + (o.hasBias ? cols * 4 : 0),
  };
}

/** Workgroups a split product aims for (a few per SM of a large GPU), and the shortest slice of k worth a workgroup. */
const SPLIT_TARGET_GROUPS = 512;
const SPLIT_MIN_K = 64;

/** How a split product of an (M, N) output over K is cut: slices of `sliceK` (a multiple of 16), `slices` of them. */
export function splitPlan(M: number, N: number, K: number): { slices: number; sliceK: number } {
  const tiles = Math.ceil(N / 16) * Math.ceil(M / 64);
  const wanted = Math.min(Math.ceil(SPLIT_TARGET_GROUPS / tiles), Math.ceil(K / SPLIT_MIN_K));
  const sliceK = Math.ceil(Math.ceil(K / Math.max(1, wanted)) / 16) * 16;
  return { slices: Math.ceil(K / sliceK), sliceK };
}

/** Floats of the `partials` scratch for every rank-r product of a layer of this shape: a bound that grows with T
 *  (slices·M·N ≤ (SPLIT_TARGET_GROUPS / tiles + 1)·M·N and M·N ≤ tiles·64·16), so a buffer sized for a run's
 *  longest batch serves every shorter one. */
export function loraPartialsFloats(s: LoraShape): number {
  return SPLIT_TARGET_GROUPS * 64 * 16 + Math.max(s.T, s.inFeatures, s.outFeatures) * s.r;
}

/** Q = (rows: drop(X)·opR | cols: drop(X)ᵀ·L) into `partials` by slices of k, then C = scale·Σ slices (+ C), stored
 *  as Q or (transOut) Qᵀ. */
function recordSplit(
  rec: Recorder,
  kind: 'splitRows' | 'splitCols',
  dims: { M: number; N: number; K: number },
  b: { X: GPUBuffer; L?: GPUBuffer; Rk?: BufferRef; partials: GPUBuffer; C: BufferRef },
  o: { transR?: boolean; dropout: Dropout; scale: number; transOut: boolean; accumulate: boolean },
): void {
  const { M, N, K } = dims;
  const { slices, sliceK } = splitPlan(M, N, K);
  const u = rec.unused;
  rec.dispatch(
    loraSpec({ entry: kind, hasDropout: o.dropout.on, transR: o.transR }),
    [b.X, u, u, b.L ?? u, b.Rk ?? u, b.partials],
    params(M, N, K, sliceK, 1, o.dropout),
    [Math.ceil(N / 16), Math.ceil(M / 64), slices],
    { flops: 2 * M * N * K, bytes: 4 * (M * K + N * K + slices * M * N) },
  );
  rec.dispatch(
    loraSpec({ entry: 'splitReduce', transR: o.transOut, accumulate: o.accumulate }),
    [u, u, u, b.partials, u, b.C],
    params(M, N, K, sliceK, o.scale, { ...o.dropout, on: false }),
    [Math.ceil((M * N) / 256), 1, 1],
    { flops: slices * M * N, bytes: 4 * (slices + (o.accumulate ? 2 : 1)) * M * N },
  );
}

/** h = drop(x)·Aᵀ (T, r). Shared by the fused and unfused forward. */
function recordDown(rec: Recorder, s: LoraShape, b: { x: GPUBuffer; A: BufferRef; h: GPUBuffer }, d: Dropout, partials?: GPUBuffer): void {
  if (partials) {
    recordSplit(rec, 'splitRows', { M: s.T, N: s.r, K: s.inFeatures }, { X: b.x, Rk: b.A, partials, C: b.h }, {
      transR: true, dropout: d, scale: 1, transOut: false, accumulate: false,
    });
    return;
  }
  const spec = loraSpec({ entry: 'down', hasDropout: d.on });
  const u = rec.unused;
  rec.dispatch(spec, [b.x, u, u, u, b.A, b.h], params(s.T, s.r, s.inFeatures, 0, 1, d), grid8(s.T, s.r), {
    flops: 2 * s.T * s.r * s.inFeatures,
    bytes: 4 * (s.T * s.inFeatures + s.r * s.inFeatures + s.T * s.r),
  });
}

/** dA = s·gᵀ·drop(x) (+ dA). Shared by the fused and unfused backward. */
function recordGradA(
  rec: Recorder,
  s: LoraShape,
  b: { x: GPUBuffer; g: GPUBuffer; dA: BufferRef },
  scale: number,
  d: Dropout,
  accumulate: boolean,
  partials?: GPUBuffer,
): void {
  if (partials) {
    // Q[i, j] = Σ_t drop(x)[t, i]·g[t, j], stored transposed: dA is [r, in].
    recordSplit(rec, 'splitCols', { M: s.inFeatures, N: s.r, K: s.T }, { X: b.x, L: b.g, partials, C: b.dA }, {
      dropout: d, scale, transOut: true, accumulate,
    });
    return;
  }
  const spec = loraSpec({ entry: 'gradA', hasDropout: d.on, accumulate });
  const u = rec.unused;
  rec.dispatch(spec, [b.x, u, u, b.g, u, b.dA], params(s.r, s.inFeatures, s.T, 0, scale, d), grid8(s.r, s.inFeatures), {
    flops: 2 * s.r * s.inFeatures * s.T,
    bytes: 4 * (s.T * s.r + s.T * s.inFeatures + (accumulate ? 2 : 1) * s.r * s.inFeatures),
  });
}

/** g = dy·B and dB = s·dyᵀ·h (+ dB). */
function recordGradB(rec: Recorder, s: LoraShape, b: Omit<LoraBackwardBuffers, 'W'>, scale: number, accumulate: boolean, partials?: GPUBuffer): void {
  if (partials) {
    const none = { on: false, seed: 0, threshold: 0, keepScale: 1 };
    recordSplit(rec, 'splitRows', { M: s.T, N: s.r, K: s.outFeatures }, { X: b.dy, Rk: b.B, partials, C: b.g }, {
      transR: false, dropout: none, scale: 1, transOut: false, accumulate: false,
    });
    recordSplit(rec, 'splitCols', { M: s.outFeatures, N: s.r, K: s.T }, { X: b.dy, L: b.h, partials, C: b.dB }, {
      dropout: none, scale, transOut: false, accumulate,
    });
    return;
  }
  recordMatmul(rec, { M: s.T, N: s.r, K: s.outFeatures }, { A: b.dy, B: b.B, C: b.g }, { variant: 'naive' });
  recordMatmul(
    rec,
    { M: s.outFeatures, N: s.r, K: s.T, transA: true, alpha: scale },
    { A: b.dy, B: b.h, C: b.dB },
    { variant: 'naive', accumulate },
  );
}

/** Forward: h = drop(x)·Aᵀ, then y = x·Wᵀ + b + s·h·Bᵀ (+ y) in one pass over x. */
export function recordLoraForward(
  rec: Recorder,
  shape: LoraShape,
  buffers: LoraForwardBuffers,
  options: LoraOptions & { accumulate?: boolean },
): void {
  checkShape(shape);
  const d = dropoutOf(options);
  const { T, inFeatures, outFeatures, r } = shape;
  recordDown(rec, shape, buffers, d, options.partials);
  const spec = loraSpec({
    entry: options.variant,
    elemW: options.elemW,
    transW: !shape.conv1d,
    transR: true,
    hasBias: !!buffers.bias,
    accumulate: options.accumulate,
  });
  const noDropout = { ...d, on: false };
  const tile = TILE[options.variant];
  rec.dispatch(
    spec,
    [buffers.x, buffers.W, buffers.bias ?? rec.unused, buffers.h, buffers.B, buffers.y],
    params(T, outFeatures, inFeatures, r, options.scale, noDropout),
    [Math.ceil(outFeatures / tile), Math.ceil(T / tile), 1],
    fusedCost(T, outFeatures, inFeatures, r, options.elemW, { accumulate: options.accumulate, hasBias: !!buffers.bias }),
  );
}

export interface LoraBackwardOptions extends LoraOptions {
  /** Add into dx instead of overwriting it (the residual stream's gradient). */
  accumulateDx?: boolean;
  /** Add into dA and dB (gradient accumulation across micro-batches). */
  accumulateGrads?: boolean;
}

/** Backward: g = dy·B; dx = dy·W + s·(g·A)∘mask in one pass over dy; dA = s·gᵀ·drop(x); dB = s·dyᵀ·h. */
export function recordLoraBackward(rec: Recorder, shape: LoraShape, buffers: LoraBackwardBuffers, options: LoraBackwardOptions): void {
  checkShape(shape);
  const d = dropoutOf(options);
  const { T, inFeatures, outFeatures, r } = shape;
  const accumulateGrads = !!options.accumulateGrads;
  recordGradB(rec, shape, buffers, options.scale, accumulateGrads, options.partials);
  if (buffers.dx) {
    const spec = loraSpec({
      entry: options.variant,
      elemW: options.elemW,
      transW: !!shape.conv1d,
      hasDropout: d.on,
      accumulate: options.accumulateDx,
    });
    const tile = TILE[options.variant];
    rec.dispatch(
      spec,
      [buffers.dy, buffers.W, rec.unused, buffers.g, buffers.A, buffers.dx],
      params(T, inFeatures, outFeatures, r, options.scale, d),
      [Math.ceil(inFeatures / tile), Math.ceil(T / tile), 1],
      fusedCost(T, inFeatures, outFeatures, r, options.elemW, { accumulate: options.accumulateDx }),
    );
  }
  recordGradA(rec, shape, buffers, options.scale, d, accumulateGrads, options.partials);
}

// --- the same without fusion, for measuring what fusion gains -------------------------------------------------------

/** The low-rank path alone, added to a base output computed elsewhere (the unfused twin below, and the NF4 base of
 *  QLoRA): h = drop(x)·Aᵀ, y += s·h·Bᵀ. */
export function recordLoraPathForward(
  rec: Recorder,
  shape: LoraShape,
  buffers: Pick<LoraForwardBuffers, 'x' | 'A' | 'B' | 'h' | 'y'>,
  options: Pick<LoraOptions, 'scale' | 'dropout' | 'seed' | 'partials'> & { variant?: MatmulVariant },
): void {
  checkShape(shape);
  recordDown(rec, shape, buffers, dropoutOf(options), options.partials);
  recordMatmul(
    rec,
    { M: shape.T, N: shape.outFeatures, K: shape.r, transB: true, alpha: options.scale },
    { A: buffers.h, B: buffers.B, C: buffers.y },
    { variant: options.variant ?? 'naive', accumulate: true },
  );
}

/** The low-rank path's backward beside a base dx computed elsewhere: dB, g = dy·B, dx += s·(g·A)∘mask (with dropout
 *  through `scratch` (T, in)), dA. */
export function recordLoraPathBackward(
  rec: Recorder,
  shape: LoraShape,
  buffers: Omit<LoraBackwardBuffers, 'W'> & { scratch?: GPUBuffer },
  options: Pick<LoraBackwardOptions, 'scale' | 'dropout' | 'seed' | 'accumulateGrads' | 'partials'> & { variant?: MatmulVariant },
): void {
  checkShape(shape);
  const d = dropoutOf(options);
  const { T, inFeatures, r } = shape;
  const variant = options.variant ?? 'naive';
  recordGradB(rec, shape, buffers, options.scale, !!options.accumulateGrads, options.partials);
  if (buffers.dx) {
    const rankShape = { M: T, N: inFeatures, K: r };
    if (!d.on) {
      recordMatmul(rec, { ...rankShape, alpha: options.scale }, { A: buffers.g, B: buffers.A, C: buffers.dx }, { variant, accumulate: true });
    } else {
      if (!buffers.scratch) throw new RangeError('LoRA backward: dropout > 0 needs a (T, in) scratch buffer');
      recordMatmul(rec, rankShape, { A: buffers.g, B: buffers.A, C: buffers.scratch }, { variant });
      const spec = loraSpec({ entry: 'maskedAdd', hasDropout: true });
      const u = rec.unused;
      const cost = { flops: 2 * T * inFeatures, bytes: 12 * T * inFeatures };
      rec.dispatch(spec, [u, u, u, buffers.scratch, u, buffers.dx], params(T, inFeatures, 0, 0, options.scale, d), grid8(T, inFeatures), cost);
    }
  }
  recordGradA(rec, shape, buffers, options.scale, d, !!options.accumulateGrads, options.partials);
}

/** dst += s·mask ⊙ src over (T, in), the mask of `x`'s elements under the options' dropout and seed (the forward's):
 *  lora.wgsl's maskedAdd on its own, for layers that drop x outside the low-rank path (DoRA's W·drop(x)). */
export function recordDropoutMaskedAdd(
  rec: Recorder,
  shape: { T: number; inFeatures: number },
  buffers: { src: GPUBuffer; dst: GPUBuffer },
  options: Pick<LoraOptions, 'dropout' | 'seed'> & { scale: number },
): void {
  const d = dropoutOf(options);
  if (!d.on) throw new RangeError('dropout masked add: dropout must be > 0');
  const { T, inFeatures } = shape;
  const u = rec.unused;
  const cost = { flops: 2 * T * inFeatures, bytes: 12 * T * inFeatures };
  rec.dispatch(loraSpec({ entry: 'maskedAdd', hasDropout: true }), [u, u, u, buffers.src, u, buffers.dst], params(T, inFeatures, 0, 0, options.scale, d), grid8(T, inFeatures), cost);
}

/** Forward as separate passes: h = drop(x)·Aᵀ; y = x·Wᵀ + b (+ y); y += s·h·Bᵀ (a second full pass over y). */
export function recordLoraForwardUnfused(
  rec: Recorder,
  shape: LoraShape,
  buffers: LoraForwardBuffers,
  options: Omit<LoraOptions, 'variant'> & { variant: MatmulVariant; accumulate?: boolean },
): void {
  checkShape(shape);
  const { T, inFeatures, outFeatures } = shape;
  recordMatmul(
    rec,
    { M: T, N: outFeatures, K: inFeatures, transB: !shape.conv1d },
    { A: buffers.x, B: buffers.W, bias: buffers.bias, C: buffers.y },
    { variant: options.variant, elemB: options.elemW, accumulate: options.accumulate },
  );
  recordLoraPathForward(rec, shape, buffers, options);
}

/** Backward as separate passes. With dropout the rank-r term needs `scratch` (T, in) f32 for g·A before masking. */
export function recordLoraBackwardUnfused(
  rec: Recorder,
  shape: LoraShape,
  buffers: LoraBackwardBuffers & { scratch?: GPUBuffer },
  options: Omit<LoraBackwardOptions, 'variant'> & { variant: MatmulVariant },
): void {
  checkShape(shape);
  const { T, inFeatures, outFeatures } = shape;
  if (buffers.dx) {
    recordMatmul(
      rec,
      { M: T, N: inFeatures, K: outFeatures, transB: !!shape.conv1d },
      { A: buffers.dy, B: buffers.W, C: buffers.dx },
      { variant: options.variant, elemB: options.elemW, accumulate: options.accumulateDx },
    );
  }
  recordLoraPathBackward(rec, shape, buffers, options);
}

/** Test hook: the kernel's dropout hash of indices 0..count-1 as (low 16 bits, high 16 bits) pairs in `out` (2·count f32). */
export function recordDropoutHashProbe(rec: Recorder, count: number, seed: number, out: GPUBuffer): void {
  const d = { on: true, seed, threshold: 0, keepScale: 1 };
  const u = rec.unused;
  rec.dispatch(loraSpec({ entry: 'hashProbe' }), [u, u, u, u, u, out], params(count, 0, 0, 0, 1, d), [Math.ceil(count / 64), 1, 1], { bytes: count * 8 });
}
