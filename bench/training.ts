// Table 5: training steps through the real trainer (src/train/trainer.ts) at the configuration of issue 10: LoRA r16
// α32 on every linear layer ("all-linear"), AdamW, the gradient norm clipped at 1.0, batch 4 × 512 tokens on
// GPT-2-small-sized and Qwen2.5-0.5B-sized random weights (full runs on a real GPU), LoRA over f32 weights and
// QLoRA over NF4 weights; the committed tiny fixtures at 4 × 32/64 tokens in every mode. Timed by wall clock around
// Trainer.trainStep (the batch's preparation, one submission, the loss read-back: the step time a user sees).
// Where python3 has torch with CUDA and peft, the same step in PyTorch + PEFT (bench/torch_peer.py) runs in the same
// bench run, fp32 with TF32 off and bf16 autocast, and the table gives our time over theirs.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tuneKernels } from '../src/gpu/kernels/matmul-tuning.ts';
import type { TokenizedRow } from '../src/data/encode.ts';
import { parseModelConfig } from '../src/model/config.ts';
import { kernelChoiceFor, type KernelChoice } from '../src/model/runtime/linear.ts';
import { loadTransformer, releaseTransformer } from '../src/model/runtime/load.ts';
import { nodeFolder } from '../src/model/sources/node-file.ts';
import { memoryFolder } from '../src/model/sources/memory.ts';
import { writeSafetensors, type TensorToWrite } from '../src/model/safetensors.ts';
import { expectedTensors, linearModules } from '../src/model/weights.ts';
import type { ModelFiles } from '../src/model/checkpoint.ts';
import { DEFAULT_CONFIG, type TrainConfig } from '../src/train/config.ts';
import { Trainer } from '../src/train/trainer.ts';
import { rng } from '../src/gpu/ref/testing.ts';
import type { BenchContext, SectionResult } from './context.ts';
import { TRAINING_LORA, trainingPlan, trainingTiming, type Timing, type TrainingCase, type TrainingMethod } from './lib/plan.ts';
import { formatBytes, formatMs, formatNumber, formatRatio, gflops, median, ratio, trainingStepFlops } from './lib/stats.ts';

const FIXTURES = join(process.cwd(), 'tests', 'fixtures', 'models');
const PEER_SCRIPT = join(process.cwd(), 'bench', 'torch_peer.py');

/** One row of ours: a (model, method) pair. */
interface OursRow {
  name: string;
  method: TrainingMethod;
  batch: number;
  seqLen: number;
  tokens: number;
  targets: string;
  trainableParams: number;
  matmulVariant: string;
  weights: string;
  stepMs: number;
  stepsMs: number[];
  tokensPerSecond: number;
  gflops: number;
  /** Achieved model GFLOP/s over our best matmul GFLOP/s of table 1. */
  rooflineFraction: number | null;
  peakBytes: number;
  loss: number;
  /** Building the random weights in memory (0 for a fixture read from disk) and loading them onto the GPU. */
  buildMs: number;
  loadMs: number;
  /** Our step time over PyTorch + PEFT's (> 1: ours is slower); null where the peer did not run. */
  vsTorchFp32: number | null;
  vsTorchBf16: number | null;
}

interface FailedRow {
  name: string;
  method: TrainingMethod;
  error: string;
}

/** What bench/torch_peer.py prints for one case and precision. */
export interface PeerResult {
  name: string;
  /** The method's id, for a case that named one (the methods table). */
  method?: string;
  precision: 'fp32' | 'bf16';
  ms?: number;
  stepsMs?: number[];
  tokensPerSecond?: number;
  maxMemoryBytes?: number | null;
  trainableParams?: number;
  loss?: number;
  buildMs?: number;
  attention?: string | null;
  error?: string;
}

export type Peer =
  | { status: 'ran'; python: string; torch: string; transformers: string; peft: string; device: string; results: PeerResult[]; seconds: number }
  | { status: 'skipped' | 'failed'; reason: string };

