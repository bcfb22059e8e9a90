// Table 8: one training step of every row of the article's method comparison (src/train/method-comparison.ts, the rows
// `lora-studio compare-methods` and the studio's Compare methods train: full fine-tuning, LoRA r8 and r64, QLoRA r8,
// DoRA, IA³, the prompt methods, the bottleneck adapters, …) on the training table's models and batch shapes, through
// the real trainer. Two ratios, each measured side by side in this run: the row's step over our LoRA r8 step on the
// same model (what a method costs beside plain LoRA), and over PyTorch + PEFT training the same method (fp32, TF32
// off; bench/torch_peer.py) where PEFT has it and python3 has torch with CUDA.
import type { KernelChoice } from '../src/model/runtime/linear.ts';
import { kernelChoiceFor } from '../src/model/runtime/linear.ts';
import { tuneKernels } from '../src/gpu/kernels/matmul-tuning.ts';
import type { TrainConfig } from '../src/train/config.ts';
import { METHOD_ROWS, methodRowConfig, type MethodRow } from '../src/train/method-comparison.ts';
import type { BenchContext, SectionResult } from './context.ts';
import { trainingPlan, trainingTiming, type TrainingCase } from './lib/plan.ts';
import { formatBytes, formatMs, formatNumber, formatRatio, ratio } from './lib/stats.ts';
import { benchLoraConfig, caseFiles, caseJson, runTorchPeer, timeTrainerSteps, type Peer, type PeerCase, type TimedSteps } from './training.ts';

/** The row every other is divided by. */
const BASELINE = 'lora-r8';
const BASELINE_LABEL = METHOD_ROWS.find((r) => r.id === BASELINE)?.label ?? BASELINE;

interface MethodResult {
  model: string;
  row: string;
  label: string;
  method: string;
  run?: TimedSteps;
  error?: string;
  /** Our step over our LoRA r8 step on the same model. */
  vsLora: number | null;
  /** Our step over PyTorch + PEFT's for the same method; null where there is no peer row. */
  vsTorchFp32: number | null;
  torchMs: number | null;
}

/** What bench/torch_peer.py needs to build PEFT's config for a row (null: PEFT has no such method, or QLoRA, which
 *  needs bitsandbytes). */
export function peerMethod(row: MethodRow, config: TrainConfig, steps: number): (Record<string, unknown> & { id: string }) | null {
  if (row.quant === 'nf4' || row.method === 'houlsby' || row.method === 'pfeiffer') return null;
  const extra = config as TrainConfig & Partial<Record<'prefixProjection' | 'initR' | 'targetR', unknown>>;
  return {
    id: row.method,
    rank: config.rank,
    alpha: config.alpha,
    // [] means the method's PEFT default; 'all-linear' is PEFT's own keyword.
    targets: config.targets.length === 1 && config.targets[0] === 'all-linear' ? 'all-linear' : config.targets.length ? config.targets : null,
    numVirtualTokens: config.numVirtualTokens,
    encoderHiddenSize: config.encoderHiddenSize,
    prefixProjection: extra.prefixProjection ?? false,
    initR: extra.initR,
    targetR: extra.targetR,
    totalStep: steps,
  };
}

