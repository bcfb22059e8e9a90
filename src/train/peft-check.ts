// Node-only bridge to the real PEFT (scripts/peft_check.py in the reference venv): writes our adapters and merged
// models to disk and asks PeftModel.from_pretrained what it makes of them. Used by src/train/peft-live.test.ts and
// by whichever test compares PEFT's loss with our eval loss (pass the same rows to runPeftCheck and to the eval, then
// compare result.adapter.loss with ours). Never needed by `npm test` on a machine without Python.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { OutputFile } from './merge.ts';
import type { AdapterFiles } from './peft.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const REFERENCE_PYTHON = join(ROOT, '.venv-ref', 'bin', 'python');

/** The reference venv's python, or null when it is not installed (the live tests then skip, saying why). */
export function referencePython(): string | null {
  return existsSync(REFERENCE_PYTHON) ? REFERENCE_PYTHON : null;
}

export interface PeftCheckRow {
  input_ids: number[];
  /** Aligned with input_ids, −100 = ignored; defaults to input_ids. */
  labels?: number[];
}

export interface PeftCheckJob {
  /** The base model folder. */
  base: string;
  /** A folder with adapter_config.json and adapter_model.safetensors. */
  adapter: string;
  /** A merged model folder (our mergeModel output), compared with PEFT's own merge. */
  merged?: string;
  rows: PeftCheckRow[];
  /** Prompt-learning adapters: PEFT's greedy generation from these ids (PeftCheckResult.generated). */
  generate?: { prompt: number[]; max_new_tokens: number };
}

export interface LossResult {
  loss: number;
  tokens: number;
}

export interface PeftCheckResult {
  load: { file_tensors: number; lora_parameters: number; matched: number; missing: string[]; unexpected: string[]; mismatched: string[] };
  base: LossResult;
  adapter: LossResult;
  /** Absent for prompt-learning adapters (nothing merges). */
  peft_merged?: LossResult;
  merged?: LossResult;
  /** PEFT's greedy new tokens, when the job asked. */
  generated?: number[];
  max_abs_logit_diff: { adapter_vs_base: number; adapter_vs_peft_merged?: number; merged_vs_adapter?: number; merged_vs_peft_merged_f16?: number };
}

/** Runs scripts/peft_check.py on `jobs` (one Python start for all of them). */
export function runPeftCheck(jobs: PeftCheckJob[], python = referencePython()): Promise<PeftCheckResult[]> {
  return runReferenceScript<PeftCheckResult[]>('peft_check.py', jobs, python);
}

/** Runs scripts/<script> in the reference Python with `input` as JSON on stdin; its stdout parsed as JSON. Rejects
 *  when Python is missing, the script fails (with its stderr's end) or prints no JSON. */
export function runReferenceScript<T>(script: string, input: unknown, python: string | null = referencePython()): Promise<T> {
  if (!python) return Promise.reject(new Error(`no reference Python at ${REFERENCE_PYTHON} (see ../shared/REFERENCES.md)`));
  return new Promise((resolvePromise, reject) => {
    const child = spawn(python, [join(ROOT, 'scripts', script)], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited with ${code}:\n${stderr.slice(-4000)}`));
      try {
        resolvePromise(JSON.parse(stdout) as T);
      } catch (e) {
        reject(new Error(`${script} printed no JSON (${(e as Error).message}):\n${stdout.slice(0, 2000)}\n${stderr.slice(-2000)}`));
      }
    });
    child.stdin.end(JSON.stringify(input));
  });
}

/** Writes adapter_config.json and adapter_model.safetensors into `dir`. */
export async function writeAdapterFolder(dir: string, files: AdapterFiles): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
}

/** Streams output files (a merged model) into `dir`, chunk by chunk. */
export async function writeOutputFiles(dir: string, files: OutputFile[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const file of files) {
    const handle = await open(join(dir, file.path), 'w');
    try {
      for await (const chunk of file.chunks()) await handle.write(chunk);
    } finally {
      await handle.close();
    }
  }
}
