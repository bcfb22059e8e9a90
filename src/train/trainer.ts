// The LoRA/QLoRA training loop, host-agnostic (the browser's engine worker and the Node CLI drive it alike):
// micro-batches in a seeded order, gradient accumulation token-weighted over the whole step, one command submission
// per optimizer step (forward, backward and AdamW with the global-norm clip, no read-back but the loss and the
// norm), warmup + schedule, evaluation, early stopping, and a checkpoint that resumes the same curve.
import { BufferUsage, readF32, writeBuffer } from '../gpu/buffers.ts';
import { gpuCounters } from '../gpu/counters.ts';
import type { Engine } from '../gpu/engine.ts';
import type { Recorder } from '../gpu/kernel.ts';
import type { StepProfile, StepProfiler } from '../gpu/profiler.ts';
import { ADAMW_STATUS_FLOATS, ADAMW_STATUS_LOSS_OFFSET_BYTES, recordAdamwStep } from '../gpu/kernels/adamw.ts';
import { Workspace } from '../gpu/workspace.ts';
import { Batcher } from '../data/batcher.ts';
import type { TokenizedRow } from '../data/encode.ts';
import { deriveSeed, shuffled } from '../data/rng.ts';
import { packRows } from '../data/packing.ts';
import { recordBackward, recordForward, releaseActs, releaseBatch, uploadBatch, uploadBatchInto, type Transformer } from '../model/runtime/transformer.ts';
import { withModelVirtualTokens } from '../model/runtime/virtual-tokens.ts';
import type { LinearModule } from '../model/weights.ts';
import { ConfigError, type TrainConfig } from './config.ts';
import { countTargets, toHostBatch } from './batches.ts';
import { readLoraTensors, type LoraState } from './lora-state.ts';
import type { AttachedMethod } from './methods/method.ts';
import { methodFor } from './methods/registry.ts';
import { runtimeFor } from './methods/runtimes.ts';
import { resolveTargets } from './methods/targets.ts';
import { lrMultiplier, warmupStepsFor } from './schedule.ts';
import type { StepMetrics } from './protocol.ts';

export interface TrainerOptions {
  engine: Engine;
  transformer: Transformer;
  config: TrainConfig;
  train: readonly TokenizedRow[];
  eval?: readonly TokenizedRow[];
  padId: number;
  /** Start these tensors (by segment name, any method: "<path>.lora_A", "<path>.ia3_l", …) from these values instead
   *  of the method's init: continuing from a saved adapter, golden runs' drawn lora_A. */
  initial?: Map<string, Float32Array>;
  /** The tokenizer's ids for a text, special tokens included (prompt tuning's TEXT init). */
  encode?: (text: string) => number[];
  /** Profile every step (`lora-studio train --profile`): each dispatch timed, the CPU phases marked; the step is
   *  then recorded, submitted and waited for in turn (not recorded ahead) so each phase is its own. */
  profiler?: StepProfiler;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface TrainerCheckpoint {
  version: 1;
  step: number;
  /** The next micro-batch: epoch and index within it. */
  epoch: number;
  batchIndex: number;
  config: TrainConfig;
  /** Segment names of the flat buffers, to refuse a checkpoint of another model or target set. */
  segments: string[];
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
  bestEvalLoss: number | null;
  bestStep: number | null;
  /** The best adapter's flat params (early stopping exports it); null until an evaluation. */
  bestParams: Float32Array | null;
  evalsWithoutImprovement: number;
  history: StepMetrics[];
}

/** A step recorded ahead of its submission (see Trainer.trainStep). */
interface RecordedStep {
  rec: Recorder;
  /** The optimizer step it makes (1-based). */
  step: number;
  lr: number;
  /** Tokens of its micro-batches. */
  processed: number;
  /** The batch position after it. */
  epoch: number;
  batchIndex: number;
  /** The workspace generation its buffers belong to. */
  generation: number;
}

export class TrainingDivergedError extends Error {
  override name = 'TrainingDivergedError';
}

/** The dropout mask seed of one module at one step: different every step, reproducible from the run's seed. */
function dropoutSeed(seed: number, step: number, module: number): number {
  return deriveSeed(deriveSeed(seed, step), module) >>> 0;
}

export class Trainer {
  /** The method's trainable state on the GPU (config.method, from the registry), attached to the model's layers. */
  readonly method: AttachedMethod;
  /** The modules the method wraps, in forward order, and adapter_config.json's target_modules for them. */
  readonly modules: readonly LinearModule[];
  readonly targetModules: string | string[];
  readonly batcher: Batcher;
  readonly evalBatcher: Batcher | null;
  readonly totalSteps: number;
  readonly warmupSteps: number;
  step = 0;
  epoch = 0;
  batchIndex = 0;
  bestEvalLoss: number | null = null;
  bestStep: number | null = null;
  bestParams: Float32Array | null = null;
  evalsWithoutImprovement = 0;
  readonly history: StepMetrics[] = [];
  private readonly lossTotal: GPUBuffer;
  /** Activations and batch buffers by role, the same every step (see Workspace). */
  private readonly workspace: Workspace;
  /** The step's status (AdamW's norm buffer: grad norm, skip flags, loss sum and count), copied here by the step's
   *  own submission: the one read-back of a step. */
  private readonly status: GPUBuffer;
  /** The next step, recorded while the GPU ran the previous one. */
  private pending: RecordedStep | null = null;
  private disposed = false;

