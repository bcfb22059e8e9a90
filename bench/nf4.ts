// Table 3: NF4 weights against f16 and f32 weights, forward y = x·Wᵀ at model shapes: time ratio and weight-memory
// ratio. NF4 is quantized on the CPU exactly as bitsandbytes does (with double quantization, QLoRA's default) and
// decoded inside the matmul's loads. The f32/f16 times are the matmul table's (same shapes, same inputs).
import { readF32 } from '../src/gpu/buffers.ts';
import { MATMUL_NF4_VARIANTS, nf4DequantBytes, recordMatmulNf4, type MatmulNf4Variant } from '../src/gpu/kernels/matmul_nf4.ts';
import { MATMUL_VARIANTS, recordMatmul, type MatmulVariant } from '../src/gpu/kernels/matmul.ts';
import { quantizeAndUploadNf4, releaseNf4, type Nf4Weight } from '../src/gpu/kernels/nf4.ts';
import type { BenchContext, SectionResult } from './context.ts';
import { linearPlan, type LinearCase } from './lib/plan.ts';
import { formatBytes, formatMs, formatRatio, formatSci, formatShape, maxRelDiff, ratio } from './lib/stats.ts';
import { linearInputs, measureMatmul, uploadLinear, zeroBuffer } from './matmul.ts';
import type { Measurement } from './timing.ts';

interface Nf4Row {
  name: string;
  M: number;
  K: number;
  N: number;
  /** The matmul variant name, or "best" for the fastest of each kind. */
  variant: string;
  f32Ms: number | null;
  f16Ms: number | null;
  nf4Ms: number | null;
  nf4OverF16: number | null;
  nf4OverF32: number | null;
  f32Bytes: number;
  f16Bytes: number;
  nf4Bytes: number;
  f16OverNf4Bytes: number | null;
  f32OverNf4Bytes: number | null;
  /** max |y_nf4 − y_f32| / max |y_f32|: the quantization error the speed buys. */
  relDiffVsF32: number | null;
}

const bestOf = (ms: (number | null)[]) => {
  const xs = ms.filter((m): m is number => m != null);
  return xs.length ? Math.min(...xs) : null;
};

export async function runNf4(ctx: BenchContext): Promise<SectionResult> {
  const plan = linearPlan(ctx.options.quick, ctx.e.gpu.adapter.isCpu);
  const rows: Nf4Row[] = [];
  for (const c of plan.cases) rows.push(...(await runCase(ctx, c)));
  const f16 = ctx.e.gpu.hasF16;
  return {
    table: {
      title: '3. NF4 weights against f16 and f32 weights (forward x·Wᵀ)',
      columns: [
        { header: 'model shape' },
        { header: 'M×K×N' },
        { header: 'variant' },
        { header: 'f32 W', align: 'right' },
        { header: 'f16 W', align: 'right' },
        { header: 'NF4 W', align: 'right' },
        { header: 'time NF4/f16', align: 'right' },
        { header: 'time NF4/f32', align: 'right' },
        { header: 'bytes f32 / f16 / NF4' },
        { header: 'memory f16/NF4', align: 'right' },
        { header: 'Δ NF4 vs f32', align: 'right' },
      ],
      rows: rows.map((r) => [
        r.name,
        formatShape(r.M, r.K, r.N),
        r.variant,
        formatMs(r.f32Ms),
        formatMs(r.f16Ms),
        formatMs(r.nf4Ms),
        formatRatio(r.nf4OverF16),
        formatRatio(r.nf4OverF32),
        `${formatBytes(r.f32Bytes)} / ${formatBytes(r.f16Bytes)} / ${formatBytes(r.nf4Bytes)}`,
        formatRatio(r.f16OverNf4Bytes),
        formatSci(r.relDiffVsF32),
      ]),
      notes: [
        'NF4: bitsandbytes-exact blocks of 64 with double quantization (u8 absmax per block, f32 per 256 blocks), decoded in the loads (naive, tiled, blocked: blocked decodes each weight tile once per 64 rows) or whole before the product (dequant); f32/f16 matmul also blocked4.',
        '"dequant → blocked4": the whole weight decoded into an f32 scratch, then the f32 blocked4 product (the dequant route, timed together; the runtime takes it from 256 rows when the tuner picks it).',
        '"best" compares the fastest variant of each weight type. time NF4/f16 < 1.3× and memory f16/NF4 ≥ 3.5× are the issue\'s targets on a real GPU.',
        'bytes: the GPU buffers holding W (NF4: codes + absmax + double-quant statistics).',
        `time: median of ${ctx.timing.reps} submissions after ${ctx.timing.warmup} warm-up; clock: ${ctx.timer.clock}.`,
        ...(f16 ? [] : ['no f16 column: this adapter has no shader-f16.']),
        ...plan.skipped,
      ],
    },
    data: { rows, skipped: plan.skipped, clock: ctx.timer.clock },
  };
}

