// The typed message API between the UI and the engine worker. The worker alone owns the GPU device; the UI only
// sends these requests and receives these events. Every request carries an id; events that answer one echo it.
import type { GpuAdapterDescription, GpuLimits, WantedFeature } from '../gpu/device.ts';
import type { ModelDims } from '../model/memory.ts';
import type { TrainConfig } from './config.ts';
import type { StepProfile } from '../gpu/profiler.ts';

export interface GpuReport {
  adapter: GpuAdapterDescription;
  limits: GpuLimits;
  features: WantedFeature[];
}

/** Where a model comes from. */
export type ModelSource =
  | { kind: 'bundled'; path: string } // a folder under public/, e.g. models/demo-llama
  | { kind: 'hub'; repo: string; revision?: string; token?: string; baseUrl?: string }
  | { kind: 'folder'; files: File[] }; // a picked or dropped local folder (webkitRelativePath kept)

/** Where an imported PEFT adapter comes from. */
export type AdapterSource =
  | { kind: 'zip'; file: File } // a .zip holding adapter_config.json and adapter_model.safetensors
  /** The files of the adapter's folder (the page keeps that folder's only: a worker sees names, not paths). */
  | { kind: 'folder'; files: File[]; name: string }
  | { kind: 'hub'; repo: string; revision?: string; token?: string; baseUrl?: string };

/** Where a merged model goes: a folder the user picked (File System Access API; each file streamed to disk), or one
 *  .zip handed back to the page (small models only, see worker/merge.ts). */
export type MergeTarget = { kind: 'directory'; handle: FileSystemDirectoryHandle } | { kind: 'zip' };

export interface ModelSummary {
  name: string;
  modelType: string;
  parameters: number;
  layers: number;
  hidden: number;
  vocab: number;
  maxPositions: number;
  dtype: 'f32' | 'f16';
  hasChatTemplate: boolean;
  /** PEFT's default and all linear module names, for the target picker. */
  defaultTargets: string[];
  linearModules: string[];
  weightBytes: number;
  /** Architecture numbers for the Train screen's memory estimate and trainable-parameter count. */
  dims?: ModelDims;
  /** Every weight the engine holds, as full fine-tuning trains them (methods/full: every linear layer's tensors and
   *  the base tensors; a tied head once). */
  fullParameters?: number;
}

export interface DatasetSummary {
  fileName: string;
  format: string | null;
  rows: number;
  skipped: number;
  truncated: number;
  trainedTokens: number;
  totalTokens: number;
  errors: { line: number; reason: string }[];
  /** Token-length histogram: bucket upper bounds and counts. */
  histogram: { edges: number[]; counts: number[] };
  /** A few rows for the preview: each token's text and whether it is trained. */
  samples: { tokens: { text: string; trained: boolean }[] }[];
}

export interface StepMetrics {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  ms: number;
  memBytes: number;
  peakBytes: number;
  evalLoss?: number;
  /** The step's profile, when the trainer was given a profiler (never stored in a run's history). */
  profile?: StepProfile;
}

/** Generation settings beyond the first ones (all optional, so older senders still type-check). */
export interface GenerateExtras {
  /** Sample among the k most likely tokens (0 = all). */
  topK?: number;
  /** Sample within the smallest set of tokens whose probability reaches p (1 = all). */
  topP?: number;
  /** Strings that end the text (cut before them). */
  stop?: string[];
  /** The sampling RNG's seed; random when omitted. */
  seed?: number;
}

/** How a generation ended ('token' events carry the text in batches; 'generated' the whole of it). */
export interface GeneratedExtras {
  stopReason?: 'eos' | 'length' | 'stop' | 'aborted';
  promptTokens?: number;
  newTokens?: number;
  seconds?: number;
  seed?: number;
}

