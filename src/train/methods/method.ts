// What a training method is, as one folder (PEFT's tuners/<method>/ layout): config.ts, a TrainingMethod — its
// settings and their validation, the modules it wraps (through the one resolver, targets.ts), its trainable tensors
// as optimizer segments, its parameter and memory count, and the references and goldens that prove it — pure data
// the page can import; and runtime.ts, a MethodRuntime — how it attaches to the GPU model's layers. The registries
// (registry.ts, runtimes.ts) list them; registry.test.ts fails when a method lacks one of these.
import type { Engine } from '../../gpu/engine.ts';
import type { Recorder } from '../../gpu/kernel.ts';
import type { AdamwBuffers, AdamwLayout } from '../../gpu/kernels/adamw.ts';
import type { ModelConfig, ModelType } from '../../model/config.ts';
import type { GpuModel } from '../../model/runtime/gpu-model.ts';
import type { LinearModule } from '../../model/weights.ts';
import type { FieldError, TrainConfig } from '../config.ts';
import type { AdapterFiles } from '../peft.ts';
import type { MethodId } from './ids.ts';

/** One trainable tensor: a segment of the flat parameter buffer AdamW updates in one pass. */
export interface TrainableTensor {
  name: string;
  length: number;
  /** Multiplies the learning rate (LoRA+: B's ratio). */
  lrScale: number;
  /** Whether AdamW's weight decay applies (default true; full fine-tuning: matrices only, not norms and biases). */
  decay?: boolean;
  /** Not trained: the method's own state kept in the flat buffers (lrScale 0, no decay, its gradient always 0, so
   *  AdamW leaves it exactly as it is) so checkpoints, resume and the best-step copy carry it with the parameters
   *  (AdaLoRA's importance EMAs and rank mask). Not counted as a trainable parameter. */
  state?: boolean;
}

/** Where a run's trainable tensors start. */
export interface MethodInit {
  seed: number;
  /** The tokenizer's ids for a text, special tokens included (prompt tuning's TEXT init). */
  encode?: (text: string) => number[];
  /** Values for some tensors by segment name (golden runs, continuing from a saved adapter); the rest as the
   *  method initialises them. Every name must be one of the method's segments, with its length. */
  initial?: ReadonlyMap<string, Float32Array>;
}

/** The flat f32 buffers of a method's trainable tensors, with AdamW's moments and status (see adamw.wgsl), and the
 *  layout of its segments in them. */
export interface TrainableBuffers extends AdamwBuffers {
  layout: AdamwLayout;
}

/** A method attached to a loaded model: what the trainer drives, whatever the method. */
export interface AttachedMethod extends TrainableBuffers {
  readonly trainableParams: number;
  /** Sets each wrapped module's dropout seed for the step being recorded (module index → seed). */
  setDropoutSeeds(seedOf: (module: number) => number): void;
  /** Turns dropout off (evaluation never drops); returns the function that turns it back on. */
  suspendDropout(): () => void;
  /** Removes the method from the model's layers (the base model again) and frees its buffers. */
  detach(): void;
  /** Records what follows AdamW's update in the step's own submission (full fine-tuning: the forward's copies of the
   *  updated weights). `step`: the optimizer step being recorded, 1-based. */
  afterStep?(rec: Recorder, step: number): void;
  /** Records what goes between the backward and AdamW in the step's own submission: a method's own terms of the loss
   *  and the gradient (AdaLoRA's regulariser; `loss` is the step's [Σ loss, count], the gradients are the mean loss's). */
  beforeOptimizer?(rec: Recorder, step: number, loss: GPUBuffer): void;
  /** Called once the step `step` is done and its status read (its parameters final), before the next step is
   *  submitted: a method that decides on the host from what the step computed (AdaLoRA's budget step every deltaT
   *  steps, which reads the triplet scores back) does it here. */
  stepDone?(step: number): Promise<void>;
  /** The run's number of optimizer steps, once the trainer knows it (AdaLoRA's total_step defaults to it); throws a
   *  ConfigError when the method's settings do not fit it. Returns settings it resolved, which become part of the
   *  run's config (what checkpoints and the export see). */
  planSteps?(totalSteps: number): Partial<TrainConfig> | void;
  /** Called after `params` was overwritten from the host with `params` (a restored checkpoint): a method that
   *  initialises some tensors on the GPU at its first forward (DoRA's magnitudes) must leave the written values alone;
   *  one that keeps values derived from them (AdaLoRA's A_eff) writes them again. */
  paramsWritten?(params?: Float32Array): void;
}

/** What the memory estimate needs from a method over the modules it wraps (all layers). */
export interface MethodFootprint {
  /** Trainable parameters (each also has a gradient and two AdamW moments, all f32). */
  params: number;
  /** Extra f32 activations kept per token for the backward, summed over the wrapped modules. */
  activationsPerToken: number;
  /** Bytes of the method's own state besides its parameters (AdaLoRA: the state segments in all four flat buffers,
   *  A_eff, the scores); none when absent. */
  stateBytes?: number;
}

