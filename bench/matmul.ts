// Table 1: matmul GFLOP/s at model shapes, each of our variants (f32 weights, and f16 weights where the adapter has
// shader-f16) against TensorFlow.js WebGPU on the same adapter; each of our f32 results is also compared with the
// peer's product, so a fast wrong kernel cannot hide.
import { readF32, uploadBuffer, writeBuffer } from '../src/gpu/buffers.ts';
import { MATMUL_VARIANTS, recordMatmul, type MatmulVariant } from '../src/gpu/kernels/matmul.ts';
import { toF16Array } from '../src/gpu/ref/elementwise.ref.ts';
import { randomArray } from '../src/gpu/ref/testing.ts';
import type { ElementType } from '../src/gpu/wgsl.ts';
import { matmulKey, type BenchContext, type SectionResult } from './context.ts';
import { linearPlan, type LinearCase } from './lib/plan.ts';
import { formatMs, formatNumber, formatRatio, formatSci, formatShape, gflops, matmulFlops, maxRelDiff, ratio } from './lib/stats.ts';
import type { Measurement } from './timing.ts';

/** Inputs of one linear case: x (M, K) and W [N, K], scaled like an initialised layer so f16 cannot overflow. */
export function linearInputs(c: LinearCase): { x: Float32Array; w: Float32Array } {
  return { x: randomArray(c.M * c.K, 1), w: randomArray(c.N * c.K, 2, 1 / Math.sqrt(c.K)) };
}

export interface LinearBuffers {
  x: GPUBuffer;
  w32: GPUBuffer;
  /** Null without shader-f16. */
  w16: GPUBuffer | null;
  y: GPUBuffer;
  release(): void;
}

export function uploadLinear(ctx: BenchContext, c: LinearCase, x: Float32Array, w: Float32Array): LinearBuffers {
  const { e } = ctx;
  const buffers = {
    x: uploadBuffer(e.buffers, e.device, x, 'bench.x'),
    w32: uploadBuffer(e.buffers, e.device, w, 'bench.w32'),
    w16: e.gpu.hasF16 ? uploadBuffer(e.buffers, e.device, toF16Array(w), 'bench.w16') : null,
    y: e.buffers.acquire(c.M * c.N * 4, undefined, 'bench.y'),
  };
  return {
    ...buffers,
    release() {
      for (const b of [buffers.x, buffers.w32, buffers.w16, buffers.y]) if (b) e.buffers.release(b);
      e.buffers.trim();
    },
  };
}

/** Fills `buffer` with zeros, so that an output compared after a run is that run's and not a leftover. */
export function zeroBuffer(ctx: BenchContext, buffer: GPUBuffer, floats: number): void {
  writeBuffer(ctx.e.device, buffer, new Float32Array(floats));
}

/** Times y = x·Wᵀ with one of our variants (cached per shape, variant and weight type). */
export async function measureMatmul(ctx: BenchContext, c: LinearCase, b: LinearBuffers, variant: MatmulVariant, elemW: ElementType): Promise<Measurement> {
  const key = matmulKey(c.M, c.K, c.N, variant, elemW);
  const cached = ctx.matmulTimes.get(key);
  if (cached) return cached;
  const W = elemW === 'f16' ? b.w16 : b.w32;
  if (!W) throw new Error('measureMatmul: f16 weights need shader-f16');
  ctx.log(`  matmul ${variant} ${elemW} ${formatShape(c.M, c.K, c.N)}`);
  zeroBuffer(ctx, b.y, c.M * c.N);
  const m = await ctx.timer.measure(`matmul.${variant}`, (rec) => recordMatmul(rec, { M: c.M, N: c.N, K: c.K, transB: true }, { A: b.x, B: W, C: b.y }, { variant, elemB: elemW }), ctx.timing);
  ctx.matmulTimes.set(key, m);
  return m;
}

interface MatmulRow {
  shape: string;
  name: string;
  M: number;
  K: number;
  N: number;
  kernel: string;
  weights: string;
  ms: number;
  gflops: number;
  clock: string;
  vsTfjs: number | null;
  percentOfPeak: number | null;
  /** max |ours − tfjs| / max |tfjs|; null for the peer's own row or when it did not run. */
  relDiffVsTfjs: number | null;
}