export type EngineRequest =
  | { type: 'init' }
  | { type: 'load-model'; id: string; source: ModelSource; quant?: 'none' | 'nf4' }
  | { type: 'load-dataset'; id: string; file: File | { url: string; name: string }; maxLength: number; trainOnPrompt: boolean; format?: string }
  | {
      type: 'start-training';
      id: string;
      runId: string;
      config: TrainConfig;
      samplePrompt?: string;
      /** Resume runId from its last checkpoint (its own config and name; `config` is ignored). */
      resume?: boolean;
      /** The dataset (its load request id) to train on; the latest loaded when omitted. */
      datasetId?: string;
      name?: string;
      /** A sample for the fixed prompt every this many steps (and at the end). */
      sampleEvery?: number;
      /** Continue from this saved run's adapter: the LoRA starts from its A and B (rank, alpha and targets must
       *  match it). Ignored when resuming, whose checkpoint holds the params. */
      initFromRunId?: string;
    }
  | { type: 'pause'; runId: string }
  | { type: 'resume'; runId: string }
  | { type: 'stop'; runId: string }
  | { type: 'generate'; id: string; prompt: string; adapterRunId?: string; maxNewTokens: number; temperature: number; chat: boolean } & GenerateExtras
  /** Ends generation `id` after its current token (it answers 'generated' with stopReason 'aborted'). */
  | { type: 'abort-generation'; id: string }
  /** The token-weighted loss (the loss contract) of the base model, or with a run's adapter, on a dataset's eval split:
   *  the rows a run with these settings holds out (cut to maxLength, then splitEval(rows, evalSplit, seed)), batched as
   *  its evaluations are; all rows when evalSplit is 0. */
  | { type: 'evaluate'; id: string; adapterRunId?: string; datasetId?: string; evalSplit: number; seed: number; batchSize: number; maxLength: number }
  | { type: 'export-adapter'; id: string; runId: string; as: 'zip' | 'safetensors' }
  /** Checks a PEFT adapter against the loaded model and saves it as run `runId` (status 'imported'). */
  | { type: 'import-adapter'; id: string; runId: string; source: AdapterSource; name?: string }
  /** The loaded base model with run `runId`'s adapter folded in, streamed to `to` (progress stage 'merge'). */
  | { type: 'merge-model'; id: string; runId: string; dtype: 'f16' | 'f32'; to: MergeTarget; /** A GGUF (model.gguf + an Ollama Modelfile, src/export) of this type instead of safetensors. */ gguf?: 'f32' | 'f16' | 'q8_0'; /** The run as a folder for TRL + accelerate (src/export/trl.ts) instead of a merged model. */ trl?: boolean }
  /** Ends merge `id` (it answers 'error' with "cancelled"; files written so far are left as they are). */
  /** The Train screen's "Export for a GPU cluster": `config` over the loaded model and dataset as the TRL + accelerate
   *  folder (src/export/trl.ts), before any training; answered like a merge ('progress', then 'merged'). */
  | { type: 'export-trl'; id: string; config: TrainConfig; name: string; datasetId?: string; to: MergeTarget }
  | { type: 'abort-merge'; id: string }
  /** Debug mode (the page's URL has ?debug=1): until it is on, 'debug-lose-device' is refused. */
  | { type: 'debug-mode'; enabled: boolean }
  /** Destroys the GPU device as a driver reset would lose it, so the recovery path runs (tests, ?debug=1 only). */
  | { type: 'debug-lose-device' };

export type EngineEvent =
  | { type: 'gpu-ready'; gpu: GpuReport }
  | { type: 'gpu-unavailable'; message: string }
  /** The device is gone for good (or was destroyed on purpose): the model and datasets went with it. */
  | { type: 'gpu-lost'; reason: string; message: string }
  /** The device was lost and the engine is getting a new one (see worker/recovery.ts): model, datasets and the run
   *  are kept; `message` says what it is doing now (asking for a device, loading the model again). */
  | { type: 'gpu-recovering'; reason: string; message: string }
  /** A new device is up, the model is reloaded and the run (if any) resumed; `message` says from which step. */
  | { type: 'gpu-recovered'; gpu: GpuReport; message: string }
  | { type: 'error'; id?: string; message: string }
  | { type: 'progress'; id: string; stage: string; done: number; total: number }
  | { type: 'model-loaded'; id: string; model: ModelSummary }
  /** The loaded model (load request `id`) changed how it is held, not what it is: a full fine-tuning run loaded its
   *  weights again in f32 (worker/full-weights.ts). Its tokenizer and the datasets tokenized for it still hold. */
  | { type: 'model-updated'; id: string; model: ModelSummary; message: string }
  | { type: 'dataset-loaded'; id: string; dataset: DatasetSummary }
  | { type: 'metrics'; runId: string; steps: StepMetrics[]; totalSteps: number }
  | {
      type: 'run-started';
      id: string;
      runId: string;
      name: string;
      totalSteps: number;
      /** PEFT's print_trainable_parameters line. */
      trainable: string;
      trainableParams: number;
      /** The checkpoint's step when resumed. */
      resumedFrom: number | null;
      trainRows: number;
      evalRows: number;
      config: TrainConfig;
    }
  | { type: 'sample'; runId: string; step: number; text: string; prompt?: string }
  | { type: 'run-state'; runId: string; state: 'running' | 'paused' | 'stopped' | 'finished' | 'failed'; message?: string }
  | { type: 'token'; id: string; text: string }
  | { type: 'generated'; id: string; text: string } & GeneratedExtras
  | { type: 'evaluated'; id: string; adapterRunId?: string; loss: number; tokens: number; rows: number }
  | { type: 'adapter'; id: string; runId: string; fileName: string; bytes: Uint8Array }
  | { type: 'adapter-imported'; id: string; runId: string; name: string; modules: number; warnings: string[]; /** "LoRA", "IA³" */ method?: string }
  /** A merge is done: into `folder` of the picked directory, or as `zip` to save. */
  | { type: 'merged'; id: string; runId: string; files: { path: string; size: number }[]; folder?: string; zip?: { fileName: string; blob: Blob } };
