// Host side of dora.wgsl and dora_nf4.wgsl: DoRA's weight norm (dense f32/f16 or NF4 base), its output combination
// and the magnitude's gradient. See the .wgsl headers for the contracts; ref/dora.ref.ts is the float64 reference.
import source from '../../shaders/dora.wgsl?raw';
import nf4Source from '../../shaders/dora_nf4.wgsl?raw';
import { KernelError, packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import type { DoraNormShape } from '../ref/dora.ref.ts';
import { renderWgsl, type ElementType } from '../wgsl.ts';
import { foldWorkgroups, type FoldOptions } from './elementwise.ts';
import type { Nf4Weight } from './nf4.ts';

export type { DoraNormShape } from '../ref/dora.ref.ts';

export type DoraEntry = 'weight_norm' | 'output' | 'magnitude_grad';

export interface DoraSpecOptions {
  entry: DoraEntry;
  /** weight_norm: W's storage type (the other entries are f32). */
  elemW?: ElementType;
  conv1d?: boolean;
  hasBias?: boolean;
  subBase?: boolean;
  accumulate?: boolean;
}

export function doraSpec(o: DoraSpecOptions): KernelSpec {
  const elem = o.entry === 'weight_norm' ? (o.elemW ?? 'f32') : 'f32';
  const flags = [elem === 'f16' && 'f16', o.conv1d && 'conv1d', o.hasBias && 'bias', o.subBase && 'sub', o.accumulate && 'acc'].filter(Boolean);
  return {
    label: `dora.${o.entry}${flags.length ? '.' + flags.join('.') : ''}`,
    file: 'src/shaders/dora.wgsl',
    wgsl: renderWgsl('dora', source, { ELEM_B: elem }),
    entryPoint: o.entry,
    constants: { CONV1D: o.conv1d ? 1 : 0, HAS_BIAS: o.hasBias ? 1 : 0, SUB_BASE: o.subBase ? 1 : 0, ACCUMULATE: o.accumulate ? 1 : 0 },
    bindings: ['read', 'read', 'read', 'read', 'read_write'],
    paramsBytes: 32,
  };
}

export function doraNf4Spec(doubleQuant: boolean): KernelSpec {
  return {
    label: `dora_nf4.weight_norm_nf4${doubleQuant ? '.dq' : ''}`,
    file: 'src/shaders/dora_nf4.wgsl',
    wgsl: nf4Source,
    entryPoint: 'weight_norm_nf4',
    constants: { DOUBLE_QUANT: doubleQuant ? 1 : 0 },
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'read_write'],
    paramsBytes: 32,
  };
}

export function allDoraSpecs(hasF16: boolean): KernelSpec[] {
  const bools = [false, true];
  const specs: KernelSpec[] = [];
  for (const elemW of hasF16 ? (['f32', 'f16'] as const) : (['f32'] as const)) for (const conv1d of bools) specs.push(doraSpec({ entry: 'weight_norm', elemW, conv1d }));
  for (const hasBias of bools) for (const subBase of bools) for (const accumulate of bools) specs.push(doraSpec({ entry: 'output', hasBias, subBase, accumulate }));
  for (const accumulate of bools) specs.push(doraSpec({ entry: 'magnitude_grad', accumulate }));
  for (const dq of bools) specs.push(doraNf4Spec(dq));
  return specs;
}

/** Floats between the blocks [n | c | c − 1] of a layer's scales buffer: `out` rounded up to 64 (256 bytes, the
 *  storage offset alignment), so each block binds as its own range. */
export function doraScalesStride(out: number): number {
  return Math.ceil(out / 64) * 64;
}

/** A block of a scales buffer as a binding: n (0), c (1) or c − 1 (2). */
export function doraScalesBlock(scales: GPUBuffer, out: number, block: 0 | 1 | 2): GPUBufferBinding {
  return { buffer: scales, offset: block * doraScalesStride(out) * 4, size: out * 4 };
}

function checkPositive(label: string, values: Record<string, number>): void {
  for (const [k, v] of Object.entries(values)) if (!(Number.isInteger(v) && v > 0)) throw new KernelError(`${label}: ${k} = ${v} must be a positive integer`);
}

