// Attention, forward + backward in one submission: the row-per-thread kernel the runtime has used (attention.ts)
// against the FlashAttention-2-style one (flash-attention.ts), on the same packed batch (4 rows of 512 tokens at
// GPT-2-small's and Qwen2.5-0.5B's head shapes; tiny with --quick), interleaved so load changes hit both alike.
// Their outputs (O and dQ) are compared, so the speed-up is for the same result.
import { readF32, uploadBuffer } from '../src/gpu/buffers.ts';
import { attentionStatsBytes, recordAttentionBackwardRowwise, recordAttentionForwardRowwise } from '../src/gpu/kernels/attention.ts';
import { flashAttentionStatsBytes, recordFlashAttentionBackward, recordFlashAttentionForward } from '../src/gpu/kernels/flash-attention.ts';
import type { AttentionShape } from '../src/gpu/ref/attention.ref.ts';
import { randomArray } from '../src/gpu/ref/testing.ts';
import type { Recorder } from '../src/gpu/kernel.ts';
import type { BenchContext, SectionResult } from './context.ts';
import { formatMs, formatRatio, formatSci, maxRelDiff } from './lib/stats.ts';

interface AttentionCase {
  name: string;
  rows: number;
  rowLength: number;
  Hq: number;
  Hkv: number;
  D: number;
}

function cases(quick: boolean): AttentionCase[] {
  if (quick) return [{ name: 'tiny GQA', rows: 2, rowLength: 40, Hq: 4, Hkv: 2, D: 16 }];
  return [
    { name: 'GPT-2 small', rows: 4, rowLength: 512, Hq: 12, Hkv: 12, D: 64 },
    { name: 'Qwen2.5-0.5B', rows: 4, rowLength: 512, Hq: 14, Hkv: 2, D: 64 },
  ];
}

/** Causal FLOPs of forward + backward: QKᵀ and PV forward, and four products backward, over the visible half. */
function attentionFlops(c: AttentionCase): number {
  const pairs = c.rows * ((c.rowLength * (c.rowLength + 1)) / 2);
  return 2 * c.D * pairs * c.Hq * 6;
}

export async function runAttention(ctx: BenchContext): Promise<SectionResult> {
  const { e } = ctx;
  const rows: string[][] = [];
  const data: unknown[] = [];
  for (const c of cases(ctx.options.quick)) {
    const T = c.rows * c.rowLength;
    const shape: AttentionShape = { T, Hq: c.Hq, Hkv: c.Hkv, D: c.D };
    const q = T * c.Hq * c.D;
    const kv = T * c.Hkv * c.D;
    const up = (n: number, seed: number) => uploadBuffer(e.buffers, e.device, randomArray(n, seed), 'bench.attn');
    const seg = uploadBuffer(e.buffers, e.device, Uint32Array.from({ length: T }, (_, t) => Math.floor(t / c.rowLength)), 'bench.seg');
    const inputs = { Q: up(q, 1), K: up(kv, 2), V: up(kv, 3), seg, dO: up(q, 4) };
    const outputs = (statsBytes: number) => ({
      O: e.buffers.acquire(q * 4),
      L: e.buffers.acquire(T * c.Hq * 4),
      stats: e.buffers.acquire(statsBytes),
      dQ: e.buffers.acquire(q * 4),
      dK: e.buffers.acquire(kv * 4),
      dV: e.buffers.acquire(kv * 4),
    });
    const rowOut = outputs(attentionStatsBytes(shape));
    const flashOut = outputs(flashAttentionStatsBytes(shape));
    const rowWork = (rec: Recorder) => {
      recordAttentionForwardRowwise(rec, shape, { ...inputs, ...rowOut });
      recordAttentionBackwardRowwise(rec, shape, { ...inputs, ...rowOut });
    };
    const flashWork = (rec: Recorder) => {
      recordFlashAttentionForward(rec, shape, { ...inputs, ...flashOut });
      recordFlashAttentionBackward(rec, shape, { ...inputs, ...flashOut });
    };
    ctx.log(`attention ${c.name}`);
    const [rowMs, flashMs] = await ctx.timer.measureInterleaved(
      [
        { label: `attention.rows ${c.name}`, record: rowWork },
        { label: `attention.flash ${c.name}`, record: flashWork },
      ],
      ctx.timing,
    );
    const diffO = maxRelDiff(await readF32(e.device, rowOut.O, q), await readF32(e.device, flashOut.O, q));
    const diffDQ = maxRelDiff(await readF32(e.device, rowOut.dQ, q), await readF32(e.device, flashOut.dQ, q));
    const flops = attentionFlops(c);
    rows.push([
      c.name,
      `${c.rows}×${c.rowLength}, ${c.Hq}/${c.Hkv}×${c.D}`,
      formatMs(rowMs.ms),
      formatMs(flashMs.ms),
      formatRatio(rowMs.ms / flashMs.ms),
      (flops / flashMs.ms / 1e9).toFixed(1),
      formatSci(Math.max(diffO, diffDQ)),
    ]);
    data.push({ ...c, T, rowMs: rowMs.ms, flashMs: flashMs.ms, speedup: rowMs.ms / flashMs.ms, flashTflops: flops / flashMs.ms / 1e9, diffO, diffDQ });
    for (const b of [...Object.values(inputs), ...Object.values(rowOut), ...Object.values(flashOut)]) e.buffers.release(b);
  }
  return {
    table: {
      title: 'Attention forward + backward: row per thread vs FlashAttention-2 style',
      columns: [
        { header: 'shape' },
        { header: 'rows×len, Hq/Hkv×D' },
        { header: 'row kernel', align: 'right' },
        { header: 'flash', align: 'right' },
        { header: 'speed-up', align: 'right' },
        { header: 'flash TFLOP/s', align: 'right' },
        { header: 'max rel Δ (O, dQ)', align: 'right' },
      ],
      rows,
      notes: [`clock: ${ctx.timer.clock}; FLOPs: 12·D·Hq per visible (query, key) pair (forward 2 products, backward 4).`],
    },
    data,
  };
}