async function runCase(ctx: BenchContext, c: LinearCase): Promise<Nf4Row[]> {
  const { e } = ctx;
  const { x, w } = linearInputs(c);
  const b = uploadLinear(ctx, c, x, w);
  ctx.log(`  nf4 quantizing ${c.N}×${c.K} on the CPU`);
  let q: Nf4Weight | null = null;
  try {
    q = quantizeAndUploadNf4(e, w, c.N, c.K, { doubleQuant: true }, 'bench.nf4');
    const nf4 = q;
    const f32Bytes = c.N * c.K * 4;
    const f16Bytes = c.N * c.K * 2;
    const times = new Map<string, Measurement>();
    const timeF = async (variant: MatmulVariant, elem: 'f32' | 'f16') => {
      if (elem === 'f16' && !b.w16) return null;
      return (await measureMatmul(ctx, c, b, variant, elem)).ms;
    };
    // The f32 product, the reference for the quantization error.
    zeroBuffer(ctx, b.y, c.M * c.N);
    const rec = e.record('nf4.reference');
    recordMatmul(rec, { M: c.M, N: c.N, K: c.K, transB: true }, { A: b.x, B: b.w32, C: b.y }, { variant: 'naive' });
    await rec.submit();
    const f32Ref = await readF32(e.device, b.y, c.M * c.N);
    let relDiff: number | null = null;
    // The dequant route decodes into a scratch and runs the product on blocked4 (the dense pick on GPUs); timed whole.
    const scratch = e.buffers.acquire(nf4DequantBytes(nf4), undefined, 'bench.nf4.weight');
    try {
      for (const variant of MATMUL_NF4_VARIANTS) {
        ctx.log(`  matmul_nf4 ${variant} ${formatShape(c.M, c.K, c.N)}`);
        zeroBuffer(ctx, b.y, c.M * c.N);
        const dequant = variant === 'dequant' ? { scratch, matmul: 'blocked4' as const } : undefined;
        const m = await ctx.timer.measure(
          `matmul_nf4.${variant}`,
          (rec) => recordMatmulNf4(rec, { M: c.M, transB: true }, { A: b.x, W: nf4, C: b.y }, { variant, dequant }),
          ctx.timing,
        );
        times.set(variant, m);
        relDiff = Math.max(relDiff ?? 0, maxRelDiff(await readF32(e.device, b.y, c.M * c.N), f32Ref));
      }
    } finally {
      e.buffers.release(scratch);
    }
    const row = (variant: string, f32Ms: number | null, f16Ms: number | null, nf4Ms: number | null): Nf4Row => ({
      name: c.name,
      M: c.M,
      K: c.K,
      N: c.N,
      variant,
      f32Ms,
      f16Ms,
      nf4Ms,
      nf4OverF16: ratio(nf4Ms, f16Ms),
      nf4OverF32: ratio(nf4Ms, f32Ms),
      f32Bytes,
      f16Bytes,
      nf4Bytes: nf4.bytes,
      f16OverNf4Bytes: ratio(f16Bytes, nf4.bytes),
      f32OverNf4Bytes: ratio(f32Bytes, nf4.bytes),
      relDiffVsF32: relDiff,
    });
    const rows: Nf4Row[] = [];
    const all = { f32: [] as (number | null)[], f16: [] as (number | null)[], nf4: [] as (number | null)[] };
    for (const variant of MATMUL_VARIANTS) {
      const f32Ms = await timeF(variant, 'f32');
      const f16Ms = await timeF(variant, 'f16');
      const nf4Ms = (MATMUL_NF4_VARIANTS as readonly string[]).includes(variant) ? times.get(variant as MatmulNf4Variant)!.ms : null;
      all.f32.push(f32Ms);
      all.f16.push(f16Ms);
      all.nf4.push(nf4Ms);
      rows.push(row(variant, f32Ms, f16Ms, nf4Ms));
    }
    const dequantMs = times.get('dequant')!.ms;
    all.nf4.push(dequantMs);
    rows.push(row('dequant → blocked4', null, null, dequantMs));
    rows.push(row('best', bestOf(all.f32), bestOf(all.f16), bestOf(all.nf4)));
    return rows;
  } finally {
    if (q) releaseNf4(e, q);
    b.release();
  }
}
