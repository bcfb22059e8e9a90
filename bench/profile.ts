// Section `profile`: where one training step's time goes. A few steps of LoRA (r16 α32, every linear layer, AdamW,
// clip 1.0) through the real trainer with the StepProfiler (src/gpu/profiler.ts), and the last step's breakdown:
// by kernel family, by op (summed over blocks) and by layer, each with GPU ms, share, TFLOP/s and GB/s from the
// dispatches' stated FLOPs and bytes; the step's counts, idle gaps and CPU phases under the table.
//
// Model: GPT-2 small's shape with random weights (bench/training.ts builds them) at 4 × 512 tokens (--train-shape)
// on a real GPU; the committed tiny GPT-2 fixture at 4 × 32 tokens with --quick or on a CPU driver (unless
// --train-large). Every dispatch runs in a compute pass of its own while profiled, so the profiled step is a little
// slower than a plain one; the unprofiled step time is in the training section.
import { join } from 'node:path';
import type { TokenizedRow } from '../src/data/encode.ts';
import { tuneKernels } from '../src/gpu/kernels/matmul-tuning.ts';
import { formatRate, StepProfiler, type ProfileRow, type StepProfile } from '../src/gpu/profiler.ts';
import { rng } from '../src/gpu/ref/testing.ts';
import { kernelChoiceFor } from '../src/model/runtime/linear.ts';
import { loadTransformer } from '../src/model/runtime/load.ts';
import { nodeFolder } from '../src/model/sources/node-file.ts';
import { DEFAULT_CONFIG } from '../src/train/config.ts';
import { Trainer } from '../src/train/trainer.ts';
import type { BenchContext, SectionResult } from './context.ts';
import type { Table } from './lib/table.ts';
import { randomModelFiles, randomModelJson } from './training.ts';

/** Steps run; the last one's profile is reported (the first compiles pipelines and sizes the workspace). */
const STEPS = 3;
/** Rows shown per breakdown (the rest summed into one row). */
const ROWS = { kernel: 16, op: 24, layer: 16 } as const;

function randomRows(count: number, seqLen: number, vocab: number, seed: number): TokenizedRow[] {
  const next = rng(seed);
  return Array.from({ length: count }, () => {
    const ids = Int32Array.from({ length: seqLen }, () => 1 + Math.floor(next() * (vocab - 1)));
    return { input_ids: ids, labels: ids.slice() };
  });
}

function cells(kind: string, r: ProfileRow): string[] {
  return [
    kind,
    r.name,
    String(r.calls),
    r.ms === null ? '–' : r.ms.toFixed(3),
    r.share === null ? '–' : `${(r.share * 100).toFixed(1)}%`,
    formatRate(r.gflops === null ? null : r.gflops / 1000),
    formatRate(r.gbps),
  ];
}

function rowsOf(kind: string, rows: readonly ProfileRow[], limit: number): string[][] {
  const out = rows.slice(0, limit).map((r) => cells(kind, r));
  const rest = rows.slice(limit);
  if (rest.length) {
    const timed = rest.some((r) => r.ms !== null);
    const ms = rest.reduce((s, r) => s + (r.ms ?? 0), 0);
    const share = rest.reduce((s, r) => s + (r.share ?? 0), 0);
    out.push([kind, `(${rest.length} more)`, String(rest.reduce((s, r) => s + r.calls, 0)), timed ? ms.toFixed(3) : '–', timed ? `${(share * 100).toFixed(1)}%` : '–', '', '']);
  }
  return out;
}