export async function runMethods(ctx: BenchContext): Promise<SectionResult> {
  const { e, options } = ctx;
  const plan = trainingPlan(options.quick, e.gpu.adapter.isCpu, { large: options.trainLarge, shape: options.trainShape });
  const timing = trainingTiming(options);
  const steps = timing.warmup + timing.reps;
  const rowsOf = (c: TrainingCase) =>
    METHOD_ROWS.flatMap((row) => {
      const r = methodRowConfig(row, benchLoraConfig('none'), row.quant === 'nf4' ? 'nf4' : 'none');
      return 'config' in r ? [{ c, row, config: r.config }] : [];
    });
  const work = plan.cases.flatMap(rowsOf);

  const peerCases: PeerCase[] = work.flatMap(({ c, row, config }) => {
    const method = peerMethod(row, config, steps);
    return method ? [{ name: `${c.name} · ${row.id}`, config: caseJson(c), batch: c.batch, seqLen: c.seqLen, method }] : [];
  });
  const peer: Peer = options.noTorch ? { status: 'skipped', reason: '--no-torch' } : runTorchPeer(ctx, peerCases, timing, ['fp32'], 'methods');
  if (peer.status !== 'ran') ctx.log(`  methods: PyTorch + PEFT peer ${peer.status}: ${peer.reason}`);

  const tuning = await tuneKernels(e);
  const kernels: KernelChoice = { ...kernelChoiceFor(tuning.matmul.variant), nf4: tuning.nf4.variant };
  const results: MethodResult[] = [];
  for (const c of plan.cases) {
    const { files } = caseFiles(c); // random weights built once per model, loaded once per row
    const mine: MethodResult[] = [];
    for (const { row, config } of work.filter((w) => w.c === c)) {
      const result: MethodResult = { model: c.name, row: row.id, label: row.label, method: row.method, vsLora: null, vsTorchFp32: null, torchMs: null };
      try {
        result.run = await timeTrainerSteps(ctx, c, files, config, kernels, timing, `methods: ${c.name} ${row.id}`);
      } catch (err) {
        result.error = err instanceof Error ? err.message : String(err);
        ctx.log(`  methods: ${c.name} ${row.id} failed: ${err instanceof Error && err.stack ? err.stack : result.error}`);
      }
      const theirs = peer.status === 'ran' ? peer.results.find((p) => p.name === `${c.name} · ${row.id}` && p.precision === 'fp32') : undefined;
      result.torchMs = theirs?.ms ?? null;
      result.vsTorchFp32 = result.run ? ratio(result.run.stepMs, theirs?.ms) : null;
      mine.push(result);
    }
    const lora = mine.find((r) => r.row === BASELINE)?.run;
    for (const r of mine) r.vsLora = r.run && lora ? ratio(r.run.stepMs, lora.stepMs) : null;
    results.push(...mine);
  }

  const cells = results.map((r) => {
    const c = plan.cases.find((x) => x.name === r.model)!;
    if (!r.run) return [r.model, r.label, `failed: ${(r.error ?? '').slice(0, 80)}`, '–', '–', '–', '–', '–', '–'];
    return [
      r.model,
      r.label,
      r.run.trainableParams.toLocaleString('en-US'),
      formatMs(r.run.stepMs),
      formatNumber(((c.batch * c.seqLen) / r.run.stepMs) * 1000),
      formatRatio(r.vsLora),
      formatBytes(r.run.peakBytes),
      r.torchMs == null ? '–' : formatMs(r.torchMs),
      formatRatio(r.vsTorchFp32),
    ];
  });
  const peerNote =
    peer.status === 'ran'
      ? `PyTorch rows: bench/torch_peer.py in this run (torch ${peer.torch}, transformers ${peer.transformers}, peft ${peer.peft} on ${peer.device}), fp32 with TF32 off, PEFT's config for the same method and settings (get_peft_model; full fine-tuning: no adapter, every parameter trains; AdaLoRA with update_and_allocate after each optimizer step). No PyTorch row for QLoRA (bitsandbytes) or the bottleneck adapters (PEFT has none).`
      : `PyTorch + PEFT peer: not run (${peer.reason}).`;
  return {
    table: {
      title: 'Training step per method (the method comparison\'s rows)',
      columns: [
        { header: 'model' },
        { header: 'method' },
        { header: 'trainable params', align: 'right' },
        { header: 'step', align: 'right' },
        { header: 'tokens/s', align: 'right' },
        { header: `÷ our ${BASELINE_LABEL}`, align: 'right' },
        { header: 'memory peak', align: 'right' },
        { header: 'PyTorch fp32 step', align: 'right' },
        { header: 'ours ÷ PyTorch fp32', align: 'right' },
      ],
      rows: cells,
      notes: [
        `Trainer.trainStep, batch ${plan.cases.map((c) => `${c.batch} × ${c.seqLen}`).filter((v, i, a) => a.indexOf(v) === i).join(' / ')} tokens of random ids, every position trained; each row's own settings from src/train/method-comparison.ts over the training table's (LoRA family on all-linear, the other methods on their PEFT default modules, AdamW, clip 1); median of ${timing.reps} steps after ${timing.warmup} warm-up, wall clock with the loss read-back.`,
        `÷ our ${BASELINE_LABEL}: the row's step time over our ${BASELINE_LABEL} step on the same model in this run (> 1: the method costs more).`,
        'memory peak: the BufferPool peak over loading and training the row (weights, the method\'s state, activations, scratch).',
        `kernels: matmul ${kernels.matmul}, LoRA route ${kernels.lora}, NF4 ${kernels.nf4} (tuneKernels, as the CLI).`,
        peerNote,
        ...(e.gpu.adapter.isCpu ? ['CPU driver: the tiny fixtures are dominated by per-dispatch overhead, not arithmetic.'] : []),
        ...plan.skipped,
      ],
    },
    data: { timing, results, peer, kernels },
  };
}