export interface TrainingMethod {
  id: MethodId;
  /** The Train screen's and the CLI's name, e.g. "LoRA". */
  label: string;
  /** One line: what it trains. */
  explanation: string;
  /** How to set it, from the article the product grew from (../shared/background/). */
  advice: string;
  /** adapter_config.json's peft_type; null for what PEFT does not save as an adapter. */
  peftType: string | null;
  /** The method a run continuing this method's saved adapter trains, where not this one: the adapter lacks part of
   *  what this method trains (P-tuning's holds the prompt encoder's output only, as PEFT saves it: prompt tuning). */
  continuesAs?: MethodId;
  /** What a run exports: a PEFT adapter (exportAdapter), or the whole model as a folder transformers loads (full
   *  fine-tuning: methods/full/model-folder.ts). */
  exports: 'adapter' | 'model';
  /** Wraps linear layers, so it trains over an NF4 base too (QLoRA is LoRA with quant nf4). */
  wrapsLinears: boolean;
  /** The TrainConfig fields that belong to this method (the Train screen shows only these). */
  settings: readonly (keyof TrainConfig)[];
  /** The modules wrapped when the target list is empty, per architecture (PEFT's mapping for the method). */
  defaultTargets: Readonly<Record<ModelType, readonly string[]>>;
  validate(c: TrainConfig): FieldError[];
  /** Its trainable tensors on one wrapped module. */
  tensors(m: LinearModule, c: TrainConfig): TrainableTensor[];
  /** Tensors of the base model itself that train besides the wrapped modules' (full fine-tuning: embeddings, norms,
   *  an untied head); none when absent. */
  baseTensors?(model: ModelConfig): TrainableTensor[];
  /** Its new trainable tensors that belong to no module (prompt tuning's virtual tokens), on a model of this shape. */
  ownTensors?(model: MethodModel, c: TrainConfig): TrainableTensor[];
  /** `model` is needed by a method with own tensors (prompt tuning); module-wrapping methods ignore it. */
  footprint(modules: readonly Pick<LinearModule, 'inFeatures' | 'outFeatures' | 'canonical'>[], c: TrainConfig, model?: MethodModel): MethodFootprint;
  /** adapter_config.json and adapter_model.safetensors as PEFT saves them for this method; refuses NaN or infinity. */
  exportAdapter(x: ExportInput): AdapterFiles;
  /** Proof, checked by registry.test.ts: files (from the repository root) that must exist. */
  proof: {
    /** The plain TypeScript reference of its forward and backward (float64). */
    reference: string;
    /** Golden runs against PEFT + transformers, and their tests. */
    goldens: readonly string[];
    /** The tests of its PEFT export and import (a live PeftModel.from_pretrained load among them). */
    exportImport: readonly string[];
    /** Its merge rule's test, or null where no merge exists. */
    merge: string | null;
  };
}

/** What a PEFT export is made from: the trained tensors of a run and where they belong. */
export interface ExportInput {
  /** Trained values by segment name (TrainableTensor.name), e.g. Trainer.trainedTensors(). */
  tensors: ReadonlyMap<string, Float32Array>;
  /** The wrapped modules, in forward order. */
  modules: readonly LinearModule[];
  /** adapter_config.json's target_modules (targets.ts). */
  targetModules: string | string[];
  config: TrainConfig;
  model: ModelConfig;
  /** base_model_name_or_path: the Hub repo id or the folder the base model was loaded from. */
  baseModel: string;
}

/** The GPU side of a method (kept apart so the page imports the TrainingMethod without the engine). */
export interface MethodRuntime {
  id: MethodId;
  /** Allocates the trainable tensors (initialised as the method's PEFT counterpart does) and wraps `modules`. */
  attach(e: Engine, model: GpuModel, c: TrainConfig, modules: readonly LinearModule[], init: MethodInit): AttachedMethod;
}

/** What a method's own tensors are sized by: the hidden size (prompt tuning, P-tuning); prefix tuning also needs the
 *  layers and the key/value heads' width (it throws without them). */
export type MethodModel = Pick<ModelConfig, 'hiddenSize'> & Partial<Pick<ModelConfig, 'numLayers' | 'numKvHeads' | 'headDim'>>;

/** Σ over modules of the method's tensor sizes, plus its own tensors' (given the model). */
export function countTrainable(method: TrainingMethod, modules: readonly LinearModule[], c: TrainConfig, model?: MethodModel): number {
  const own = model && method.ownTensors ? method.ownTensors(model, c).reduce((t, x) => t + x.length, 0) : 0;
  return own + modules.reduce((s, m) => s + method.tensors(m, c).reduce((t, x) => t + (x.state ? 0 : x.length), 0), 0);
}