  constructor(private o: TrainerOptions) {
    const { config, engine: e } = o;
    if (config.quant !== o.transformer.model.quant) {
      throw new Error(`quant ${config.quant} needs the model loaded with ${config.quant === 'nf4' ? 'NF4' : 'full-precision'} linear layers (it has ${o.transformer.model.quant})`);
    }
    if (o.train.length === 0) throw new Error('the training set has no usable row');
    const method = methodFor(config.method);
    const methodErrors = method.validate(config);
    if (methodErrors.length) throw new ConfigError(methodErrors);
    const { modules, targetModules } = resolveTargets(o.transformer.model.config, config.targets, method.defaultTargets);
    this.modules = modules;
    this.targetModules = targetModules;
    this.method = runtimeFor(config.method).attach(e, o.transformer.model, config, modules, { seed: config.seed, initial: o.initial, encode: o.encode });
    // A prompt method's virtual tokens go ahead of every row before packing, so each packed row keeps its own.
    const rows = (r: readonly TokenizedRow[]) => withModelVirtualTokens(o.transformer.model, r);
    const extra = o.transformer.model.virtualTokens?.count ?? 0;
    // Packing: rows shuffled once with the run's seed, then packed next-fit into maxLength blocks, each row its own
    // segment (block-diagonal causal attention, positions restarting per row).
    const train = config.packing ? packRows(shuffled(rows(o.train), config.seed), config.maxLength + extra) : rows(o.train);
    this.batcher = new Batcher(train, { batchSize: config.batchSize, padId: o.padId, seed: config.seed });
    // Eval rows stay plain: evaluateLoss puts the virtual tokens ahead of them, for every caller alike.
    this.evalBatcher = o.eval?.length ? new Batcher(o.eval, { batchSize: config.batchSize, padId: o.padId, seed: null }) : null;
    const stepsPerEpoch = Math.ceil(this.batcher.batchesPerEpoch / config.gradAccum);
    this.totalSteps = config.maxSteps ?? config.epochs * stepsPerEpoch;
    this.warmupSteps = warmupStepsFor(this.totalSteps, config.warmupSteps, config.warmupRatio);
    try {
      const resolved = this.method.planSteps?.(this.totalSteps);
      if (resolved) this.o = { ...this.o, config: { ...config, ...resolved } };
    } catch (err) {
      this.method.detach();
      throw err;
    }
    this.lossTotal = e.buffers.acquire(16, undefined, 'train.loss');
    this.workspace = new Workspace(e.buffers);
    // Row-scaled buffers sized once for the largest micro-batch the run can make (B rows × the longest row), so
    // steps over shorter rows reuse them and the pool's peak stays flat over the run.
    const longest = (rows: readonly { input_ids: ArrayLike<number> }[]) => rows.reduce((m, r) => Math.max(m, r.input_ids.length), 0);
    this.workspace.reserveRows(Math.min(config.batchSize, train.length) * longest(train));
    o.transformer.workspace = this.workspace;
    gpuCounters(e.device).buffersCreated++;
    this.status = e.device.createBuffer({ size: ADAMW_STATUS_FLOATS * 4, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'train.status' });
  }

