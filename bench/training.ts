// Table 5: training steps through the real trainer (src/train/trainer.ts): tokens/s and model-FLOPs utilisation as a
// fraction of our own best matmul throughput on the same adapter (table 1), a roofline fraction that holds on any
// machine. On the committed tiny fixtures in every mode; on GPT-2-small-sized and Qwen2.5-0.5B-sized random weights
// in full runs on a real GPU. Timed by wall clock around Trainer.trainStep (one submission per step, plus the host's
// batch preparation and the loss read-back: the step time a user sees).
import { join } from 'node:path';
import { chooseMatmulVariant } from '../src/gpu/kernels/matmul-tuning.ts';
import type { TokenizedRow } from '../src/data/encode.ts';
import { kernelChoiceFor } from '../src/model/runtime/linear.ts';
import { loadTransformer } from '../src/model/runtime/load.ts';
import { tinyModel } from '../src/model/runtime/testing-tiny.ts';
import { nodeFolder } from '../src/model/sources/node-file.ts';
import type { ModelFiles } from '../src/model/checkpoint.ts';
import { DEFAULT_CONFIG } from '../src/train/config.ts';
import { Trainer } from '../src/train/trainer.ts';
import { rng } from '../src/gpu/ref/testing.ts';
import type { BenchContext, SectionResult } from './context.ts';
import { trainingPlan, type TrainingCase } from './lib/plan.ts';
import { formatBytes, formatMs, formatNumber, gflops, median, trainingStepFlops } from './lib/stats.ts';
import { readFileSync } from 'node:fs';

const FIXTURES = join(process.cwd(), 'tests', 'fixtures', 'models');
const RANK = 16;

interface TrainingRow {
  name: string;
  tokens: number;
  targets: string;
  matmulVariant: string;
  weights: string;
  stepMs: number;
  tokensPerSecond: number;
  gflops: number;
  /** Achieved model GFLOP/s over our best matmul GFLOP/s of table 1. */
  rooflineFraction: number | null;
  peakBytes: number;
  loss: number;
}

/** config.json for random weights at a real model's dimensions: the fixture's config with the sizes replaced. */
export function randomModelJson(which: 'gpt2-small' | 'qwen2.5-0.5b'): Record<string, unknown> {
  const fixture = (name: string) => JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')) as Record<string, unknown>;
  if (which === 'gpt2-small') return { ...fixture('gpt2'), n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, vocab_size: 50257 };
  const layers = 24;
  return {
    ...fixture('qwen2'),
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: layers,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    max_position_embeddings: 32768,
    vocab_size: 151936,
    layer_types: Array.from({ length: layers }, () => 'full_attention'),
  };
}

/** Random token rows, every position trained: the step's cost does not depend on the text. */
function randomRows(count: number, seqLen: number, vocab: number, seed: number): TokenizedRow[] {
  const next = rng(seed);
  return Array.from({ length: count }, () => {
    const ids = Int32Array.from({ length: seqLen }, () => 1 + Math.floor(next() * (vocab - 1)));
    return { input_ids: ids, labels: ids.slice() };
  });
}