function normParams(s: DoraNormShape, dqOffset = 0): ArrayBuffer {
  checkPositive('dora.weight_norm', { out: s.out, in: s.in, r: s.r });
  if (!Number.isFinite(s.scale)) throw new KernelError(`dora.weight_norm: scale ${s.scale} is not finite`);
  return packParams([
    ['u32', s.out],
    ['u32', s.in],
    ['u32', s.r],
    ['u32', doraScalesStride(s.out)],
    ['f32', s.scale],
    ['f32', dqOffset],
    ['u32', 0],
    ['u32', 0],
  ]);
}

/** One workgroup per output row, folded into 2-D above 65535 rows. */
function rowWorkgroups(out: number, fold: FoldOptions) {
  return foldWorkgroups(out, fold.maxWorkgroupsPerDim);
}

function rowGroups(label: string, n: number): [number, number, number] {
  const groups = Math.ceil(n / 64);
  if (groups > 65535) throw new KernelError(`${label}: ${n} rows need ${groups} workgroups, above 65535`);
  return [groups, 1, 1];
}

/** scales (3·doraScalesStride(out) f32) = [n | c | c − 1] with n = ‖W + s·B·A‖ per output row, c = m / n. */
export function recordDoraWeightNorm(
  rec: Recorder,
  s: DoraNormShape,
  b: { W: { kind: 'dense'; buffer: GPUBuffer; elem: ElementType; conv1d: boolean } | { kind: 'nf4'; weight: Nf4Weight }; A: BufferRef; B: BufferRef; m: BufferRef; scales: GPUBuffer },
  fold: FoldOptions = {},
): void {
  const cost = { flops: 2 * s.out * s.in * (s.r + 1), bytes: s.out * s.in * 4 + 4 * s.r * (s.in + s.out) + 16 * s.out };
  if (b.W.kind === 'nf4') {
    const w = b.W.weight;
    if (w.out !== s.out || w.in !== s.in) throw new KernelError(`dora.weight_norm: NF4 weight is [${w.out}, ${w.in}], expected [${s.out}, ${s.in}]`);
    rec.dispatch(doraNf4Spec(w.doubleQuant), [w.codes, w.absmax, w.stats ?? rec.unused, b.A, b.B, b.m, b.scales], normParams(s, w.offset), rowWorkgroups(s.out, fold), cost);
    return;
  }
  rec.dispatch(
    doraSpec({ entry: 'weight_norm', elemW: b.W.elem, conv1d: b.W.conv1d }),
    [b.W.buffer, b.A, b.B, b.m, b.scales],
    normParams(s),
    rowWorkgroups(s.out, fold),
    cost,
  );
}

function matParams(label: string, rows: number, n: number): ArrayBuffer {
  checkPositive(label, { rows, n });
  return packParams([
    ['u32', rows],
    ['u32', n],
    ['u32', 0],
    ['u32', 0],
    ['f32', 0],
    ['u32', 0],
    ['u32', 0],
    ['u32', 0],
  ]);
}

/** y = c ⊙ zl (− z) (+ bias) (+ y when accumulate) over (rows, n) = (T, out). */
export function recordDoraOutput(
  rec: Recorder,
  s: { rows: number; n: number },
  b: { zl: BufferRef; z?: BufferRef; bias?: BufferRef; c: BufferRef; y: BufferRef },
  accumulate: boolean,
  fold: FoldOptions = {},
): void {
  const count = s.rows * s.n;
  rec.dispatch(
    doraSpec({ entry: 'output', hasBias: !!b.bias, subBase: !!b.z, accumulate }),
    [b.bias ?? rec.unused, b.zl, b.z ?? rec.unused, b.c, b.y],
    matParams('dora.output', s.rows, s.n),
    foldWorkgroups(Math.ceil(count / 64), fold.maxWorkgroupsPerDim),
    { flops: 3 * count, bytes: count * 4 * (2 + (b.z ? 1 : 0) + (accumulate ? 1 : 0)) + 8 * s.n },
  );
}

/** dm = Σ_rows dy ⊙ zl / n per column (+ dm when accumulate). */
export function recordDoraMagnitudeGrad(
  rec: Recorder,
  s: { rows: number; n: number },
  b: { dy: BufferRef; zl: BufferRef; norm: BufferRef; dm: BufferRef },
  accumulate: boolean,
): void {
  rec.dispatch(
    doraSpec({ entry: 'magnitude_grad', accumulate }),
    [b.dy, b.zl, b.norm, rec.unused, b.dm],
    matParams('dora.magnitude_grad', s.rows, s.n),
    rowGroups('dora.magnitude_grad', s.n),
    { flops: 2 * s.rows * s.n, bytes: 8 * s.rows * s.n + 8 * s.n },
  );
}
