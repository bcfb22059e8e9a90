// What a run measures: command-line options and the shapes each mode covers. Pure, so the choice of shapes per
// mode and driver is unit-tested (scripts/bench-lib.test.ts).

export const SECTIONS = ['matmul', 'lora', 'nf4', 'memory', 'training', 'profile', 'attention', 'methods'] as const;
export type Section = (typeof SECTIONS)[number];

export interface BenchOptions {
  /** Smaller token counts, fewer repetitions, and on CPU drivers no 1B-sized shape: minutes on lavapipe. */
  quick: boolean;
  /** One JSON document on stdout instead of tables. */
  json: boolean;
  /** Also write the JSON document to this file (tables still on stdout). */
  jsonOut?: string;
  /** Timed submissions per measurement (the median is reported); undefined: the mode's default. */
  reps?: number;
  /** Untimed submissions first (pipeline compilation, driver warm-up); undefined: the mode's default. */
  warmup?: number;
  sections: Section[];
  /** Time by wall clock even where timestamp-query exists (submission overhead included, for both us and TF.js). */
  wallClock: boolean;
  /** The adapter's fp32 peak in GFLOP/s, when the user knows it: adds "% of peak" to the matmul table. */
  peakGflops?: number;
  /** Batch × tokens of the real-sized training cases (default 4 × 512, the PyTorch + PEFT comparison's). */
  trainShape?: { batch: number; seqLen: number };
  /** Train the real-sized random models even with --quick or on a CPU driver (with a small --train-shape). */
  trainLarge: boolean;
  /** Leave out the PyTorch + PEFT peer of the training table even where python3 has torch with CUDA. */
  noTorch: boolean;
  help: boolean;
}

export const USAGE = `usage: npm run bench -- [options]

options:
  --quick             smaller shapes and fewer repetitions (CPU drivers: minutes, not hours)
  --json              print one JSON document instead of tables
  --json-out FILE     also write the JSON document to FILE (tables still printed)
  --reps N            timed submissions per measurement (median reported)
  --warmup N          untimed submissions before timing
  --only a,b          run only these sections: ${SECTIONS.join(', ')}
  --peak-gflops N     the GPU's fp32 peak, to report % of peak for the matmuls
  --wall-clock        time by wall clock even where timestamp-query exists
  --train-shape BxT   batch × tokens of the real-sized training cases (default 4x512)
  --train-large       train the real-sized models even with --quick or on a CPU driver
  --no-torch          leave out the PyTorch + PEFT peer of the training table
  --help              this text`;

function positive(flag: string, value: string | undefined, integer: boolean): number {
  const n = Number(value);
  if (value === undefined || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new RangeError(`${flag} needs a positive ${integer ? 'integer' : 'number'}, got ${value === undefined ? 'nothing' : `"${value}"`}`);
  }
  return n;
}

/** Parses the arguments after `npm run bench --`. Throws RangeError naming the flag on anything it does not know. */
export function parseArgs(argv: readonly string[]): BenchOptions {
  const o: BenchOptions = { quick: false, json: false, wallClock: false, sections: [...SECTIONS], trainLarge: false, noTorch: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--quick':
        o.quick = true;
        break;
      case '--json':
        o.json = true;
        break;
      case '--wall-clock':
        o.wallClock = true;
        break;
      case '--train-large':
        o.trainLarge = true;
        break;
      case '--no-torch':
        o.noTorch = true;
        break;
      case '--train-shape': {
        const v = value();
        const m = /^(\d+)[x×](\d+)$/.exec(v ?? '');
        if (!m || Number(m[1]) < 1 || Number(m[2]) < 2) throw new RangeError(`--train-shape needs BATCHxTOKENS (e.g. 4x512, tokens ≥ 2), got ${v === undefined ? 'nothing' : `"${v}"`}`);
        o.trainShape = { batch: Number(m[1]), seqLen: Number(m[2]) };
        break;
      }
      case '--help':
      case '-h':
        o.help = true;
        break;
      case '--json-out': {
        const file = value();
        if (!file || file.startsWith('--')) throw new RangeError(`--json-out needs a file name, got ${file ? `"${file}"` : 'nothing'}`);
        o.jsonOut = file;
        break;
      }
      case '--reps':
        o.reps = positive(flag, value(), true);
        break;
      case '--warmup':
        o.warmup = positive(flag, value(), true);
        break;
      case '--peak-gflops':
        o.peakGflops = positive(flag, value(), false);
        break;
      case '--only': {
        const names = (value() ?? '').split(',').filter(Boolean);
        const unknown = names.filter((n) => !(SECTIONS as readonly string[]).includes(n));
        if (names.length === 0 || unknown.length > 0) {
          throw new RangeError(`--only: "${unknown.join(',') || ''}" is not a section; choose from ${SECTIONS.join(', ')}`);
        }
        o.sections = names as Section[];
        break;
      }
      default:
        throw new RangeError(`unknown option "${arg}"\n${USAGE}`);
    }
  }
  return o;
}

export interface Timing {
  warmup: number;
  reps: number;
}

/** Repetitions per measurement: the user's, else 1 + 3 quick or 2 + 10 full. */
export function timingFor(o: Pick<BenchOptions, 'quick' | 'reps' | 'warmup'>): Timing {
  return { warmup: o.warmup ?? (o.quick ? 1 : 2), reps: o.reps ?? (o.quick ? 3 : 10) };
}

/** One benchmarked weight shape: y (M, N) = x (M, K) · Wᵀ with W [N, K] as nn.Linear stores it. */
export interface LinearCase {
  name: string;
  M: number;
  K: number;
  N: number;
}

