// Full fine-tuning's GPU side. Every model tensor gets a segment of the flat trainable buffers (f32 master weights,
// their gradients, AdamW's moments); the model's forward and backward read a trained copy of each tensor, refreshed
// from the master segment after every optimizer step, while the weights the model was loaded with stay untouched
// underneath — detaching puts them back, so the studio's base-vs-trained comparisons and the next run start from the
// base model without reloading it. The gradients are written by the backward's hooks: Linear.grad, Norm.grad and
// GpuModel.tableGrads (src/model/runtime/transformer.ts).
import { assertUnwrapped } from '../../../model/runtime/linear.ts';
import { STORAGE_USAGE, writeBuffer } from '../../../gpu/buffers.ts';
import type { Engine } from '../../../gpu/engine.ts';
import type { BufferRef, Recorder } from '../../../gpu/kernel.ts';
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import type { RowShardedTable } from '../../../gpu/sharded.ts';
import { namedNorms, updateBackwardNeedsOnes, type GpuModel, type Norm } from '../../../model/runtime/gpu-model.ts';
import { fullBindingRefusal } from '../../full-run.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import { fullTensors } from './config.ts';

export class FullFineTuningError extends Error {
  override name = 'FullFineTuningError';
}

/** The model is too large for full fine-tuning on this GPU (its f32 weights exceed one storage binding): a property
 *  of the GPU, not a mistake — the method comparison reports such a row as skipped. */
export class FullModelTooLargeError extends FullFineTuningError {
  override name = 'FullModelTooLargeError';
}

/** One model tensor: the buffer the model was loaded with, and how to point the model at another one. */
interface Place {
  original: GPUBuffer;
  install(buffer: GPUBuffer): void;
}

/** A tensor's gradient buffer by canonical name (undefined: the tensor does not exist, e.g. a bias-free norm). */
type GradOf = (canonical: string) => BufferRef | undefined;
/** Points one model object's backward hook (Linear.grad, Norm.grad, GpuModel.tableGrads) at its tensors' gradient
 *  segments; returns what removes it again. */
type GradHook = (gradOf: GradOf) => () => void;

/** Where each canonical tensor (weights.ts's names) lives in the loaded model, and the backward hooks of the objects
 *  holding them — one walk over the model for both. Restoring is `install(original)` for every place, plus the
 *  tables, which are replaced as objects. */
function placesOf(model: GpuModel): { places: Map<string, Place>; gradHooks: GradHook[] } {
  const places = new Map<string, Place>();
  const gradHooks: GradHook[] = [];
  const table = (t: RowShardedTable, what: string): GPUBuffer => {
    if (t.shards.length !== 1) throw new FullFineTuningError(`full fine-tuning needs the ${what} table in one GPU binding (it was split into ${t.shards.length})`);
    if (t.elem !== 'f32') throw new FullFineTuningError(`full fine-tuning needs f32 weights (the ${what} is ${t.elem}): load the model in f32`);
    return t.shards[0].buffer;
  };
  const withBuffer = (t: RowShardedTable, buffer: GPUBuffer): RowShardedTable => ({ ...t, shards: [{ ...t.shards[0], buffer }] });
  const tied = model.head === model.embed;
  if (!tied && model.config.tieWordEmbeddings) throw new FullFineTuningError('config.json ties the embeddings but the loaded head is a table of its own');
  if (tied && !model.config.tieWordEmbeddings) {
    throw new FullFineTuningError('this checkpoint has no lm_head.weight although config.json unties it: a fully fine-tuned export would not load back; fine-tune it with LoRA');
  }
  places.set('embed.weight', {
    original: table(model.embed, 'embedding'),
    install(buffer) {
      model.embed = withBuffer(model.embed, buffer);
      if (tied) model.head = model.embed;
    },
  });
  if (!tied) places.set('lm_head.weight', { original: table(model.head, 'LM head'), install: (b) => (model.head = withBuffer(model.head, b)) });
  if (model.posEmbed) places.set('pos_embed.weight', { original: model.posEmbed, install: (b) => (model.posEmbed = b) });
  gradHooks.push((gradOf) => {
    // A tied head has no tensor of its own: its gradient adds into the embedding's (transformer.ts).
    model.tableGrads = { embed: gradOf('embed.weight')!, posEmbed: gradOf('pos_embed.weight'), head: gradOf('lm_head.weight') };
    return () => delete model.tableGrads;
  });
  const norm = (canonical: string, n: Norm) => {
    places.set(`${canonical}.weight`, { original: n.weight, install: (b) => (n.weight = b) });
    if (n.bias) places.set(`${canonical}.bias`, { original: n.bias, install: (b) => (n.bias = b) });
    gradHooks.push((gradOf) => {
      n.grad = { dweight: gradOf(`${canonical}.weight`)!, dbias: gradOf(`${canonical}.bias`) };
      return () => delete n.grad;
    });
  };
  for (const [canonical, n] of namedNorms(model)) norm(canonical, n);
  for (const { module, linear } of model.modules) {
    const w = linear.weight;
    if (w.kind !== 'dense') throw new FullFineTuningError(`${module.peftPath} is NF4: full fine-tuning trains full-precision weights (load the model without quantization)`);
    if (w.elem !== 'f32') throw new FullFineTuningError(`full fine-tuning needs f32 weights (${module.peftPath} is ${w.elem}): load the model in f32`);
    places.set(`${module.canonical}.weight`, { original: w.buffer, install: (b) => (linear.weight = { ...w, buffer: b }) });
    if (linear.bias) places.set(`${module.canonical}.bias`, { original: linear.bias, install: (b) => (linear.bias = b) });
    gradHooks.push((gradOf) => {
      linear.grad = { dW: gradOf(`${module.canonical}.weight`)!, db: gradOf(`${module.canonical}.bias`) };
      return () => delete linear.grad;
    });
  }
  return { places, gradHooks };
}

