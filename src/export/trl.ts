// "Export for a GPU cluster" / `lora-studio export-trl`: the same run on TRL + accelerate, as a folder of files
// (OutputFile, as the merged-model and GGUF downloads stream them):
//
//   run.json                     model id, the TrainConfig, the PEFT method (trl-method.ts), row and token counts
//   train.py                     TRL SFTTrainer/SFTConfig + PEFT (src/export/trl-train.py, copied unchanged)
//   data/train.jsonl             {"input_ids", "labels"} per training row, exactly the rows our trainer gets (the
//                                project's data pipeline: chat template, prompt masking, truncation, eval split)
//   data/eval.jsonl              the held-out rows, same shape (absent without an eval set)
//   data/train.source.jsonl      the original JSONL line of each row, same order (absent when the source is gone)
//   data/eval.source.jsonl
//   accelerate/ddp.yaml, fsdp.yaml, deepspeed_zero2.yaml, deepspeed_zero3.yaml
//   requirements.txt, README.md
//
// Tested: train.py on CPU and as 2-process DDP (accelerate launch --cpu) in the reference Python environment
// (src/export/trl-live.gpu.test.ts); FSDP, DeepSpeed and bitsandbytes only parsed, and the README says so.
import type { DatasetRow } from '../data/index.ts';
import { trainedTokenCount } from '../data/index.ts';
import type { ModelConfig } from '../model/config.ts';
import type { TrainConfig } from '../train/config.ts';
import type { OutputFile } from '../train/merge.ts';
import { peftMethodPlan, type PeftMethodPlan } from './trl-method.ts';
import TRAIN_PY from './trl-train.py?raw';

/** The versions train.py is written for and tested with (requirements.txt pins them). */
export const TRL_REQUIREMENTS = {
  trl: '1.13.0',
  peft: '0.21.0',
  transformers: '5.17.0',
  accelerate: '1.15.0',
  datasets: '5.0.1',
} as const;

export const TRL_RESULT_FILE = 'lora_studio_result.json';

export interface TrlExportInput {
  /** What train.py loads by default: a Hub id, or a folder path (train.py --model overrides it). */
  modelId: string;
  /** Set when modelId is only a name (a model the studio loaded from a folder or its own bundle): where the weights
   *  must come from, said in the README. */
  modelNote?: string;
  model: ModelConfig;
  config: TrainConfig;
  /** adapter_config.json's target_modules for this run ("all-linear", names, or full module paths). */
  targetModules: string | string[];
  /** The rows the trainer trains on and evaluates, as the project's data pipeline made them. */
  train: readonly DatasetRow[];
  eval: readonly DatasetRow[];
  /** The original lines of the train and eval rows by 1-based line number (each set in its own file's numbering);
   *  null when the source cannot be read again. */
  sourceLines: { train: ReadonlyMap<number, string>; eval: ReadonlyMap<number, string> } | null;
  /** The source file's name and detected format, for run.json and the README. */
  source: { fileName: string; format: string | null };
  /** The run's name (the studio's) or the output folder's. */
  name: string;
}

export interface TrlRunJson {
  format: 'lora-studio-trl/1';
  name: string;
  model: { id: string; model_type: string; note?: string };
  config: TrainConfig;
  method: PeftMethodPlan;
  data: {
    source: string;
    source_format: string | null;
    train_rows: number;
    eval_rows: number;
    train_tokens: number;
    eval_tokens: number;
    max_length: number;
    train_on_prompt: boolean;
  };
  /** Optimizer steps of the run on one process (world size 1); N processes take N rows per micro-batch step. */
  steps_one_process: number;
  requirements: typeof TRL_REQUIREMENTS;
}

/** The export's files, in the order they are written. */
export function trlExportFiles(input: TrlExportInput): OutputFile[] {
  const run = trlRunJson(input);
  const files: OutputFile[] = [
    textFile('run.json', `${JSON.stringify(run, null, 2)}\n`),
    textFile('train.py', TRAIN_PY),
    rowsFile('data/train.jsonl', input.train),
  ];
  if (input.eval.length) files.push(rowsFile('data/eval.jsonl', input.eval));
  if (input.sourceLines) {
    files.push(sourceFile('data/train.source.jsonl', input.train, input.sourceLines.train));
    if (input.eval.length) files.push(sourceFile('data/eval.source.jsonl', input.eval, input.sourceLines.eval));
  }
  for (const [name, config] of Object.entries(accelerateConfigs())) files.push(textFile(`accelerate/${name}.yaml`, yaml(config)));
  files.push(textFile('requirements.txt', requirementsTxt(run.method)));
  files.push(textFile('README.md', trlReadme(run, input.sourceLines !== null)));
  return files;
}