/** The model shapes of the matmul and NF4 tables (K = in features, N = out features). */
export const MODEL_LINEARS: readonly Omit<LinearCase, 'M'>[] = [
  { name: 'GPT-2 c_attn', K: 768, N: 2304 },
  { name: 'Qwen2.5-0.5B MLP up', K: 896, N: 4864 },
  { name: '1B MLP up (Llama-3.2-1B)', K: 2048, N: 8192 },
];

export interface LinearPlan {
  cases: LinearCase[];
  /** Shapes left out, with why, to print under the table. */
  skipped: string[];
}

/** Full runs: M = 512 tokens at every shape. Quick: M = 64, and on a CPU driver the 1B shape is left out (one
 *  product of it takes tens of seconds on lavapipe). */
export function linearPlan(quick: boolean, isCpu: boolean): LinearPlan {
  const M = quick ? 64 : 512;
  const cases: LinearCase[] = [];
  const skipped: string[] = [];
  for (const s of MODEL_LINEARS) {
    if (quick && isCpu && s.K * s.N > 8_000_000) {
      skipped.push(`${s.name} (${M}×${s.K}×${s.N}): left out by --quick on a CPU driver`);
      continue;
    }
    cases.push({ ...s, M });
  }
  return { cases, skipped };
}

export interface LoraCase {
  name: string;
  T: number;
  inFeatures: number;
  outFeatures: number;
  r: number;
  /** GPT-2's Conv1D stores W as [in, out]. */
  conv1d: boolean;
}

/** GPT-2's c_attn (Conv1D 768→2304) and Qwen2.5-0.5B's MLP up projection (896→4864), at r = 8 and 16; T = 512
 *  tokens, 32 with --quick (forward + backward is about three products of the layer's size). */
export function loraPlan(quick: boolean): LoraCase[] {
  const T = quick ? 32 : 512;
  const layers = [
    { name: 'GPT-2 c_attn', inFeatures: 768, outFeatures: 2304, conv1d: true },
    { name: 'Qwen2.5-0.5B MLP up', inFeatures: 896, outFeatures: 4864, conv1d: false },
  ];
  return layers.flatMap((l) => [8, 16].map((r) => ({ ...l, T, r })));
}

export type TrainingMethod = 'lora' | 'qlora';

export interface TrainingCase {
  name: string;
  /** A committed tiny model under tests/fixtures/models, or random weights at a real model's dimensions. */
  source: { fixture: string } | { random: 'gpt2-small' | 'qwen2.5-0.5b' };
  /** Rows per optimizer step (no gradient accumulation) and tokens per row. */
  batch: number;
  seqLen: number;
  /** Each method is one row of the table: LoRA over f32 weights, QLoRA over NF4 weights. */
  methods: TrainingMethod[];
}

export interface TrainingPlan {
  cases: TrainingCase[];
  skipped: string[];
}

/** The configuration of the training table, the same for us and for the PyTorch + PEFT peer (issue 10). */
export const TRAINING_LORA = { rank: 16, alpha: 32, targets: 'all-linear', maxGradNorm: 1, lr: 1e-4 } as const;

/** The real-sized cases' default batch × tokens: the PyTorch + PEFT comparison's. */
export const TRAINING_SHAPE = { batch: 4, seqLen: 512 } as const;

/** Training steps on the fixtures (every mode; batch 4 × 32 tokens quick, 4 × 64 full), and on GPT-2-small-sized
 *  and Qwen2.5-0.5B-sized random weights (4 × 512 tokens, or `o.shape`) in full runs on a real GPU, or wherever
 *  `o.large` asks for them (one step of GPT-2 small at 4 × 512 tokens is many minutes on a CPU driver). LoRA and
 *  QLoRA for every model. */
export function trainingPlan(quick: boolean, isCpu: boolean, o: { large?: boolean; shape?: { batch: number; seqLen: number } } = {}): TrainingPlan {
  const seqLen = quick ? 32 : 64;
  const methods: TrainingMethod[] = ['lora', 'qlora'];
  const cases: TrainingCase[] = [
    { name: 'fixture gpt2 (tiny)', source: { fixture: 'gpt2' }, batch: 4, seqLen, methods },
    { name: 'fixture qwen2 (tiny)', source: { fixture: 'qwen2' }, batch: 4, seqLen, methods },
  ];
  const skipped: string[] = [];
  const { batch, seqLen: largeLen } = o.shape ?? TRAINING_SHAPE;
  const large: TrainingCase[] = [
    { name: 'GPT-2 small, random weights', source: { random: 'gpt2-small' }, batch, seqLen: largeLen, methods },
    { name: 'Qwen2.5-0.5B, random weights', source: { random: 'qwen2.5-0.5b' }, batch, seqLen: largeLen, methods },
  ];
  for (const c of large) {
    if ((quick || isCpu) && !o.large) {
      skipped.push(`${c.name} (${c.batch} × ${c.seqLen} tokens): ${quick ? 'left out by --quick' : 'left out on a CPU driver'} (--train-large to include)`);
    } else cases.push(c);
  }
  return { cases, skipped };
}

/** Untimed and timed steps of the training table: the user's --warmup/--reps, else 2 + 5 (1 + 3 with --quick),
 *  fewer than the kernels' 10 because a real-sized step takes seconds on today's engine. */
export function trainingTiming(o: Pick<BenchOptions, 'quick' | 'reps' | 'warmup'>): Timing {
  return { warmup: o.warmup ?? (o.quick ? 1 : 2), reps: o.reps ?? (o.quick ? 3 : 5) };
}
