// What the engine worker holds between requests: the GPU engine, the kernel variants chosen for it, the loaded model
// (weights on the GPU, tokenizer, chat template) and the tokenized datasets. One module so the model, dataset,
// training and generation handlers share it without passing it around; only the worker imports it.
import type { Engine } from '../../gpu/engine.ts';
import type { Gpu } from '../../gpu/device.ts';
import type { TokenizedDataset } from '../../data/index.ts';
import type { ChatTemplate } from '../../model/chat-template.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { ModelFiles } from '../../model/checkpoint.ts';
import type { KernelChoice } from '../../model/runtime/linear.ts';
import type { Transformer } from '../../model/runtime/transformer.ts';
import type { HfTokenizer } from '../../model/tokenizer.ts';
import type { DatasetSummary, EngineEvent, EngineRequest, ModelSource, ModelSummary } from '../protocol.ts';

export interface LoadedModel {
  /** The request id that loaded it. */
  id: string;
  summary: ModelSummary;
  config: ModelConfig;
  /** Where the files are, for re-reading (e.g. the tokenizer files for an exported adapter's README). */
  files: ModelFiles;
  transformer: Transformer;
  /** null when the folder has no tokenizer.json: only pre-tokenized datasets work then. */
  tokenizer: HfTokenizer | null;
  template: ChatTemplate | null;
  quant: 'none' | 'nf4';
  /** Where it was loaded from: after a lost device the same model is loaded again from here (recovery.ts). */
  source: ModelSource;
}

export interface LoadedDataset {
  id: string;
  /** The model (its load id) whose tokenizer produced the ids. */
  modelId: string;
  data: TokenizedDataset;
  summary: DatasetSummary;
  /** The load's file and options, remembered with a run so it can be loaded again (train/resume-sources.ts). */
  request?: Pick<Extract<EngineRequest, { type: 'load-dataset' }>, 'file' | 'maxLength' | 'trainOnPrompt' | 'format'>;
}

export interface WorkerState {
  gpu: Gpu | null;
  engine: Engine | null;
  kernels: KernelChoice | null;
  model: LoadedModel | null;
  datasets: Map<string, LoadedDataset>;
}

export const state: WorkerState = { gpu: null, engine: null, kernels: null, model: null, datasets: new Map() };

/** A failure the user caused or can fix: its message is shown as it is. */
export class UserError extends Error {
  override name = 'UserError';
}

export function requireEngine(): Engine {
  if (!state.engine) throw new UserError('the GPU is not ready (no WebGPU device); reload the page');
  return state.engine;
}

export function requireModel(): LoadedModel {
  if (!state.model) throw new UserError('no model is loaded: pick one on the Models screen first');
  return state.model;
}

/** The dataset loaded by request `id`, or the latest one when `id` is omitted. */
export function requireDataset(id?: string): LoadedDataset {
  const found = id ? state.datasets.get(id) : [...state.datasets.values()].at(-1);
  if (!found) throw new UserError(id ? `dataset ${id} is not loaded` : 'no dataset is loaded: drop one on the Data screen first');
  return found;
}

/** The function the worker posts events with (replaced in tests). */
export type Post = (event: EngineEvent) => void;

/** The message of any error, for the user: never a stack trace. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