export function trlRunJson(input: TrlExportInput): TrlRunJson {
  const { config } = input;
  const batches = Math.ceil(input.train.length / config.batchSize);
  return {
    format: 'lora-studio-trl/1',
    name: input.name,
    model: { id: input.modelId, model_type: input.model.modelType, ...(input.modelNote ? { note: input.modelNote } : {}) },
    config,
    method: peftMethodPlan(config, input.model, input.targetModules),
    data: {
      source: input.source.fileName,
      source_format: input.source.format,
      train_rows: input.train.length,
      eval_rows: input.eval.length,
      train_tokens: input.train.reduce((s, r) => s + trainedTokenCount(r), 0),
      eval_tokens: input.eval.reduce((s, r) => s + trainedTokenCount(r), 0),
      max_length: config.maxLength,
      train_on_prompt: config.trainOnPrompt,
    },
    steps_one_process: config.maxSteps ?? config.epochs * Math.ceil(batches / config.gradAccum),
    requirements: TRL_REQUIREMENTS,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Files

const encoder = new TextEncoder();

function textFile(path: string, text: string): OutputFile {
  const bytes = encoder.encode(text);
  return { path, size: bytes.length, async *chunks() { yield bytes; } };
}

/** Lines encoded in pieces of about 1 MiB (the size must be known before writing, so they are held). */
function linesFile(path: string, lines: Iterable<string>): OutputFile {
  const pieces: Uint8Array[] = [];
  let pending: string[] = [];
  let pendingChars = 0;
  const flush = () => {
    if (pending.length) pieces.push(encoder.encode(pending.join('')));
    pending = [];
    pendingChars = 0;
  };
  for (const line of lines) {
    pending.push(`${line}\n`);
    pendingChars += line.length + 1;
    if (pendingChars >= 1 << 20) flush();
  }
  flush();
  const size = pieces.reduce((s, p) => s + p.length, 0);
  return { path, size, async *chunks() { yield* pieces; } };
}

/** One {"input_ids", "labels"} line per row: what `datasets` loads and TRL trains on as it is (labels kept). */
export function rowLine(row: { input_ids: ArrayLike<number>; labels: ArrayLike<number> }): string {
  return `{"input_ids":[${Array.from(row.input_ids).join(',')}],"labels":[${Array.from(row.labels).join(',')}]}`;
}

function rowsFile(path: string, rows: readonly DatasetRow[]): OutputFile {
  return linesFile(path, (function* () { for (const r of rows) yield rowLine(r); })());
}

function sourceFile(path: string, rows: readonly DatasetRow[], lines: ReadonlyMap<number, string>): OutputFile {
  return linesFile(path, (function* () {
    for (const r of rows) {
      const text = lines.get(r.line);
      if (text === undefined) throw new Error(`${path}: the source has no line ${r.line} (was the file changed since it was read?)`);
      yield text.trim();
    }
  })());
}

// ---------------------------------------------------------------------------------------------------------------
// accelerate configs: TRL's own (trl/accelerate_configs, trl 1.13) with the run's process count left at 8, the
// usual node; `accelerate launch --num_processes N` overrides it.

type YamlValue = string | number | boolean | null | { [key: string]: YamlValue };

const COMMON = {
  compute_environment: 'LOCAL_MACHINE',
  debug: false,
  downcast_bf16: 'no',
  machine_rank: 0,
  main_training_function: 'main',
  mixed_precision: 'bf16',
  num_machines: 1,
  num_processes: 8,
  rdzv_backend: 'static',
  same_network: true,
  use_cpu: false,
};

export const ACCELERATE_CONFIGS = ['ddp', 'fsdp', 'deepspeed_zero2', 'deepspeed_zero3'] as const;

export function accelerateConfigs(): Record<(typeof ACCELERATE_CONFIGS)[number], Record<string, YamlValue>> {
  const deepspeed = (stage: 2 | 3) => ({
    ...COMMON,
    distributed_type: 'DEEPSPEED',
    deepspeed_config: {
      deepspeed_multinode_launcher: 'standard',
      offload_optimizer_device: 'none',
      offload_param_device: 'none',
      zero3_init_flag: stage === 3,
      ...(stage === 3 ? { zero3_save_16bit_model: true } : {}),
      zero_stage: stage,
    },
  });
  return {
    ddp: { ...COMMON, distributed_type: 'MULTI_GPU', gpu_ids: 'all' },
    fsdp: {
      ...COMMON,
      distributed_type: 'FSDP',
      fsdp_config: {
        fsdp_activation_checkpointing: false,
        fsdp_auto_wrap_policy: 'TRANSFORMER_BASED_WRAP',
        fsdp_cpu_ram_efficient_loading: true,
        fsdp_offload_params: false,
        fsdp_reshard_after_forward: true,
        fsdp_state_dict_type: 'FULL_STATE_DICT',
        fsdp_version: 2,
      },
    },
    deepspeed_zero2: deepspeed(2),
    deepspeed_zero3: deepspeed(3),
  };
}

/** Block YAML of a two-level mapping; every string single-quoted (so 'no' stays a string). */
export function yaml(value: Record<string, YamlValue>, indent = ''): string {
  const keys = Object.keys(value).sort();
  return keys
    .map((k) => {
      const v = value[k];
      if (v !== null && typeof v === 'object') return `${indent}${k}:\n${yaml(v, `${indent}  `)}`;
      const text = typeof v === 'string' ? `'${v.replace(/'/g, "''")}'` : v === null ? 'null' : String(v);
      return `${indent}${k}: ${text}\n`;
    })
    .join('');
}

// ---------------------------------------------------------------------------------------------------------------
// requirements.txt and README.md

function requirementsTxt(method: PeftMethodPlan): string {
  const pins = Object.entries(TRL_REQUIREMENTS).map(([p, v]) => `${p}==${v}`);
  return [
    '# Tested with these versions (lora-studio export-trl). torch: the build for your CUDA, from pytorch.org.',
    'torch',
    ...pins,
    method.quantization ? 'bitsandbytes  # QLoRA: NF4 base (a CUDA GPU; untested here)' : '# bitsandbytes  (QLoRA runs only)',
    '# deepspeed  (only for accelerate/deepspeed_zero*.yaml; untested here)',
    '',
  ].join('\n');
}

function trlReadme(run: TrlRunJson, withSource: boolean): string {
  const c = run.config;
  const m = run.method;
  const lora = m.lora;
  const targets = lora ? (Array.isArray(lora.target_modules) ? lora.target_modules.join(', ') : lora.target_modules) : '';
  const method = lora
    ? `${m.method}${m.quantization ? ` (4-bit NF4 base${m.quantization.bnb_4bit_use_double_quant ? ', double quantization' : ''}, bitsandbytes)` : ''}, r ${lora.r}, alpha ${lora.lora_alpha}${lora.use_rslora ? ' (rsLoRA: scale alpha/sqrt(r))' : ''}, dropout ${lora.lora_dropout}, targets ${targets}${m.loraplus_lr_ratio ? `, LoRA+ ratio ${m.loraplus_lr_ratio}` : ''}`
    : 'full fine-tuning (no PEFT: every weight trains; weight decay on matrices only, as the studio)';
  const output = lora
    ? `\`OUTPUT_DIR/adapter_config.json\` and \`adapter_model.safetensors\`: a PEFT adapter. Import it into the studio (Runs →
Import adapter: the output folder, or a .zip of its two adapter files without the checkpoint-* folders; or the CLI's
\`--adapter\`) to see it in Compare beside the browser runs.`
    : `\`OUTPUT_DIR/model.safetensors\`, \`config.json\` and the tokenizer files: the whole fine-tuned model, which
\`from_pretrained\` (and the studio's CLI: \`lora-studio eval --model OUTPUT_DIR\`) loads as it is. Under FSDP or
ZeRO-3, save with accelerate's full state dict.`;
  const steps = c.maxSteps !== null ? `${c.maxSteps} steps` : `${c.epochs} epoch(s), ${run.steps_one_process} steps on one process`;
  const warmup = c.warmupSteps !== null ? `${c.warmupSteps} warmup steps` : `warmup ${c.warmupRatio} of the steps`;
  return `# ${run.name}: the studio's run on TRL + accelerate

Written by lora-studio (\`lora-studio export-trl\` or the studio's "Export for a GPU cluster"). The same model, data
and hyperparameters as the studio's run, trained by TRL's \`SFTTrainer\`${lora ? ' with PEFT' : ''} on as many GPUs as you have.

- Model: \`${run.model.id}\` (${run.model.model_type}); \`--model\` points train.py at another copy of it.${run.model.note ? ` **${run.model.note}**` : ''}
- Method: ${method}.
- Training: lr ${c.lr}, ${c.schedule} schedule, ${warmup}, batch ${c.batchSize} per process × ${c.gradAccum} accumulation, ${steps}, seed ${c.seed}, max length ${c.maxLength}${c.packing ? ', packing' : ''}.
- Data: ${run.data.train_rows} training rows (${run.data.train_tokens} trained tokens)${run.data.eval_rows ? `, ${run.data.eval_rows} eval rows (${run.data.eval_tokens} tokens)` : ', no eval set'} from ${run.data.source}.

## Run it

\`\`\`bash
pip install -r requirements.txt
python train.py                                   # one machine: one GPU, or the CPU
accelerate launch --config_file accelerate/ddp.yaml train.py                      # DDP, 8 GPUs on one node
accelerate launch --config_file accelerate/ddp.yaml --num_processes 4 train.py    # another GPU count
python train.py --max-steps 20 --output-dir runs/try1                             # overrides
\`\`\`

Options: \`--max-steps N\` (instead of the run's steps or epochs), \`--output-dir DIR\` (default \`./output\`),
\`--model ID_OR_DIR\`, \`--precision auto|bf16|fp16|fp32\` (auto: bf16 on a GPU that has it, fp16 on other GPUs, fp32 on
the CPU; the accelerate configs say bf16, so set their \`mixed_precision\` too when you choose another), and
\`--gradient-checkpointing\`. \`python train.py --eval-only [--adapter DIR]\` prints the evaluation loss of the base
model (or of a PEFT adapter, e.g. the studio's own download) and trains nothing.

With N processes every optimizer step sees N × ${c.batchSize} × ${c.gradAccum} rows, so the run takes about 1/N of the steps; the
learning rate is not rescaled. Divide the accumulation (\`gradient_accumulation_steps\` in train.py) by N to keep the
studio's effective batch.

## What comes out

${output} \`OUTPUT_DIR/${TRL_RESULT_FILE}\`:
the evaluation loss before and after training and the training losses. Its \`token_loss\` is the studio's eval loss
(every trained token of the eval set weighted equally); Trainer's own \`eval_loss\` is a mean of per-batch means.

## The data

\`data/train.jsonl\`${run.data.eval_rows ? ' and `data/eval.jsonl`' : ''} hold the rows exactly as the studio trained on them:
\`input_ids\` after the chat template, \`labels\` with -100 where no loss is taken (prompts, unless trained on), already
truncated to ${c.maxLength} tokens. TRL uses a dataset with \`input_ids\` and \`labels\` as it is (no template or masking
of its own). ${withSource ? '`data/*.source.jsonl` hold the original JSONL line of each row, in the same order.' : 'The original lines were not available when this was exported.'}

## Tested and untested

- Tested (lora-studio's test suite, on the CPU, with the versions in requirements.txt): \`python train.py\`, and DDP as
  \`accelerate launch --cpu --num_processes 2 train.py\`; before training the evaluation loss equals the studio's on
  the same rows; the studio's adapter evaluated here gives the studio's loss; TRL's adapter imports back into the
  studio and evaluates there to TRL's loss.
- **Untested** (no GPU cluster where it was built): \`accelerate/fsdp.yaml\`, \`accelerate/deepspeed_zero2.yaml\`,
  \`accelerate/deepspeed_zero3.yaml\` (their keys are checked against accelerate's config loader) and the QLoRA path
  (bitsandbytes). With FSDP or ZeRO-3 and QLoRA, bitsandbytes needs \`bnb_4bit_quant_storage\` equal to the
  precision's dtype; LoRA+ under FSDP needs the optimizer built after wrapping. Packing needs a FlashAttention
  kernel for rows to stay apart.
`;
}
