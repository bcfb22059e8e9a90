// Which matmul variants this adapter gets, per kernel family (dense matmul, NF4 matmul): measured once per adapter
// at model-like shapes and cached, or forced by a setting (LORA_STUDIO_MATMUL in Node). All variants of a family
// give the same bits (same k order), so the choice changes speed only, never a run's numbers. CPU drivers pay heavily
// for workgroup barriers and pick `naive`; real GPUs pick a blocked one. A variant chosen here that does not apply to
// some shape (blocked4 needs multiples of 4, see matmulVariantApplies) runs as `blocked` there.
//
// How a variant is timed (timeRepeated): the product is dispatched many times in one submission, so the timed work
// is long next to the clock's resolution and the submission's latency. With timestamp-query the time is the GPU's
// (first dispatch's begin → last one's end, through the StepProfiler), with ≥ MIN_TIMED_MS of work per sample: 20
// ticks of the 65.536 µs to which a browser rounds timestamps (Node turns the rounding off, see node.ts). Without
// timestamps it is wall time around submit and completion, with ≥ MIN_WALL_MS of work per sample. The median of
// a few samples, divided by the repetitions, is the variant's time for one product.
//
// The cache key carries TUNING_VERSION: a choice made by an older, wrong measurement (v1 timed one 512³ product by
// wall clock and chose `tiled` on an H200) is not reused.
import type { Engine } from '../engine.ts';
import type { Recorder } from '../kernel.ts';
import { StepProfiler } from '../profiler.ts';
import { MATMUL_VARIANTS, matmulVariantApplies, recordMatmul, type MatmulVariant } from './matmul.ts';
import { MATMUL_NF4_VARIANTS, nf4DequantBytes, recordMatmulNf4, type MatmulNf4Variant } from './matmul_nf4.ts';
import type { Nf4Weight } from './nf4.ts';