  /** Frees what the trainer holds on the GPU: its loss buffer and the LoRA state (the model is plain again, ready
   *  for another run). Call once, when the run ends; later calls do nothing. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pending = null;
    this.o.engine.buffers.release(this.lossTotal);
    if (this.o.transformer.workspace === this.workspace) this.o.transformer.workspace = undefined;
    this.workspace.release();
    this.status.destroy();
    this.method.detach();
  }

  /** The LoRA state of a LoRA run (its per-module A and B); throws for another method. */
  get lora(): LoraState {
    if (this.o.config.method !== 'lora') throw new Error(`the run trains ${this.o.config.method}, not LoRA`);
    return this.method as LoraState;
  }

  get config(): TrainConfig {
    return this.o.config;
  }

  get done(): boolean {
    return this.step >= this.totalSteps;
  }

  /** Trainable and all parameters, as PEFT's print_trainable_parameters counts them. */
  parameterCounts(): { trainable: number; all: number; percent: number } {
    const base = countBaseParameters(this.o.transformer);
    const trainable = this.method.trainableParams;
    // Full fine-tuning trains the base's own weights: they are not added to it.
    const all = methodFor(this.o.config.method).exports === 'model' ? base : base + trainable;
    return { trainable, all, percent: (100 * trainable) / all };
  }

  /** PEFT's print_trainable_parameters. */
  trainableReport(): string {
    const { trainable, all, percent } = this.parameterCounts();
    return `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${all.toLocaleString('en-US')} || trainable%: ${percent.toFixed(4)} (${this.o.transformer.model.config.modelType})`;
  }

  /** The `gradAccum` micro-batches from (epoch, batchIndex), and the position after them. */
  private microBatchesFrom(epoch: number, batchIndex: number) {
    const batches = [];
    for (let i = 0; i < this.o.config.gradAccum; i++) {
      batches.push(this.batcher.batch(epoch, batchIndex));
      batchIndex++;
      if (batchIndex >= this.batcher.batchesPerEpoch) {
        batchIndex = 0;
        epoch++;
      }
    }
    return { batches, epoch, batchIndex };
  }

  lrAt(step: number): number {
    return this.o.config.lr * lrMultiplier(this.o.config.schedule, step, this.warmupSteps, this.totalSteps);
  }