/** Bytes full fine-tuning keeps on the GPU beside the loaded model: the f32 master weights, their gradients, AdamW's
 *  two moments and the trained copy the forward reads — five times the model in f32. */
export function fullFineTuningBytes(params: number): number {
  return 5 * 4 * params;
}

export const fullRuntime: MethodRuntime = {
  id: 'full',
  attach(e, model, _c, _modules, init) {
    if (model.quant !== 'none') throw new FullFineTuningError('full fine-tuning trains full-precision weights: load the model without NF4 quantization');
    for (const { module, linear } of model.modules) {
      assertUnwrapped(linear, module.peftPath, (m) => new FullFineTuningError(m));
    }
    if (model.tableGrads) throw new FullFineTuningError('the model is already being fully fine-tuned by another run');
    const tensors = fullTensors(model.config);
    const layout = planAdamwLayout(tensors);
    // AdamW updates the flat buffers in one binding: the whole model in f32 must fit in one.
    const refusal = fullBindingRefusal(tensors.reduce((s, t) => s + t.length, 0), e.gpu.limits.maxStorageBufferBindingSize, layout.totalLength);
    if (refusal) throw new FullModelTooLargeError(refusal);
    const { places, gradHooks } = placesOf(model);
    const segments = new Map(layout.segments.map((s) => [s.name, s]));
    for (const [name, values] of init.initial ?? []) {
      const seg = segments.get(name);
      if (!seg) throw new FullFineTuningError(`initial value given for ${name}, which is not a tensor of this model`);
      if (values.length !== seg.length) throw new FullFineTuningError(`initial ${name} has ${values.length} values, expected ${seg.length}`);
    }
    const bound = tensors.map((t, i) => {
      const place = places.get(t.canonical);
      if (!place) throw new FullFineTuningError(`${t.name} (${t.canonical}) is not on the loaded model`);
      return { place, seg: layout.segments[i], canonical: t.canonical };
    });

    const buffers = allocateTrainable(e, layout, new Float32Array(layout.totalLength), 'full');
    const copies = bound.map(({ seg }) => e.buffers.acquire(seg.length * 4, STORAGE_USAGE, `full.${seg.name}`));
    // The loaded weights become the master weights (GPU to GPU), then the values given in `initial` replace theirs.
    const start = e.device.createCommandEncoder({ label: 'full.init' });
    bound.forEach(({ place, seg }) => start.copyBufferToBuffer(place.original, 0, buffers.params, seg.offset * 4, seg.length * 4));
    e.device.queue.submit([start.finish()]);
    for (const [name, values] of init.initial ?? []) writeBuffer(e.device, buffers.params, values, segments.get(name)!.offset * 4);

    /** The trained copies := the master weights. */
    const syncCopies = (copy: (src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, size: number) => void) =>
      bound.forEach(({ seg }, i) => copy(buffers.params, seg.offset * 4, copies[i], 0, seg.length * 4));
    const syncNow = () => {
      const enc = e.device.createCommandEncoder({ label: 'full.sync' });
      syncCopies((s, so, d, doff, n) => enc.copyBufferToBuffer(s, so, d, doff, n));
      e.device.queue.submit([enc.finish()]);
    };
    syncNow();

    // Point the model at the trained copies and the backward at the gradient segments.
    bound.forEach(({ place }, i) => place.install(copies[i]));
    const gradSegments = new Map(bound.map(({ canonical, seg }) => [canonical, segmentBinding(buffers.grads, seg.offset, seg.length)]));
    const unhooks = gradHooks.map((hook) => hook((canonical) => gradSegments.get(canonical)));
    updateBackwardNeedsOnes(model);

    const attached: AttachedMethod = {
      ...buffers,
      trainableParams: tensors.reduce((s, t) => s + t.length, 0),
      // No dropout: the base model's own dropouts are off in the engine (as in eval mode).
      setDropoutSeeds: () => {},
      suspendDropout: () => () => {},
      afterStep(rec: Recorder) {
        syncCopies((s, so, d, doff, n) => rec.copy(s, so, d, doff, n));
      },
      paramsWritten: syncNow,
      detach() {
        // Every tensor back to the buffer it was loaded into (a tied head follows the embedding's place).
        bound.forEach(({ place }) => place.install(place.original));
        for (const unhook of unhooks) unhook();
        updateBackwardNeedsOnes(model);
        for (const b of copies) e.buffers.release(b);
        releaseTrainable(e, buffers);
      },
    };
    return attached;
  },
};
