// Node-only bridge to the real transformers (scripts/model_check.py in the reference venv): asks
// AutoModelForCausalLM.from_pretrained what it makes of a full model folder we wrote (a fully fine-tuned export, a
// merged model) — which keys it missed, which it did not expect, which had the wrong shape, the file's dtype — and
// its loss on given rows under the issue-4 contract, to compare with our eval loss on the same rows. Never needed by
// `npm test` on a machine without Python: callers skip when referencePython() is null, except under CI=true, where
// its absence must fail (see ia3-golden.gpu.test.ts).

import { referencePython, runReferenceScript, type PeftCheckRow } from './peft-check.ts';

export { referencePython };

export type ModelCheckRow = PeftCheckRow;

export interface ModelCheckJob {
  /** A model folder: config.json and *.safetensors. */
  model: string;
  /** Another model folder (e.g. tests/fixtures/golden/train_full_<fixture>_model), run on the same rows. */
  compare?: string;
  rows: ModelCheckRow[];
}

export interface ModelCheckLoad {
  /** Model weights the folder did not provide. A clean folder has none, or only a tied `lm_head.weight`. */
  missing: string[];
  /** Folder tensors the model has no place for. */
  unexpected: string[];
  /** Wrong-shaped tensors, as "key: file [..], model [..]" (the model keeps its init there). */
  mismatched: string[];
  /** The safetensors dtype(s) of the folder's tensors: "F32", "F16", "BF16", several joined by ",". */
  dtype: string;
  /** How many tensors the folder's *.safetensors hold. */
  file_tensors: number;
}

export interface ModelCheckResult {
  load: ModelCheckLoad;
  /** The contract loss over all rows in float64; null when no position is trained. */
  loss: number | null;
  tokens: number;
  /** Only with `compare`. */
  compare?: { loss: number | null; tokens: number };
  /** Only with `compare`: the largest |logit difference| over every row and position. */
  max_abs_logit_diff?: number;
}

/** Runs scripts/model_check.py on `jobs` (one Python start for all of them). */
export function runModelCheck(jobs: ModelCheckJob[], python: string | null = referencePython()): Promise<ModelCheckResult[]> {
  return runReferenceScript<ModelCheckResult[]>('model_check.py', jobs, python);
}