/** Where a choice is remembered between sessions (IndexedDB in the browser, a JSON file in Node). */
export interface TuningCache {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

/** Bumped whenever how variants are measured, or which are measured, changes, so every cached choice is measured
 *  again (v3: NF4 gained the dequant route, which a v2 choice never competed against). */
export const TUNING_VERSION = 3;

export type KernelFamily = 'matmul' | 'matmul_nf4';

/** The cache key of a family's choice on an adapter, e.g. `matmul-variant:v3:nvidia:hopper:…`. */
export function tuningKey(family: KernelFamily, adapter: Engine['gpu']['adapter']): string {
  const name = family === 'matmul' ? 'matmul-variant' : 'matmul-nf4-variant';
  return `${name}:v${TUNING_VERSION}:${adapter.vendor}:${adapter.architecture}:${adapter.device}:${adapter.description}`;
}

export function isMatmulVariant(v: unknown): v is MatmulVariant {
  return typeof v === 'string' && (MATMUL_VARIANTS as readonly string[]).includes(v);
}

export function isMatmulNf4Variant(v: unknown): v is MatmulNf4Variant {
  return typeof v === 'string' && (MATMUL_NF4_VARIANTS as readonly string[]).includes(v);
}

/** One product timed: (M, K) times the (N, K) weight, transposed as nn.Linear's forward (transB) or not (dx). */
export interface TuneShape {
  M: number;
  N: number;
  K: number;
  transB: boolean;
}

/** The shapes a family is timed at: a transformer layer's products at 512 tokens on a GPU (GPT-2 small's attention
 *  projection, MLP up and down, and the down projection's input gradient); on a CPU adapter (correctness only: its
 *  choice matters little, and compiling each variant costs it a second) two tiny forward products. Every size is a
 *  multiple of 4, so blocked4 runs itself. */
export function tuningShapes(isCpu: boolean): TuneShape[] {
  if (isCpu) {
    return [
      { M: 32, N: 64, K: 64, transB: true },
      { M: 32, N: 128, K: 64, transB: true },
    ];
  }
  const [M, C, F] = [512, 768, 3072];
  return [
    { M, N: C, K: C, transB: true },
    { M, N: F, K: C, transB: true },
    { M, N: C, K: F, transB: true },
    { M, N: F, K: C, transB: false },
  ];
}

/** Milliseconds of one product of `variant` at `shape` (a fake one in unit tests). */
export type VariantTimer<V extends string> = (variant: V, shape: TuneShape) => Promise<number>;

export type ClockSource = 'timestamp-query' | 'wall';

export interface Choice<V extends string> {
  variant: V;
  source: 'override' | 'cache' | 'measured' | 'derived' | 'cpu';
  /** When measured: Σ over the tuning shapes of one product's milliseconds, per variant. */
  timingsMs?: Partial<Record<V, number>>;
  clock?: ClockSource;
}

export type MatmulChoice = Choice<MatmulVariant>;
export type MatmulNf4Choice = Choice<MatmulNf4Variant>;

/** The variant with the least total time over the shapes (the earlier one in `variants` on a tie). */
export async function pickFastest<V extends string>(
  variants: readonly V[],
  shapes: readonly TuneShape[],
  timer: VariantTimer<V>,
): Promise<{ variant: V; timingsMs: Partial<Record<V, number>> }> {
  const timingsMs: Partial<Record<V, number>> = {};
  for (const v of variants) {
    let total = 0;
    for (const s of shapes) total += await timer(v, s);
    timingsMs[v] = total;
  }
  const variant = variants.reduce((best, v) => (timingsMs[v]! < timingsMs[best]! ? v : best));
  return { variant, timingsMs };
}

// ---------------------------------------------------------------------------------------------------------------
// timing on the GPU

/** GPU work per timed sample with timestamps: 20 ticks of a browser's 65.536 µs timestamp rounding. */
export const MIN_TIMED_MS = 20 * 0.065536;
/** Wall time per sample without timestamps: long next to a submission's latency (~1 ms on a real GPU; a CPU
 *  adapter's is far below its kernels' times, so it gets MIN_WALL_MS_CPU). */
export const MIN_WALL_MS = 25;
export const MIN_WALL_MS_CPU = 5;

export interface RepeatOptions {
  /** Use GPU timestamps (default: when the adapter has timestamp-query). */
  timestamps?: boolean;
  /** Work per sample (default MIN_TIMED_MS with timestamps, MIN_WALL_MS or MIN_WALL_MS_CPU without). */
  minMs?: number;
  /** Samples whose median is taken (default 3). */
  samples?: number;
  /** At most this many repetitions per sample (default 512; at most 2048 dispatches are timed per sample). */
  maxReps?: number;
}

/**
 * Milliseconds of one `record` (which records one repetition of the work, e.g. one dispatch): repeated in one
 * submission until a sample is at least `minMs`, the median of `samples` such submissions divided by the
 * repetitions. The first submission (pipeline compilation) is not timed.
 */
export async function timeRepeated(
  e: Engine,
  record: (rec: Recorder) => void,
  options: RepeatOptions = {},
): Promise<{ ms: number; reps: number; clock: ClockSource }> {
  const timestamps = options.timestamps ?? e.gpu.features.has('timestamp-query');
  const clock: ClockSource = timestamps ? 'timestamp-query' : 'wall';
  const minMs = options.minMs ?? (timestamps ? MIN_TIMED_MS : e.gpu.adapter.isCpu ? MIN_WALL_MS_CPU : MIN_WALL_MS);
  const maxReps = options.maxReps ?? 512;
  const profiler = timestamps ? new StepProfiler(e, { timestamps: true, maxDispatches: 2048, gc: false }) : null;
  /** Total milliseconds of `reps` repetitions in one submission. */
  const sample = async (reps: number): Promise<number> => {
    if (profiler) {
      profiler.begin(0);
      const rec = e.record('tune', { timing: profiler.timing });
      for (let i = 0; i < reps; i++) record(rec);
      await rec.submit();
      const p = await profiler.end();
      if (p.untimed > 0) throw new Error(`timeRepeated: ${p.untimed} of ${p.dispatches} dispatches untimed`);
      return p.span_ms ?? 0;
    }
    const rec = e.record('tune');
    for (let i = 0; i < reps; i++) record(rec);
    await e.pipelines.ready(); // compile errors and compilation stay outside the timed span
    const t0 = performance.now();
    await rec.submit();
    return performance.now() - t0;
  };
  try {
    await sample(1); // compiles the pipeline
    let reps = 1;
    let ms = await sample(reps);
    while (ms < minMs && reps < maxReps) {
      // Aim a quarter past the target, at least doubling, so one or two rounds get there.
      const next = ms > 0 ? Math.ceil((reps * minMs * 1.25) / ms) : reps * 8;
      reps = Math.min(maxReps, Math.max(reps * 2, next));
      ms = await sample(reps);
    }
    const samples = [ms];
    for (let i = 1; i < (options.samples ?? 3); i++) samples.push(await sample(reps));
    samples.sort((a, b) => a - b);
    return { ms: samples[Math.floor(samples.length / 2)] / reps, reps, clock };
  } finally {
    profiler?.dispose();
  }
}

/** Times one dense variant at `shape`, in milliseconds per product. Refuses a shape the variant would not run
 *  itself, so a time is never another variant's. */
export async function timeMatmulVariant(e: Engine, variant: MatmulVariant, shape: TuneShape, options: RepeatOptions = {}): Promise<number> {
  const s = { M: shape.M, N: shape.N, K: shape.K, transB: shape.transB };
  if (!matmulVariantApplies(variant, s)) {
    throw new RangeError(`timeMatmulVariant: ${variant} does not apply to M=${s.M} N=${s.N} K=${s.K} (see matmulVariantApplies)`);
  }
  const A = e.buffers.acquire(s.M * s.K * 4, undefined, 'tune.A');
  const B = e.buffers.acquire(s.K * s.N * 4, undefined, 'tune.B');
  const C = e.buffers.acquire(s.M * s.N * 4, undefined, 'tune.C');
  try {
    await zeroed(e, [A, B]);
    return (await timeRepeated(e, (rec) => recordMatmul(rec, s, { A, B, C }, { variant }), options)).ms;
  } finally {
    for (const b of [A, B, C]) e.buffers.release(b);
  }
}

/** Times one NF4 variant at `shape` (the weight [N, K] when transB, else [K, N]; zero codes and scales: the time does
 *  not depend on the values), in milliseconds per product. `dequant` is timed whole — the decode and the product on
 *  the dense variant `dense` (the one chosen for this adapter) — at the shape's M, as the runtime would run it there. */
export async function timeMatmulNf4Variant(
  e: Engine,
  variant: MatmulNf4Variant,
  shape: TuneShape,
  options: RepeatOptions = {},
  dense: MatmulVariant = 'blocked4',
): Promise<number> {
  const [out, inDim] = shape.transB ? [shape.N, shape.K] : [shape.K, shape.N];
  const n = out * inDim;
  const codes = e.buffers.acquire(Math.ceil(n / 2), undefined, 'tune.nf4.codes');
  const absmax = e.buffers.acquire(Math.ceil(n / 64) * 4, undefined, 'tune.nf4.absmax');
  const W: Nf4Weight = { out, in: inDim, doubleQuant: false, codes, absmax, stats: null, offset: 0, bytes: codes.size + absmax.size };
  const A = e.buffers.acquire(shape.M * shape.K * 4, undefined, 'tune.A');
  const C = e.buffers.acquire(shape.M * shape.N * 4, undefined, 'tune.C');
  const scratch = variant === 'dequant' ? e.buffers.acquire(nf4DequantBytes(W), undefined, 'tune.nf4.weight') : undefined;
  const dequant = scratch && { scratch, matmul: dense };
  try {
    await zeroed(e, [codes, absmax, A]);
    const record = (rec: Recorder) => recordMatmulNf4(rec, { M: shape.M, transB: shape.transB }, { A, W, C }, { variant, dequant });
    return (await timeRepeated(e, record, options)).ms;
  } finally {
    for (const b of [codes, absmax, A, C, scratch]) if (b) e.buffers.release(b);
  }
}

/** Pooled buffers may hold anything (NaN or denormal bit patterns): zero the inputs so every variant sees the same. */
async function zeroed(e: Engine, buffers: GPUBuffer[]): Promise<void> {
  const rec = e.record('tune.zero');
  for (const b of buffers) rec.clear(b);
  await rec.submit();
}

// ---------------------------------------------------------------------------------------------------------------
// the choices

export interface TuneOptions extends RepeatOptions {
  /** Replaces the GPU measurement (unit tests). */
  timer?: VariantTimer<string>;
  /** Replaces tuningShapes(adapter is CPU). */
  shapes?: TuneShape[];
  /** Measure on a CPU adapter too (tests of the measuring path). By default a CPU adapter gets the first variant of
   *  each family (naive) unmeasured. */
  measureCpu?: boolean;
}

async function choose<V extends string>(
  e: Engine,
  family: KernelFamily,
  variants: readonly V[],
  isVariant: (v: unknown) => v is V,
  measure: (e: Engine, v: V, s: TuneShape, o: RepeatOptions) => Promise<number>,
  cache: TuningCache | undefined,
  override: string | undefined,
  options: TuneOptions,
): Promise<Choice<V>> {
  if (override) {
    if (!isVariant(override)) throw new Error(`${family} variant "${override}" is not one of ${variants.join(', ')}`);
    return { variant: override, source: 'override' };
  }
  // CPU drivers pay so much for workgroup barriers that the barrier-free naive kernels win at every size, and their
  // timings swing with whatever else the machine runs: measured at tiny shapes on a loaded machine, a tiled variant
  // sometimes "won" and then slowed every later run several times over. So they are not measured.
  if (e.gpu.adapter.isCpu && !options.measureCpu && !options.timer) return { variant: variants[0], source: 'cpu' };
  const key = tuningKey(family, e.gpu.adapter);
  const cached = cache?.get(key);
  if (isVariant(cached)) return { variant: cached, source: 'cache' };
  const shapes = options.shapes ?? tuningShapes(e.gpu.adapter.isCpu);
  const timer: VariantTimer<V> = options.timer ?? ((v, s) => measure(e, v, s, options));
  const { variant, timingsMs } = await pickFastest(variants, shapes, timer);
  cache?.set(key, variant);
  const clock: ClockSource | undefined = options.timer ? undefined : (options.timestamps ?? e.gpu.features.has('timestamp-query')) ? 'timestamp-query' : 'wall';
  return { variant, source: 'measured', timingsMs, ...(clock ? { clock } : {}) };
}

/** The dense matmul variant for this engine's adapter: the override if valid, else the cached measurement, else a
 *  fresh one (tuningShapes). */
export function chooseMatmulVariant(e: Engine, cache?: TuningCache, override?: string, options: TuneOptions = {}): Promise<MatmulChoice> {
  return choose(e, 'matmul', MATMUL_VARIANTS, isMatmulVariant, timeMatmulVariant, cache, override, options);
}

/** The NF4 matmul variant (QLoRA's base), chosen the same way at the same shapes; `dense` is the dense variant the
 *  dequant route would run its product on (the adapter's dense choice). */
export function chooseMatmulNf4Variant(
  e: Engine,
  cache?: TuningCache,
  override?: string,
  options: TuneOptions = {},
  dense: MatmulVariant = 'blocked4',
): Promise<MatmulNf4Choice> {
  const measure = (e: Engine, v: MatmulNf4Variant, s: TuneShape, o: RepeatOptions) => timeMatmulNf4Variant(e, v, s, o, dense);
  return choose(e, 'matmul_nf4', MATMUL_NF4_VARIANTS, isMatmulNf4Variant, measure, cache, override, options);
}

/** What NF4 variant goes with a dense one when NF4 is not measured (a forced dense variant; kernelChoiceFor): NF4 has
 *  one register-blocked fused kernel (no vec4 twin: its weight is decoded, not loaded as vec4), so both blocked dense
 *  variants map to it; the dequant route is taken only where measured or forced. */
export function nf4VariantFor(matmul: MatmulVariant): MatmulNf4Variant {
  return matmul === 'blocked' || matmul === 'blocked4' ? 'blocked' : matmul === 'tiled' ? 'tiled' : 'naive';
}

export interface KernelTuning {
  matmul: MatmulChoice;
  nf4: MatmulNf4Choice;
}

/**
 * Both families for this adapter. A forced dense variant (override.matmul) without a forced NF4 one derives NF4 from
 * it (nf4VariantFor: no measurement, as before there was an NF4 tuner), so a forced run never pays for tuning.
 * The runtime's KernelChoice is `{ ...kernelChoiceFor(t.matmul.variant), nf4: t.nf4.variant }`.
 */
export async function tuneKernels(
  e: Engine,
  cache?: TuningCache,
  override: { matmul?: string; nf4?: string } = {},
  options: TuneOptions = {},
): Promise<KernelTuning> {
  const matmul = await chooseMatmulVariant(e, cache, override.matmul, options);
  const nf4: MatmulNf4Choice =
    override.matmul && !override.nf4
      ? { variant: nf4VariantFor(matmul.variant), source: 'derived' }
      : await chooseMatmulNf4Variant(e, cache, override.nf4, options, matmul.variant);
  return { matmul, nf4 };
}