  /** Records optimizer step `index + 1` from batch position (epoch, batchIndex), without submitting it and without
   *  changing the trainer's state: the step is committed only once its status has been read. */
  private recordStep(index: number, epoch: number, batchIndex: number): RecordedStep {
    const { engine: e, transformer: tf, config } = this.o;
    const next = this.microBatchesFrom(epoch, batchIndex);
    const host = next.batches.map((mb) => toHostBatch(mb, tf.model.attentionPrefix?.count ?? 0));
    const counted = host.reduce((s, b) => s + countTargets(b), 0);
    if (counted === 0) throw new Error(`step ${index + 1}: no position of these micro-batches has a trained label`);
    const processed = host.reduce((s, b) => s + b.segments.length, 0);
    // The seeds go into this recording's params now: changing them afterwards does not touch it.
    this.method.setDropoutSeeds((i) => dropoutSeed(config.seed, index, i));

    const rec = e.record(`step ${index + 1}`, { timing: this.o.profiler?.timing });
    rec.clear(this.method.grads);
    rec.clear(this.lossTotal);
    host.forEach((hb, slot) => {
      const batch = uploadBatchInto(rec, this.workspace, hb, slot);
      const acts = recordForward(rec, e, tf, batch, true, this.lossTotal, { lossInBackward: true });
      recordBackward(rec, e, tf, batch, acts, { gradScale: 1 / counted, accumulateGrads: true });
      releaseActs(e, acts); // nothing to free from a workspace; kept for a pool-backed transformer
    });
    const lr = this.lrAt(index);
    const l = this.method;
    l.beforeOptimizer?.(rec, index + 1, this.lossTotal);
    // AdamW's finite guard reads the loss beside the gradient norm: a non-finite step changes nothing.
    rec.copy(this.lossTotal, 0, l.norm, ADAMW_STATUS_LOSS_OFFSET_BYTES, 8);
    rec.scope('optimizer', () =>
      recordAdamwStep(
        rec,
        l.layout,
        l,
        { lr, beta1: config.beta1, beta2: config.beta2, eps: config.eps, weightDecay: config.weightDecay, maxGradNorm: config.maxGradNorm },
        index + 1,
        e.gpu.limits.maxComputeWorkgroupsPerDimension,
      ),
    );
    l.afterStep?.(rec, index + 1);
    rec.copy(l.norm, 0, this.status, 0, ADAMW_STATUS_FLOATS * 4);
    return {
      rec,
      step: index + 1,
      lr,
      processed,
      epoch: next.epoch,
      batchIndex: next.batchIndex,
      generation: this.workspace.generation,
    };
  }

  /**
   * One optimizer step. Throws TrainingDivergedError on a NaN/Inf loss or gradient (the caller restores its last
   * checkpoint; AdamW's finite guard has left the parameters as they were before the bad step).
   *
   * The step's one read-back (the status copied in its own submission) is awaited while the next step is recorded:
   * the GPU never waits for the CPU to record. That next recording is used by the next call unless the state it was
   * recorded from changed in between (restore, a workspace buffer replaced by a larger evaluation batch).
   */
  async trainStep(): Promise<StepMetrics> {
    const { engine: e, profiler } = this.o;
    const started = performance.now();
    let cur = this.pending;
    this.pending = null;
    profiler?.begin(this.step + 1);
    if (!cur || cur.step !== this.step + 1 || cur.generation !== this.workspace.generation) {
      cur = this.recordStep(this.step, this.epoch, this.batchIndex);
    }
    profiler?.cpu.mark('record');
    await cur.rec.submitNoWait();
    profiler?.cpu.mark('submit');
    gpuCounters(e.device).readbacks++;
    const mapped = this.status.mapAsync(0x0001 /* GPUMapMode.READ */);
    if (cur.step < this.totalSteps && !profiler) {
      try {
        this.pending = this.recordStep(cur.step, cur.epoch, cur.batchIndex);
      } catch {
        this.pending = null; // recorded again (and its error raised) by the next call
      }
    }
    await cur.rec.done(mapped); // the copy is the submission's last command: mapped means done
    profiler?.cpu.mark('wait');
    const [gradNorm, , skipped, , lossSum, count] = new Float32Array(this.status.getMappedRange().slice(0));
    this.status.unmap();
    profiler?.cpu.mark('readback');
    const profile: StepProfile | undefined = profiler ? await profiler.end() : undefined;
    const loss = lossSum / count;
    if (skipped !== 0 || !Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      this.pending = null;
      throw new TrainingDivergedError(
        `step ${cur.step}: the loss became ${loss} (gradient norm ${gradNorm}). The learning rate (${cur.lr.toExponential(2)}) is probably too high, ` +
          'or the model overflows in f16; the run is paused at its last good checkpoint.',
      );
    }
    if (this.method.stepDone) {
      try {
        await this.method.stepDone(cur.step);
      } catch (err) {
        this.pending = null;
        throw err;
      }
    }
    this.epoch = cur.epoch;
    this.batchIndex = cur.batchIndex;
    const lr = cur.lr;
    const processed = cur.processed;
    this.step++;
    const ms = performance.now() - started;
    const mem = e.buffers.stats();
    const metrics: StepMetrics = {
      step: this.step,
      epoch: this.epoch + this.batchIndex / this.batcher.batchesPerEpoch,
      loss,
      lr,
      gradNorm,
      tokensPerSecond: (processed / ms) * 1000,
      ms,
      memBytes: mem.liveBytes,
      peakBytes: mem.peakBytes,
    };
    this.history.push(metrics); // without the profile: the history goes into checkpoints
    return profile ? { ...metrics, profile } : metrics;
  }

