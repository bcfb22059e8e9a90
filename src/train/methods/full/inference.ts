// A fully fine-tuned model for inference only (the studio's Playground, Compare and held-out answers; evaluation):
// the trained tensors of a full fine-tuning run (Trainer.trainedTensors(), by transformers' parameter names) uploaded
// in the loaded model's own storage (f16 tables and linear weights where the model was loaded in f16, f32 norms and
// biases; a split table split the same way) and put in place of the loaded weights until the returned undo puts them
// back and frees the copies. One copy of the model beside the loaded one — not the five f32 copies attaching the
// training runtime (runtime.ts) would take — and no f32 reload: a model loaded in f16 generates with its trained
// weights rounded to f16, as transformers would load the exported folder in f16.
import { STORAGE_USAGE, uploadBuffer } from '../../../gpu/buffers.ts';
import type { Engine } from '../../../gpu/engine.ts';
import { f32ArrayToF16 } from '../../../gpu/half.ts';
import { bytesPerElement, writeRows, type RowShardedTable } from '../../../gpu/sharded.ts';
import type { ElementType } from '../../../gpu/wgsl.ts';
import { namedNorms, type GpuModel, type Norm } from '../../../model/runtime/gpu-model.ts';
import { fullTensors } from './config.ts';
import { FullFineTuningError } from './runtime.ts';

/** One model tensor: how to upload its trained values beside the loaded one, and how to put either in place. */
interface Slot {
  /** Uploads `values` and installs them; returns the undo (the loaded tensor back, the upload released). */
  install(values: Float32Array): () => void;
}

/** `values` in the storage of `elem`: f32 as is, f16 as its bits. */
function stored(values: Float32Array, elem: ElementType): Float32Array | Uint16Array {
  return elem === 'f16' ? f32ArrayToF16(values) : values;
}

/** Where each canonical tensor (weights.ts's names) lives in the loaded model, as slots. */
function slotsOf(e: Engine, model: GpuModel): Map<string, Slot> {
  const slots = new Map<string, Slot>();
  const buffer = (label: string, elem: ElementType, read: () => GPUBuffer, write: (b: GPUBuffer) => void): Slot => ({
    install(values) {
      const original = read();
      const copy = uploadBuffer(e.buffers, e.device, stored(values, elem), `full.inference.${label}`);
      write(copy);
      return () => {
        write(original);
        e.buffers.release(copy);
      };
    },
  });
  /** A (V, C) table copied shard for shard (same row ranges, so the kernels' shard loop is unchanged). */
  const table = (label: string, read: () => RowShardedTable, write: (t: RowShardedTable) => void): Slot => ({
    install(values) {
      const original = read();
      const bpe = bytesPerElement(original.elem);
      const copy: RowShardedTable = {
        ...original,
        shards: original.shards.map((s, i) => ({ ...s, buffer: e.buffers.acquire(s.rows * original.cols * bpe, STORAGE_USAGE, `full.inference.${label}[${i}]`) })),
      };
      writeRows(e.device, copy, 0, stored(values, original.elem));
      write(copy);
      return () => {
        write(original);
        for (const s of copy.shards) e.buffers.release(s.buffer);
      };
    },
  });
  const tied = model.head === model.embed;
  slots.set('embed.weight', table('embed.weight', () => model.embed, (t) => {
    model.embed = t;
    if (tied) model.head = t;
  }));
  if (!tied) slots.set('lm_head.weight', table('lm_head.weight', () => model.head, (t) => (model.head = t)));
  if (model.posEmbed) slots.set('pos_embed.weight', buffer('pos_embed.weight', model.dtype, () => model.posEmbed!, (b) => (model.posEmbed = b)));
  const norm = (canonical: string, n: Norm) => {
    slots.set(`${canonical}.weight`, buffer(`${canonical}.weight`, 'f32', () => n.weight, (b) => (n.weight = b)));
    if (n.bias) slots.set(`${canonical}.bias`, buffer(`${canonical}.bias`, 'f32', () => n.bias!, (b) => (n.bias = b)));
  };
  for (const [canonical, n] of namedNorms(model)) norm(canonical, n);
  for (const { module, linear } of model.modules) {
    const w = linear.weight;
    if (w.kind !== 'dense') {
      throw new FullFineTuningError(`${module.peftPath} is NF4: a fully fine-tuned model replaces every weight in full precision (load the model without quantization)`);
    }
    slots.set(`${module.canonical}.weight`, buffer(`${module.canonical}.weight`, w.elem, () => (linear.weight as typeof w).buffer, (b) => (linear.weight = { ...w, buffer: b })));
    if (linear.bias) slots.set(`${module.canonical}.bias`, buffer(`${module.canonical}.bias`, 'f32', () => linear.bias!, (b) => (linear.bias = b)));
  }
  return slots;
}

/**
 * Runs `model` with the trained tensors of a full fine-tuning run of it (every tensor of the model, by segment name:
 * transformers' parameter names) until the returned undo is called, which puts the loaded weights back and releases
 * the copies. Refuses, naming why and changing nothing: an NF4 model, a model a full fine-tuning run is training
 * (its weights are that run's), a missing tensor or one of another size, a NaN or an infinity.
 */
export function attachTrainedModel(e: Engine, model: GpuModel, tensors: ReadonlyMap<string, Float32Array>): () => void {
  if (model.quant !== 'none') throw new FullFineTuningError('a fully fine-tuned model replaces every weight in full precision: load the model without NF4 quantization');
  if (model.tableGrads) throw new FullFineTuningError('a full fine-tuning run is training this model: its weights are that run\'s until it stops');
  const wanted = fullTensors(model.config);
  const known = new Set(wanted.map((t) => t.name));
  const extra = [...tensors.keys()].filter((n) => !known.has(n));
  if (extra.length) throw new FullFineTuningError(`${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} is not a tensor of the loaded ${model.config.modelType} model: these weights belong to another model`);
  for (const t of wanted) {
    const values = tensors.get(t.name);
    if (!values) throw new FullFineTuningError(`no trained values for ${t.name}: not a full fine-tuning run of this model`);
    if (values.length !== t.length) throw new FullFineTuningError(`${t.name}: ${values.length} trained values, the model's tensor has ${t.length}`);
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new FullFineTuningError(`${t.name}: element ${bad} is ${values[bad]}; these weights diverged`);
  }
  const slots = slotsOf(e, model);
  const undos: (() => void)[] = [];
  const restore = () => {
    for (const undo of undos.splice(0).reverse()) undo();
  };
  try {
    for (const t of wanted) {
      const slot = slots.get(t.canonical);
      if (!slot) throw new FullFineTuningError(`${t.name} (${t.canonical}) is not on the loaded model`);
      undos.push(slot.install(tensors.get(t.name)!));
    }
  } catch (err) {
    restore();
    throw err;
  }
  return restore;
}
