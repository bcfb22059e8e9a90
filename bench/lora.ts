// Table 2: what fusion gains. One LoRA linear layer's forward + backward in one submission, with the rank-r term
// riding on the base matmul pass (recordLoraForward/Backward) against the same arithmetic as separate matmuls
// (recordLoraForwardUnfused/BackwardUnfused), at GPT-2's and Qwen2.5-0.5B's layer shapes. Outputs of the two are
// compared, so the gain is for the same result.
import { readF32, uploadBuffer, writeBuffer } from '../src/gpu/buffers.ts';
import { loraScale } from '../src/train/methods/lora-scale.ts';
import {
  LORA_VARIANTS,
  recordLoraBackward,
  recordLoraBackwardUnfused,
  recordLoraForward,
  recordLoraForwardUnfused,
  type LoraBackwardBuffers,
  type LoraForwardBuffers,
} from '../src/gpu/kernels/lora.ts';
import { randomArray } from '../src/gpu/ref/testing.ts';
import type { BenchContext, SectionResult } from './context.ts';
import { loraPlan, type LoraCase } from './lib/plan.ts';
import { formatMs, formatNumber, formatRatio, formatSci, gflops, loraForwardBackwardFlops, maxRelDiff, ratio } from './lib/stats.ts';

interface LoraRow {
  layer: string;
  T: number;
  inFeatures: number;
  outFeatures: number;
  r: number;
  variant: string;
  fusedMs: number;
  unfusedMs: number;
  /** unfused time / fused time: > 1 means fusion is faster. */
  gain: number | null;
  fusedGflops: number;
  /** max relative difference of y and dx between fused and unfused. */
  relDiff: number;
}

export async function runLora(ctx: BenchContext): Promise<SectionResult> {
  const { e } = ctx;
  const rows: LoraRow[] = [];
  for (const c of loraPlan(ctx.options.quick)) rows.push(...(await runCase(ctx, c)));
  return {
    table: {
      title: '2. fused LoRA layer, forward + backward',
      columns: [
        { header: 'layer' },
        { header: 'T×in→out' },
        { header: 'r', align: 'right' },
        { header: 'variant' },
        { header: 'fused', align: 'right' },
        { header: 'unfused', align: 'right' },
        { header: 'gain', align: 'right' },
        { header: 'fused GFLOP/s', align: 'right' },
        { header: 'Δ fused/unfused', align: 'right' },
      ],
      rows: rows.map((r) => [
        r.layer,
        `${r.T}×${r.inFeatures}→${r.outFeatures}`,
        String(r.r),
        r.variant,
        formatMs(r.fusedMs),
        formatMs(r.unfusedMs),
        formatRatio(r.gain),
        formatNumber(r.fusedGflops),
        formatSci(r.relDiff),
      ]),
      notes: [
        'one submission = forward (h = x·Aᵀ; y = x·Wᵀ + b + s·h·Bᵀ) then backward (g = dy·B; dx = dy·W + s·g·A; dA; dB), f32 weights, no dropout, α = 2r.',
        'fused: the rank-r term computed inside the base matmul pass; unfused: the same with separate matmul passes of the same variant name.',
        'gain = unfused time / fused time (> 1: fusion is faster). Δ: max relative difference of y and dx between the two.',
        `time: median of ${ctx.timing.reps} submissions after ${ctx.timing.warmup} warm-up, fused and unfused alternating; clock: ${ctx.timer.clock}.`,
        ...(e.gpu.adapter.isCpu ? ['CPU driver: barriers are expensive here, so the tiled rows say little about a real GPU.'] : []),
      ],
    },
    data: { rows, clock: ctx.timer.clock },
  };
}

async function runCase(ctx: BenchContext, c: LoraCase): Promise<LoraRow[]> {
  const { e } = ctx;
  const { T, inFeatures: I, outFeatures: O, r } = c;
  const shape = { T, inFeatures: I, outFeatures: O, r, conv1d: c.conv1d };
  const up = (data: Float32Array, label: string) => uploadBuffer(e.buffers, e.device, data, label);
  const zeros = (n: number, label: string) => e.buffers.acquire(n * 4, undefined, label);
  const x = up(randomArray(T * I, 11), 'lora.x');
  const W = up(randomArray(O * I, 12, 1 / Math.sqrt(I)), 'lora.W');
  const bias = up(randomArray(O, 13, 0.1), 'lora.bias');
  // B random rather than PEFT's zeros, so the rank-r path contributes to what is compared.
  const A = up(randomArray(r * I, 14, 1 / Math.sqrt(I)), 'lora.A');
  const B = up(randomArray(O * r, 15, 0.1), 'lora.B');
  const dy = up(randomArray(T * O, 16), 'lora.dy');
  const h = zeros(T * r, 'lora.h');
  const y = zeros(T * O, 'lora.y');
  const g = zeros(T * r, 'lora.g');
  const dx = zeros(T * I, 'lora.dx');
  const dA = zeros(r * I, 'lora.dA');
  const dB = zeros(O * r, 'lora.dB');
  const fwd: LoraForwardBuffers = { x, W, bias, A, B, h, y };
  const bwd: LoraBackwardBuffers = { x, W, A, B, h, dy, g, dx, dA, dB };
  const scale = loraScale(2 * r, r);
  const flops = loraForwardBackwardFlops(shape);
  const rows: LoraRow[] = [];
  try {
    for (const variant of LORA_VARIANTS) {
      const label = `${c.name} r=${r} ${variant}`;
      ctx.log(`  lora fused/unfused ${label}`);
      const [fused, unfused] = await ctx.timer.measureInterleaved(
        [
          {
            label: `lora.fused.${variant}`,
            record: (rec) => {
              recordLoraForward(rec, shape, fwd, { variant, scale });
              recordLoraBackward(rec, shape, bwd, { variant, scale });
            },
          },
          {
            label: `lora.unfused.${variant}`,
            record: (rec) => {
              recordLoraForwardUnfused(rec, shape, fwd, { variant, scale });
              recordLoraBackwardUnfused(rec, shape, bwd, { variant, scale });
            },
          },
        ],
        ctx.timing,
      );
      // The last submission was the unfused one: its outputs, then the fused one's, for the cross-check.
      const yUnfused = await readF32(e.device, y, T * O);
      const dxUnfused = await readF32(e.device, dx, T * I);
      writeBuffer(e.device, y, new Float32Array(T * O));
      writeBuffer(e.device, dx, new Float32Array(T * I));
      const rec = e.record('lora.fused.check');
      recordLoraForward(rec, shape, fwd, { variant, scale });
      recordLoraBackward(rec, shape, bwd, { variant, scale });
      await rec.submit();
      const relDiff = Math.max(
        maxRelDiff(await readF32(e.device, y, T * O), yUnfused),
        maxRelDiff(await readF32(e.device, dx, T * I), dxUnfused),
      );
      rows.push({
        layer: c.name,
        T,
        inFeatures: I,
        outFeatures: O,
        r,
        variant,
        fusedMs: fused.ms,
        unfusedMs: unfused.ms,
        gain: ratio(unfused.ms, fused.ms),
        fusedGflops: gflops(flops, fused.ms),
        relDiff,
      });
    }
  } finally {
    for (const b of [x, W, bias, A, B, dy, h, y, g, dx, dA, dB]) e.buffers.release(b);
    e.buffers.trim();
  }
  return rows;
}