  /** Token-weighted mean loss over the eval set (the loss contract), with the adapter as it is now. */
  async evaluate(): Promise<{ loss: number; tokens: number }> {
    if (!this.evalBatcher) throw new Error('no eval set: give an eval split or an eval file');
    const restoreDropout = this.method.suspendDropout(); // evaluation never drops
    try {
      return await evaluateLoss(this.o.engine, this.o.transformer, this.evalBatcher);
    } finally {
      restoreDropout();
    }
  }

  /** Records an evaluation into the last step's metrics and tracks the best adapter; returns whether to stop early. */
  async evaluateAndTrack(): Promise<{ loss: number; stop: boolean }> {
    const { loss } = await this.evaluate();
    const last = this.history[this.history.length - 1];
    if (last) last.evalLoss = loss;
    if (this.bestEvalLoss === null || loss < this.bestEvalLoss) {
      this.bestEvalLoss = loss;
      this.bestStep = this.step;
      this.bestParams = await readF32(this.o.engine.device, this.method.params, this.method.layout.totalLength);
      this.evalsWithoutImprovement = 0;
    } else {
      this.evalsWithoutImprovement++;
    }
    const patience = this.o.config.earlyStoppingPatience;
    return { loss, stop: patience > 0 && this.evalsWithoutImprovement >= patience };
  }

  /** Every trained tensor by segment name (TrainableTensor.name): the current values, or the best evaluated ones
   *  (early stopping). What a method's exportAdapter takes. */
  async trainedTensors(which: 'current' | 'best' = 'current'): Promise<Map<string, Float32Array>> {
    const flat = which === 'best' && this.bestParams ? this.bestParams : await readF32(this.o.engine.device, this.method.params, this.method.layout.totalLength);
    return new Map(this.method.layout.segments.map((s) => [s.name, flat.slice(s.offset, s.offset + s.length)]));
  }

  /** The adapter's tensors: the current ones, or the best evaluated ones (early stopping). */
  async adapterTensors(which: 'current' | 'best' = 'current') {
    const current = await readLoraTensors(this.o.engine, this.lora);
    if (which === 'current' || !this.bestParams) return current;
    const flat = this.bestParams;
    return this.lora.modules.map((m, i) => {
      const a = this.lora.layout.segments[m.aSegment];
      const b = this.lora.layout.segments[m.bSegment];
      return { module: current[i].module, A: flat.slice(a.offset, a.offset + a.length), B: flat.slice(b.offset, b.offset + b.length) };
    });
  }

  async checkpoint(): Promise<TrainerCheckpoint> {
    const { device } = this.o.engine;
    const n = this.method.layout.totalLength;
    return {
      version: 1,
      step: this.step,
      epoch: this.epoch,
      batchIndex: this.batchIndex,
      config: this.o.config,
      segments: this.method.layout.segments.map((s) => s.name),
      params: await readF32(device, this.method.params, n),
      m: await readF32(device, this.method.m, n),
      v: await readF32(device, this.method.v, n),
      bestEvalLoss: this.bestEvalLoss,
      bestStep: this.bestStep,
      bestParams: this.bestParams,
      evalsWithoutImprovement: this.evalsWithoutImprovement,
      history: this.history.map((h) => ({ ...h })),
    };
  }