/** config.json for random weights at a real model's dimensions: the fixture's config with the sizes replaced. */
export function randomModelJson(which: 'gpt2-small' | 'qwen2.5-0.5b'): Record<string, unknown> {
  if (which === 'gpt2-small') return { ...fixtureJson('gpt2'), n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, vocab_size: 50257 };
  const layers = 24;
  return {
    ...fixtureJson('qwen2'),
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

function fixtureJson(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')) as Record<string, unknown>;
}

export function caseJson(c: TrainingCase): Record<string, unknown> {
  return 'fixture' in c.source ? fixtureJson(c.source.fixture) : randomModelJson(c.source.random);
}

/** Uniform in [center − a, center + a) from a xorshift32 stream: about a nanosecond a value, so the 0.5B model's
 *  weights are built in about a second (a closure per value, as in the tests' tinyModel, takes tens of seconds). */
function fillUniform(out: Float32Array, seed: number, a: number, center = 0): Float32Array {
  let x = (seed * 2654435761) >>> 0 || 1;
  const scale = (2 * a) / 4294967296;
  const lo = center - a;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = lo + (x >>> 0) * scale;
  }
  return out;
}

/** config.json + model.safetensors (F32) in memory, initialised as transformers initialises a fresh model (the
 *  PyTorch peer's from_config): every matrix with standard deviation 0.02 (initializer_range; uniform here), norm
 *  weights 1, biases 0, so the loss starts near ln(vocab) on both sides. The values do not change a step's cost. */
export function randomModelFiles(json: Record<string, unknown>, name: string): ModelFiles {
  const config = parseModelConfig(json, `${name}/config.json`);
  const std = typeof json.initializer_range === 'number' ? json.initializer_range : 0.02;
  const tensors = new Map<string, TensorToWrite>();
  let seed = 1;
  for (const t of expectedTensors(config)) {
    const data = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
    if (t.layout !== 'vector') fillUniform(data, seed++, std * Math.sqrt(3));
    else if (!t.canonical.endsWith('.bias')) data.fill(1);
    tensors.set(t.hfName, { dtype: 'F32', shape: t.shape, data });
  }
  return memoryFolder({ 'config.json': JSON.stringify(json), 'model.safetensors': writeSafetensors(tensors) }, name);
}

/** Random token rows, every position trained: the step's cost does not depend on the text. */
export function randomRows(count: number, seqLen: number, vocab: number, seed: number): TokenizedRow[] {
  const next = rng(seed);
  return Array.from({ length: count }, () => {
    const ids = Int32Array.from({ length: seqLen }, () => 1 + Math.floor(next() * (vocab - 1)));
    return { input_ids: ids, labels: ids.slice() };
  });
}

/** Model FLOPs of one step of `c` (stats.ts trainingStepFlops), from the config alone: the same count for every row
 *  of a model, ours and PyTorch's. */
export function stepFlops(c: TrainingCase): number {
  const cfg = parseModelConfig(caseJson(c), c.name);
  const linearParams = linearModules(cfg).reduce((s, m) => s + m.inFeatures * m.outFeatures, 0);
  return trainingStepFlops({
    tokens: c.batch * c.seqLen,
    seqLen: c.seqLen,
    layers: cfg.numLayers,
    linearParams,
    vocab: cfg.vocabSize,
    hidden: cfg.hiddenSize,
    qDim: cfg.numHeads * cfg.headDim,
  });
}

const PRECISION_LABEL = { fp32: 'fp32, TF32 off', bf16: 'bf16 autocast' } as const;

export async function runTraining(ctx: BenchContext): Promise<SectionResult> {
  const { e, options } = ctx;
  const plan = trainingPlan(options.quick, e.gpu.adapter.isCpu, { large: options.trainLarge, shape: options.trainShape });
  const timing = trainingTiming(options);
  // The peer first: its numbers are in the log even if our engine later loses the device.
  const peer = options.noTorch
    ? ({ status: 'skipped', reason: '--no-torch' } as const)
    : runTorchPeer(ctx, plan.cases.map((c) => ({ name: c.name, config: caseJson(c), batch: c.batch, seqLen: c.seqLen })), timing, ['fp32', 'bf16'], 'training');
  if (peer.status !== 'ran') ctx.log(`  training: PyTorch + PEFT peer ${peer.status}: ${peer.reason}`);
  // The variants the app would choose on this adapter (measured once here, not cached), as the CLI combines them.
  const tuning = await tuneKernels(e);
  const kernels: KernelChoice = { ...kernelChoiceFor(tuning.matmul.variant), nf4: tuning.nf4.variant };
  ctx.log(`  training: matmul ${kernels.matmul}, LoRA route ${kernels.lora}, NF4 ${kernels.nf4}`);
  const rows: (OursRow | FailedRow)[] = [];
  for (const c of plan.cases) {
    for (const method of c.methods) {
      try {
        rows.push(await runCase(ctx, c, method, kernels, timing, peer));
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        ctx.log(`  training: ${c.name} ${method} failed: ${err instanceof Error && err.stack ? err.stack : message}`);
        rows.push({ name: c.name, method, error: message });
      }
    }
  }
  const roofline = ctx.bestMatmul;
  const cells: string[][] = [];
  for (const c of plan.cases) {
    const flops = stepFlops(c);
    for (const r of rows.filter((x) => x.name === c.name)) {
      const method = r.method === 'qlora' ? 'QLoRA' : 'LoRA';
      if ('error' in r) {
        cells.push([r.name, String(c.batch * c.seqLen), method, 'ours', `failed: ${r.error.slice(0, 80)}`, '–', '–', '–', '–', '–', '–']);
        continue;
      }
      cells.push([
        r.name,
        String(r.tokens),
        method,
        r.method === 'qlora' ? `ours (${r.matmulVariant})` : `ours (${r.matmulVariant}, ${r.weights} W)`,
        formatMs(r.stepMs),
        formatNumber(r.tokensPerSecond),
        formatNumber(r.gflops),
        r.rooflineFraction == null ? '–' : `${formatNumber(100 * r.rooflineFraction)}%`,
        formatBytes(r.peakBytes),
        formatRatio(r.vsTorchFp32),
        formatRatio(r.vsTorchBf16),
      ]);
    }
    if (peer.status !== 'ran') continue;
    for (const p of peer.results.filter((x) => x.name === c.name)) {
      const engine = `PyTorch ${peer.torch.split('+')[0]} + PEFT, ${PRECISION_LABEL[p.precision] ?? p.precision}`;
      if (p.ms == null) {
        cells.push([c.name, String(c.batch * c.seqLen), 'LoRA', engine, `failed: ${(p.error ?? 'no result').slice(0, 80)}`, '–', '–', '–', '–', '–', '–']);
        continue;
      }
      const g = gflops(flops, p.ms);
      cells.push([
        c.name,
        String(c.batch * c.seqLen),
        'LoRA',
        engine,
        formatMs(p.ms),
        formatNumber(p.tokensPerSecond),
        formatNumber(g),
        roofline ? `${formatNumber((100 * g) / roofline.gflops)}%` : '–',
        formatBytes(p.maxMemoryBytes),
        '–',
        '–',
      ]);
    }
  }
  const ours = rows.filter((r): r is OursRow => !('error' in r));
  const targetNotes = [...new Set(plan.cases.map((c) => c.name))].flatMap((name) => {
    const r = ours.find((x) => x.name === name && x.method === 'lora') ?? ours.find((x) => x.name === name);
    if (!r) return [];
    const theirs = peer.status === 'ran' ? peer.results.find((p) => p.name === name && p.trainableParams != null)?.trainableParams : undefined;
    const same = theirs == null ? '' : theirs === r.trainableParams ? ' (PEFT: the same)' : ` (PEFT: ${theirs.toLocaleString('en-US')}, NOT the same: the rows compare different work)`;
    return [`${name}: LoRA on ${r.targets}; ${r.trainableParams.toLocaleString('en-US')} trainable parameters${same}.`];
  });
  const peerNote =
    peer.status === 'ran'
      ? `PyTorch rows: bench/torch_peer.py, torch ${peer.torch}, transformers ${peer.transformers}, peft ${peer.peft} on ${peer.device}, in this run: AutoModelForCausalLM.from_config (same config.json, random init, model dropout 0, attention ${peer.results.find((p) => p.attention)?.attention ?? 'default'}), get_peft_model(LoraConfig(r=${TRAINING_LORA.rank}, lora_alpha=${TRAINING_LORA.alpha}, target_modules="all-linear")), AdamW over the trainable parameters, clip_grad_norm_ 1.0, labels = input_ids; torch.cuda.synchronize() before and after each step; memory: torch.cuda.max_memory_allocated (weights included). QLoRA has no PyTorch row (PEFT's QLoRA needs bitsandbytes).`
      : `PyTorch + PEFT peer: not run (${peer.reason}).`;
  return {
    table: {
      title: `5. training step (LoRA r${TRAINING_LORA.rank} α${TRAINING_LORA.alpha} on all linear layers, AdamW, clip ${TRAINING_LORA.maxGradNorm})`,
      columns: [
        { header: 'model' },
        { header: 'tokens/step', align: 'right' },
        { header: 'method' },
        { header: 'engine' },
        { header: 'step', align: 'right' },
        { header: 'tokens/s', align: 'right' },
        { header: 'model GFLOP/s', align: 'right' },
        { header: '% of best matmul', align: 'right' },
        { header: 'memory peak', align: 'right' },
        { header: 'ours ÷ PyTorch fp32', align: 'right' },
        { header: 'ours ÷ PyTorch bf16', align: 'right' },
      ],
      rows: cells,
      notes: [
        `Trainer.trainStep, batch ${plan.cases.map((c) => `${c.batch} × ${c.seqLen}`).filter((v, i, a) => a.indexOf(v) === i).join(' / ')} tokens (batch × row length, random tokens, every position trained), r = ${TRAINING_LORA.rank}, α = ${TRAINING_LORA.alpha}, targets "all-linear" (every linear layer but the head), AdamW lr ${TRAINING_LORA.lr}, clip ${TRAINING_LORA.maxGradNorm}; median of ${timing.reps} steps after ${timing.warmup} warm-up; clock: wall (the whole step as a user sees it, loss read-back included). LoRA over f32 weights, QLoRA over NF4 weights (f32 embeddings and head).`,
        'model GFLOP/s: step FLOPs = 4·B·T·(Σ in·out of the block linears + vocab·hidden) + 6·layers·B·T²·qDim (forward and input gradient of every frozen product, causal attention; LoRA terms left out), over the step time; the same count for ours and PyTorch.',
        roofline
          ? `% of best matmul: over our fastest matmul in table 1 (${formatNumber(roofline.gflops)} GFLOP/s, ${roofline.label}); the issue's target is ≥ 50% on a real GPU.`
          : '% of best matmul: – because the matmul section did not run (run with it for the roofline).',
        'ours ÷ PyTorch: our step time over PyTorch + PEFT\'s on the same model and batch (> 1: ours is slower).',
        `kernels: what this adapter's start-up measurement picks (tuneKernels, as the CLI): matmul ${kernels.matmul}, LoRA route ${kernels.lora}, NF4 matmul ${kernels.nf4}.`,
        'memory peak (ours): the BufferPool peak while the model was loaded and trained (weights, LoRA state, activations, scratch).',
        peerNote,
        ...targetNotes,
        ...(e.gpu.adapter.isCpu ? ['CPU driver: the tiny fixtures are dominated by per-dispatch overhead, not arithmetic.'] : []),
        ...plan.skipped,
        ...rows.filter((r): r is FailedRow => 'error' in r).map((r) => `${r.name} ${r.method} failed: ${r.error}`),
      ],
    },
    data: { config: { ...TRAINING_LORA, timing }, rows, peer, skipped: plan.skipped, roofline: roofline ?? null, kernels, tuning },
  };
}

/** A case's model files: a committed fixture, or random weights at a real model's dimensions built in memory. */
export function caseFiles(c: TrainingCase): { files: ModelFiles; buildMs: number } {
  const t = performance.now();
  if ('fixture' in c.source) return { files: nodeFolder(join(FIXTURES, c.source.fixture)), buildMs: 0 };
  const files = randomModelFiles(caseJson(c), c.source.random);
  return { files, buildMs: performance.now() - t };
}

/** What timing a run's steps gives. */
export interface TimedSteps {
  /** Median of the timed steps. */
  stepMs: number;
  stepsMs: number[];
  loss: number;
  /** The pool's peak over loading and training, less what was live before. */
  peakBytes: number;
  trainableParams: number;
  loadMs: number;
}

/** Loads `files` (NF4 when the config says so), trains `warmup + reps` optimizer steps of `config` on random rows of
 *  the case's shape through the real trainer, and times them; `inspect` sees the trainer before it is disposed. */
export async function timeTrainerSteps(
  ctx: BenchContext,
  c: TrainingCase,
  files: ModelFiles,
  config: TrainConfig,
  kernels: KernelChoice,
  timing: Timing,
  label: string,
  inspect?: (trainer: Trainer) => void,
): Promise<TimedSteps> {
  const { e } = ctx;
  e.buffers.trim();
  const before = e.buffers.stats().liveBytes;
  e.buffers.resetPeak();
  const t = performance.now();
  const tf = await loadTransformer(e, files, kernels, { dtype: 'f32', quant: config.quant });
  const loadMs = performance.now() - t;
  const steps = timing.warmup + timing.reps;
  let trainer: Trainer | undefined;
  try {
    trainer = new Trainer({
      engine: e,
      transformer: tf,
      config: { ...config, batchSize: c.batch, gradAccum: 1, maxLength: c.seqLen, maxSteps: steps, packing: false },
      train: randomRows(steps * c.batch, c.seqLen, tf.model.config.vocabSize, 3),
      padId: 0,
    });
    const stepsMs: number[] = [];
    let loss = NaN;
    for (let i = 0; i < steps; i++) {
      const m = await trainer.trainStep();
      stepsMs.push(m.ms);
      loss = m.loss;
    }
    const stepMs = median(stepsMs.slice(timing.warmup));
    ctx.log(`  ${label}: ${stepMs.toFixed(1)} ms/step (steps ${stepsMs.map((s) => s.toFixed(0)).join(', ')} ms), loss ${loss.toFixed(3)}, loaded in ${(loadMs / 1000).toFixed(1)} s`);
    inspect?.(trainer);
    return { stepMs, stepsMs, loss, peakBytes: e.buffers.stats().peakBytes - before, trainableParams: trainer.method.trainableParams, loadMs };
  } finally {
    trainer?.dispose();
    releaseTransformer(e, tf);
  }
}

/** The training table's LoRA configuration (r16 α32 on all-linear, AdamW, clip 1, constant lr) over `quant`. */
export function benchLoraConfig(quant: TrainConfig['quant']): TrainConfig {
  return {
    ...DEFAULT_CONFIG,
    method: 'lora',
    quant,
    rank: TRAINING_LORA.rank,
    alpha: TRAINING_LORA.alpha,
    dropout: 0,
    targets: [TRAINING_LORA.targets],
    warmupRatio: 0,
    warmupSteps: 0,
    schedule: 'constant',
    lr: TRAINING_LORA.lr,
    maxGradNorm: TRAINING_LORA.maxGradNorm,
  };
}

/** Builds or reads the model, loads it (NF4 for QLoRA) and times `warmup + reps` optimizer steps. */
async function runCase(
  ctx: BenchContext,
  c: TrainingCase,
  method: TrainingMethod,
  kernels: KernelChoice,
  timing: Timing,
  peer: Peer,
): Promise<OursRow> {
  const { files, buildMs } = caseFiles(c);
  ctx.log(`  training: ${c.name} ${method}: weights built in ${(buildMs / 1000).toFixed(1)} s`);
  let targets = '';
  const run = await timeTrainerSteps(ctx, c, files, benchLoraConfig(method === 'qlora' ? 'nf4' : 'none'), kernels, timing, `training: ${c.name} ${method}`, (trainer) => {
    targets = [...new Set(trainer.lora.modules.map((m) => m.module.targetName))].join(', ');
  });
  const g = gflops(stepFlops(c), run.stepMs);
  const theirs = (precision: 'fp32' | 'bf16') =>
    method === 'lora' && peer.status === 'ran' ? ratio(run.stepMs, peer.results.find((p) => p.name === c.name && p.precision === precision)?.ms) : null;
  return {
    name: c.name,
    method,
    batch: c.batch,
    seqLen: c.seqLen,
    tokens: c.batch * c.seqLen,
    targets,
    trainableParams: run.trainableParams,
    matmulVariant: method === 'qlora' ? `NF4 ${kernels.nf4}` : kernels.matmul,
    weights: method === 'qlora' ? 'NF4' : 'f32',
    stepMs: run.stepMs,
    stepsMs: run.stepsMs,
    tokensPerSecond: ((c.batch * c.seqLen) / run.stepMs) * 1000,
    gflops: g,
    rooflineFraction: ctx.bestMatmul ? g / ctx.bestMatmul.gflops : null,
    peakBytes: run.peakBytes,
    loss: run.loss,
    buildMs,
    loadMs: run.loadMs,
    vsTorchFp32: theirs('fp32'),
    vsTorchBf16: theirs('bf16'),
  };
}

/** One case of bench/torch_peer.py's spec: a model config, a batch shape and, for the methods table, the method. */
export interface PeerCase {
  name: string;
  config: Record<string, unknown>;
  batch: number;
  seqLen: number;
  method?: Record<string, unknown> & { id: string };
}

/** The PyTorch + PEFT peer, where python3 (BENCH_PYTHON) has torch with CUDA and peft; otherwise why not, in one
 *  line. BENCH_TORCH_DEVICE=cpu tries it on the CPU (a check of the plumbing, not a peer). */
export function runTorchPeer(ctx: BenchContext, cases: PeerCase[], timing: Timing, precisions: ('fp32' | 'bf16')[], section: string): Peer {
  const python = process.env.BENCH_PYTHON || 'python3';
  const device = process.env.BENCH_TORCH_DEVICE || 'cuda';
  const check = spawnSync(python, [PEER_SCRIPT, '--check'], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, BENCH_TORCH_DEVICE: device } });
  if (check.error) return { status: 'skipped', reason: `${python}: ${check.error.message}` };
  let info: { ok?: boolean; error?: string; torch?: string; device?: string } = {};
  try {
    info = JSON.parse(check.stdout.trim().split('\n').pop() ?? '{}');
  } catch {
    info = { error: (check.stderr || check.stdout || `exit ${check.status}`).trim().split('\n').pop() };
  }
  if (!info.ok) return { status: 'skipped', reason: `${python} has no usable torch + peft${device === 'cuda' ? ' with CUDA' : ''} (${info.error ?? `exit ${check.status}`})` };
  const dir = mkdtempSync(join(tmpdir(), 'bench-torch-'));
  try {
    const spec = {
      cases,
      warmup: timing.warmup,
      reps: timing.reps,
      precisions,
      device,
      lr: TRAINING_LORA.lr,
      rank: TRAINING_LORA.rank,
      alpha: TRAINING_LORA.alpha,
      targets: TRAINING_LORA.targets,
      maxGradNorm: TRAINING_LORA.maxGradNorm,
    };
    const specPath = join(dir, 'spec.json');
    writeFileSync(specPath, JSON.stringify(spec));
    ctx.log(`  ${section}: PyTorch + PEFT peer (${python}, torch ${info.torch} on ${info.device}): ${cases.length} cases × ${precisions.join(', ')}`);
    const started = performance.now();
    const timeoutS = Number(process.env.BENCH_TORCH_TIMEOUT) || 300;
    const run = spawnSync(python, [PEER_SCRIPT, specPath], {
      encoding: 'utf8',
      timeout: timeoutS * 1000,
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PYTHONUNBUFFERED: '1', BENCH_TORCH_DEVICE: device },
    });
    const seconds = (performance.now() - started) / 1000;
    if (run.error) return { status: 'failed', reason: `${run.error.message}${run.signal ? ` (${run.signal} after ${seconds.toFixed(0)} s; BENCH_TORCH_TIMEOUT=${timeoutS})` : ''}` };
    const last = (run.stdout ?? '').trim().split('\n').pop() ?? '';
    let out: { error?: string; torch: string; transformers: string; peft: string; device: string; results: PeerResult[] };
    try {
      out = JSON.parse(last);
    } catch {
      return { status: 'failed', reason: `exit ${run.status}, no JSON on stdout (see the log above)` };
    }
    if (out.error || !Array.isArray(out.results)) return { status: 'failed', reason: out.error ?? 'no results' };
    ctx.log(`  ${section}: PyTorch + PEFT peer done in ${seconds.toFixed(0)} s`);
    return { status: 'ran', python, torch: out.torch, transformers: out.transformers, peft: out.peft, device: out.device, results: out.results, seconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