export function profileTable(title: string, p: StepProfile, notes: string[] = []): Table {
  const c = p.cpu;
  const phases = Object.entries(c)
    .filter(([k]) => k.endsWith('_ms') && !['total_ms', 'other_ms', 'gc_ms'].includes(k))
    .map(([k, v]) => `${k.slice(0, -3)} ${(v as number).toFixed(1)} ms`);
  return {
    title,
    columns: [
      { header: 'by' },
      { header: 'name' },
      { header: 'calls', align: 'right' },
      { header: 'GPU ms', align: 'right' },
      { header: 'share', align: 'right' },
      { header: 'TFLOP/s', align: 'right' },
      { header: 'GB/s', align: 'right' },
    ],
    rows: [...rowsOf('kernel', p.kernels, ROWS.kernel), ...rowsOf('op', p.ops, ROWS.op), ...rowsOf('layer', p.layers, ROWS.layer)],
    notes: [
      ...notes,
      `step ${p.step}: ${p.dispatches} dispatches, ${p.passes} passes, ${p.submits} submits, ${p.buffers_created} buffers and ${p.bind_groups_created} bind groups created, ${p.readbacks} read-backs`,
      p.gpu_ms === null
        ? 'GPU time not measured: the adapter has no timestamp-query (counts, calls and the CPU side only).'
        : `GPU: ${p.gpu_ms.toFixed(2)} ms in dispatches; first begin → last end ${p.span_ms!.toFixed(2)} ms; idle gaps between dispatches ${p.idle_ms!.toFixed(2)} ms (copies, clears, barriers, launch)` +
          (p.untimed ? `; ${p.untimed} dispatches untimed (past the query capacity)` : ''),
      `CPU: ${c.total_ms.toFixed(1)} ms (${[...phases, `other ${c.other_ms.toFixed(1)} ms`].join(', ')}); GC ${c.gc_measured ? `${c.gc_ms.toFixed(1)} ms` : 'not measured'}`,
      'TFLOP/s and GB/s from the FLOPs and bytes each dispatch states (src/gpu/kernels/cost.ts: the math and each operand once, not what tiling re-reads); attention as one causal sequence of the row length.',
    ],
  };
}

export async function runProfile(ctx: BenchContext): Promise<SectionResult> {
  const { e, options } = ctx;
  const small = (options.quick || e.gpu.adapter.isCpu) && !options.trainLarge;
  const { batch, seqLen } = small ? { batch: 4, seqLen: 32 } : (options.trainShape ?? { batch: 4, seqLen: 512 });
  const name = small ? 'fixture gpt2 (tiny)' : 'GPT-2 small, random weights';
  const files = small ? nodeFolder(join(process.cwd(), 'tests', 'fixtures', 'models', 'gpt2')) : randomModelFiles(randomModelJson('gpt2-small'), 'gpt2-small');
  const tuning = await tuneKernels(e);
  const kernels = { ...kernelChoiceFor(tuning.matmul.variant), nf4: tuning.nf4.variant };
  ctx.log(`  profile: ${name}, ${batch} × ${seqLen} tokens, matmul ${tuning.matmul.variant} (${tuning.matmul.source})`);
  const tf = await loadTransformer(e, files, kernels, { dtype: 'f32', quant: 'none' });
  const profiler = new StepProfiler(e);
  const trainer = new Trainer({
    engine: e,
    transformer: tf,
    config: {
      ...DEFAULT_CONFIG,
      method: 'lora',
      rank: 16,
      alpha: 32,
      dropout: 0,
      targets: ['all-linear'],
      batchSize: batch,
      gradAccum: 1,
      maxLength: seqLen,
      maxSteps: STEPS,
      warmupRatio: 0,
      warmupSteps: 0,
      schedule: 'constant',
      lr: 1e-4,
      maxGradNorm: 1,
      packing: false,
    },
    train: randomRows(STEPS * batch, seqLen, tf.model.config.vocabSize, 3),
    padId: 0,
    profiler,
  });
  try {
    const profiles: StepProfile[] = [];
    const stepsMs: number[] = [];
    for (let i = 0; i < STEPS; i++) {
      const m = await trainer.trainStep();
      stepsMs.push(m.ms);
      if (m.profile) profiles.push(m.profile);
    }
    const last = profiles.at(-1);
    if (!last) throw new Error('the trainer returned no profile (it was given a StepProfiler)');
    ctx.log(`  profile: steps ${stepsMs.map((s) => s.toFixed(0)).join(', ')} ms (profiled); GPU ${last.gpu_ms === null ? 'not timed' : `${last.gpu_ms.toFixed(1)} ms`}`);
    const kernelsUsed = `matmul ${tuning.matmul.variant}, LoRA route ${kernels.lora}`;
    const table = profileTable(`Profile of one training step: ${name}, LoRA r16 all-linear, ${batch} × ${seqLen} tokens`, last, [
      `Step ${last.step} of ${STEPS} (profiled step wall time ${stepsMs.at(-1)!.toFixed(1)} ms: every dispatch in a pass of its own while profiled); kernels: ${kernelsUsed}.`,
    ]);
    return { table, data: { model: name, batch, seqLen, kernels, stepsMs, profile: last } };
  } finally {
    trainer.dispose();
    profiler.dispose();
  }
}