export async function runMatmul(ctx: BenchContext): Promise<SectionResult> {
  const plan = linearPlan(ctx.options.quick, ctx.e.gpu.adapter.isCpu);
  const rows: MatmulRow[] = [];
  const peer = 'error' in ctx.tfjs ? null : ctx.tfjs;
  const peak = ctx.options.peakGflops ?? null;
  for (const c of plan.cases) {
    const flops = matmulFlops(c.M, c.N, c.K);
    const shape = formatShape(c.M, c.K, c.N);
    const { x, w } = linearInputs(c);
    let peerOutput: Float32Array | null = null;
    let peerGflops: number | null = null;
    if (peer) {
      ctx.log(`  tfjs ${shape}`);
      const m = await peer.matmul(x, w, c.M, c.N, c.K, ctx.timing);
      peerOutput = m.output;
      peerGflops = gflops(flops, m.ms);
      rows.push({ shape, name: c.name, M: c.M, K: c.K, N: c.N, kernel: `TF.js ${peer.version}`, weights: 'f32', ms: m.ms, gflops: peerGflops, clock: m.clock, vsTfjs: 1, percentOfPeak: peak && (100 * peerGflops) / peak, relDiffVsTfjs: null });
    }
    const b = uploadLinear(ctx, c, x, w);
    try {
      for (const elemW of ctx.e.gpu.hasF16 ? (['f32', 'f16'] as const) : (['f32'] as const)) {
        for (const variant of MATMUL_VARIANTS) {
          const m = await measureMatmul(ctx, c, b, variant, elemW);
          const g = gflops(flops, m.ms);
          // The product is checked against the peer's once per variant (f16 weights differ by their rounding).
          const relDiff = peerOutput ? maxRelDiff(await readF32(ctx.e.device, b.y, c.M * c.N), peerOutput) : null;
          if (!ctx.bestMatmul || g > ctx.bestMatmul.gflops) ctx.bestMatmul = { gflops: g, label: `${variant} ${elemW} at ${shape}` };
          rows.push({ shape, name: c.name, M: c.M, K: c.K, N: c.N, kernel: `ours ${variant}`, weights: elemW, ms: m.ms, gflops: g, clock: m.clock, vsTfjs: ratio(g, peerGflops), percentOfPeak: peak && (100 * g) / peak, relDiffVsTfjs: relDiff });
        }
      }
    } finally {
      b.release();
    }
  }
  const notes = [
    `y (M, N) = x (M, K) · Wᵀ, W stored [N, K] as nn.Linear does; shape column is M×K×N; GFLOP/s = 2·M·N·K / time.`,
    `time: median of ${ctx.timing.reps} submissions after ${ctx.timing.warmup} warm-up, each awaited with onSubmittedWorkDone; clock: ${ctx.timer.clock}${peer ? ` (ours), ${peer.clock} (TF.js)` : ''}.`,
    `×TF.js: our GFLOP/s over TensorFlow.js WebGPU's at the same shape, same adapter, same process (f32 activations in both; f16 rows use f16 weights).`,
    `Δ vs TF.js: max |ours − TF.js| / max |TF.js| over the output (f16 rows include the weights' f16 rounding).`,
    ...(peer ? [] : [`TF.js peer unavailable: ${(ctx.tfjs as { error: string }).error}`]),
    ...(ctx.e.gpu.hasF16 ? [] : ['no f16 rows: this adapter has no shader-f16.']),
    ...plan.skipped,
  ];
  const columns = [
    { header: 'model shape' },
    { header: 'M×K×N' },
    { header: 'kernel' },
    { header: 'W' },
    { header: 'time', align: 'right' as const },
    { header: 'GFLOP/s', align: 'right' as const },
    { header: '×TF.js', align: 'right' as const },
    ...(peak ? [{ header: '% of peak', align: 'right' as const }] : []),
    { header: 'Δ vs TF.js', align: 'right' as const },
  ];
  return {
    table: {
      title: '1. matmul at model shapes',
      columns,
      rows: rows.map((r) => [r.name, r.shape, r.kernel, r.weights, formatMs(r.ms), formatNumber(r.gflops), formatRatio(r.vsTfjs), ...(peak ? [formatNumber(r.percentOfPeak) + '%'] : []), formatSci(r.relDiffVsTfjs)]),
      notes,
    },
    data: { rows, skipped: plan.skipped, clock: ctx.timer.clock, tfjs: peer ? { version: peer.version, clock: peer.clock, adapter: peer.adapter } : ctx.tfjs },
  };
}