export async function runTraining(ctx: BenchContext): Promise<SectionResult> {
  const { e } = ctx;
  const plan = trainingPlan(ctx.options.quick, e.gpu.adapter.isCpu);
  // The variant the app would choose on this adapter (measured once here, not cached).
  const choice = await chooseMatmulVariant(e);
  const rows: TrainingRow[] = [];
  for (const c of plan.cases) rows.push(await runCase(ctx, c, choice.variant));
  const roofline = ctx.bestMatmul;
  return {
    table: {
      title: '5. training step (LoRA, one optimizer step per submission)',
      columns: [
        { header: 'model' },
        { header: 'tokens/step', align: 'right' },
        { header: 'LoRA targets' },
        { header: 'kernels' },
        { header: 'step', align: 'right' },
        { header: 'tokens/s', align: 'right' },
        { header: 'model GFLOP/s', align: 'right' },
        { header: '% of best matmul', align: 'right' },
        { header: 'pool peak', align: 'right' },
      ],
      rows: rows.map((r) => [
        r.name,
        String(r.tokens),
        r.targets,
        `${r.matmulVariant}, ${r.weights} weights`,
        formatMs(r.stepMs),
        formatNumber(r.tokensPerSecond),
        formatNumber(r.gflops),
        r.rooflineFraction == null ? '–' : `${formatNumber(100 * r.rooflineFraction)}%`,
        formatBytes(r.peakBytes),
      ]),
      notes: [
        `Trainer.trainStep with batch 1, r = ${RANK}, α = ${2 * RANK}, the architecture's default LoRA targets, AdamW with the norm clip; median of ${ctx.timing.reps} steps after ${ctx.timing.warmup} warm-up; clock: wall (the whole step as a user sees it).`,
        'model GFLOP/s: 4·(linear params + vocab·hidden) per token (forward + input gradient; frozen weights have no weight gradient) + 6·T·qDim per token per layer for causal attention, over the step time.',
        roofline
          ? `% of best matmul: over our fastest matmul in table 1 (${formatNumber(roofline.gflops)} GFLOP/s, ${roofline.label}); the issue's target is ≥ 50% on a real GPU.`
          : '% of best matmul: – because the matmul section did not run (run with it for the roofline).',
        `kernels: the matmul variant this adapter's start-up measurement picks (${choice.variant}); the LoRA and NF4 kernels follow it.`,
        'pool peak: the BufferPool peak while the model was loaded and trained (weights, LoRA state, activations, scratch).',
        ...(e.gpu.adapter.isCpu ? ['CPU driver: the tiny fixtures are dominated by per-dispatch overhead, not arithmetic.'] : []),
        ...plan.skipped,
      ],
    },
    data: { rows, skipped: plan.skipped, roofline: roofline ?? null, matmulChoice: choice },
  };
}

async function runCase(ctx: BenchContext, c: TrainingCase, variant: TrainingRow['matmulVariant']): Promise<TrainingRow> {
  const { e } = ctx;
  let files: ModelFiles;
  let dtype: 'f32' | 'f16' = 'f32';
  if ('fixture' in c.source) {
    files = nodeFolder(join(FIXTURES, c.source.fixture));
  } else {
    ctx.log(`  training: building ${c.name}`);
    // The 0.5B model in f16 where the adapter can (its embedding alone is 545 MB in f32).
    if (c.source.random === 'qwen2.5-0.5b' && e.gpu.hasF16) dtype = 'f16';
    files = tinyModel(randomModelJson(c.source.random), 1, dtype === 'f16' ? 'F16' : 'F32').files;
  }
  e.buffers.trim();
  const before = e.buffers.stats().liveBytes;
  e.buffers.resetPeak();
  ctx.log(`  training: ${c.name}`);
  const tf = await loadTransformer(e, files, kernelChoiceFor(variant as Parameters<typeof kernelChoiceFor>[0]), { dtype, quant: 'none' });
  const cfg = tf.model.config;
  const steps = ctx.timing.warmup + ctx.timing.reps;
  const trainer = new Trainer({
    engine: e,
    transformer: tf,
    config: { ...DEFAULT_CONFIG, rank: RANK, alpha: 2 * RANK, batchSize: 1, maxLength: c.seqLen, maxSteps: steps, warmupRatio: 0, schedule: 'constant', lr: 1e-4 },
    train: randomRows(steps, c.seqLen, cfg.vocabSize, 3),
    padId: 0,
  });
  try {
    const times: number[] = [];
    let loss = NaN;
    for (let i = 0; i < steps; i++) {
      const m = await trainer.trainStep();
      if (i >= ctx.timing.warmup) times.push(m.ms);
      loss = m.loss;
    }
    const stepMs = median(times);
    const linearParams = tf.model.modules.reduce((s, m) => s + m.module.inFeatures * m.module.outFeatures, 0);
    const flops = trainingStepFlops({
      tokens: c.seqLen,
      seqLen: c.seqLen,
      layers: cfg.numLayers,
      linearParams,
      vocab: cfg.vocabSize,
      hidden: cfg.hiddenSize,
      qDim: cfg.numHeads * cfg.headDim,
    });
    const g = gflops(flops, stepMs);
    const targets = [...new Set(trainer.lora.modules.map((m) => m.module.targetName))].join(', ');
    return {
      name: c.name,
      tokens: c.seqLen,
      targets,
      matmulVariant: variant,
      weights: dtype,
      stepMs,
      tokensPerSecond: (c.seqLen / stepMs) * 1000,
      gflops: g,
      rooflineFraction: ctx.bestMatmul ? g / ctx.bestMatmul.gflops : null,
      peakBytes: e.buffers.stats().peakBytes - before,
      loss,
    };
  } finally {
    trainer.dispose();
  }
}