  /** Continues from a checkpoint of the same model, targets and config. */
  restore(ck: TrainerCheckpoint): void {
    const names = this.method.layout.segments.map((s) => s.name);
    if (ck.segments.length !== names.length || ck.segments.some((s, i) => s !== names[i])) {
      throw new Error('this checkpoint belongs to another model or another set of LoRA targets');
    }
    // Same names but other sizes (another rank, a corrupted record): writing them would silently fill part of a buffer.
    const n = this.method.layout.totalLength;
    for (const [field, values] of [['params', ck.params], ['m', ck.m], ['v', ck.v], ['bestParams', ck.bestParams]] as const) {
      if (values && values.length !== n) throw new Error(`this checkpoint's ${field} holds ${values.length} values; this run's tensors need ${n} (another rank or method?)`);
    }
    const { device } = this.o.engine;
    writeBuffer(device, this.method.params, ck.params);
    this.method.paramsWritten?.(ck.params);
    writeBuffer(device, this.method.m, ck.m);
    writeBuffer(device, this.method.v, ck.v);
    writeBuffer(device, this.method.norm, new Float32Array(ADAMW_STATUS_FLOATS)); // clears AdamW's sticky skip
    this.pending = null;
    this.step = ck.step;
    this.epoch = ck.epoch;
    this.batchIndex = ck.batchIndex;
    this.bestEvalLoss = ck.bestEvalLoss;
    this.bestStep = ck.bestStep;
    this.bestParams = ck.bestParams;
    this.evalsWithoutImprovement = ck.evalsWithoutImprovement;
    this.history.splice(0, this.history.length, ...ck.history.map((h) => ({ ...h })));
  }
}

/** Token-weighted loss over every batch of `batcher` (one epoch in order): one read-back at the end. With a prompt
 *  method attached (trained or imported), its virtual tokens go ahead of each of the batcher's (unpacked) rows. */
export async function evaluateLoss(e: Engine, tf: Transformer, plain: Batcher): Promise<{ loss: number; tokens: number }> {
  if (tf.model.virtualTokens && plain.rows.some((r) => 'segment_ids' in r)) throw new Error('evaluateLoss: packed rows cannot take virtual tokens');
  const rows = withModelVirtualTokens(tf.model, plain.rows);
  const batcher = rows === plain.rows ? plain : new Batcher(rows, plain.options);
  const total = e.buffers.acquire(16, undefined, 'eval.total');
  try {
    const clear = e.record('eval.clear');
    clear.clear(total);
    await clear.submit();
    for (const mb of batcher.epoch(0)) {
      const rec = e.record('eval');
      const host = toHostBatch(mb, tf.model.attentionPrefix?.count ?? 0);
      const batch = tf.workspace ? uploadBatchInto(rec, tf.workspace, host, 0) : uploadBatch(e, host);
      recordForward(rec, e, tf, batch, false, total);
      rec.afterSubmit(() => releaseBatch(e, batch));
      await rec.submit();
    }
    const [sum, count] = await readF32(e.device, total, 2);
    return { loss: sum / count, tokens: count };
  } finally {
    e.buffers.release(total);
  }
}

function countBaseParameters(tf: Transformer): number {
  const c = tf.model.config;
  let n = c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2);
  if (c.positions.kind === 'learned') n += c.maxPositions * c.hiddenSize;
  for (const { module: m } of tf.model.modules) n += m.inFeatures * m.outFeatures + (m.hasBias ? m.outFeatures : 0);
  const normSize = c.hiddenSize * (c.norm.kind === 'layernorm' ? 2 : 1);
  if (c.qkNorm) n += 2 * c.headDim * c.numLayers; // Qwen3's per-head q and k norms
  return n + normSize * (2 * c.numLayers + 1);
}
