// Attention prefixes: per-layer key/value rows a method (prefix tuning, P-tuning v2) puts ahead of every segment, as
// PEFT's PeftModelForCausalLM hands its prompt to the model as past_key_values: every query of every segment attends to
// them, they enter attention as given (no RoPE, no q/k norm: they never pass the projections), and the real tokens
// start at position P (transformers counts positions from the cache's length). The method owns a (P, L·2·Hkv·D) table
// — PEFT's prompt_embeddings, viewed (P, L·2, Hkv, D): layer l's keys are row 2l, its values row 2l + 1 — so layer l's
// (P, 2, Hkv, D) rows, the attention kernel's prefixKV, are the table's columns [l·2·Hkv·D, (l + 1)·2·Hkv·D)
// (columns.wgsl gathers them, and scatters each layer's dPrefixKV back into the table's gradient).
import type { Engine } from '../../gpu/engine.ts';
import type { BufferRef, Recorder } from '../../gpu/kernel.ts';
import { recordGatherColumns, recordScatterColumns } from '../../gpu/kernels/columns.ts';
import type { ModelConfig } from '../config.ts';

/** What a prefix method attaches to the model (GpuModel.attentionPrefix). */
export interface AttentionPrefix {
  /** P: the key/value rows ahead of every segment; the real tokens take positions P, P + 1, … */
  count: number;
  /** Records what the layers' rows are made from (the table, through the method's MLP if any), once per forward,
   *  ahead of the first block. */
  recordForward(rec: Recorder): void;
  /** Layer l's (P, 2, Hkv, D) f32 rows, written by recordForward. */
  layer(l: number): GPUBuffer;
  /** Training only: layer l's dPrefixKV (P, 2, Hkv, D), which the attention backward overwrites. */
  grad?(l: number): GPUBuffer;
  /** Training only: after every layer's backward, the method's gradients from the layers' dPrefixKV. `accumulate`
   *  adds into them (later micro-batches of a step). */
  recordBackward?(rec: Recorder, accumulate: boolean): void;
}

/** The width of one layer's rows: 2·Hkv·D (PEFT's 2·token_dim, token_dim = Hkv·D for GQA models and GPT-2 alike). */
export function prefixLayerWidth(cfg: Pick<ModelConfig, 'numKvHeads' | 'headDim'>): number {
  return 2 * cfg.numKvHeads * cfg.headDim;
}

/** The width of PEFT's table: L·2·Hkv·D. */
export function prefixTableWidth(cfg: Pick<ModelConfig, 'numKvHeads' | 'headDim' | 'numLayers'>): number {
  return cfg.numLayers * prefixLayerWidth(cfg);
}

export interface PrefixLayers extends AttentionPrefix {
  /** Frees the per-layer buffers. */
  release(): void;
}

/**
 * The hook for a (P, L·2·Hkv·D) f32 `table` used as it is (plain prefix tuning; an imported adapter; the projection's
 * output), each layer's rows gathered from it at every forward (after `before`: the projection's forward). With
 * `dTable`, training: every layer's dPrefixKV is scattered into its columns — added when accumulating, unless
 * `afterGrad` is given: then dTable is its scratch, overwritten, and `afterGrad` takes it on (the projection's
 * backward, which does the accumulating).
 */
export function prefixLayers(
  e: Engine,
  cfg: Pick<ModelConfig, 'numKvHeads' | 'headDim' | 'numLayers'>,
  P: number,
  table: BufferRef,
  o: { dTable?: BufferRef; before?: (rec: Recorder) => void; afterGrad?: (rec: Recorder, accumulate: boolean) => void } = {},
): PrefixLayers {
  const w = prefixLayerWidth(cfg);
  const wide = prefixTableWidth(cfg);
  const owned: GPUBuffer[] = [];
  const alloc = (label: string) => {
    const b = e.buffers.acquire(P * w * 4, undefined, label);
    owned.push(b);
    return b;
  };
  const layers = Array.from({ length: cfg.numLayers }, (_, l) => alloc(`prefix.${l}.kv`));
  const grads = o.dTable ? Array.from({ length: cfg.numLayers }, (_, l) => alloc(`prefix.${l}.dkv`)) : [];
  const shape = (l: number) => ({ rows: P, wide, narrow: w, offset: l * w });
  const at = (list: GPUBuffer[], l: number) => {
    const b = list[l];
    if (!b) throw new Error(`attention prefix: no layer ${l} (the model has ${cfg.numLayers})`);
    return b;
  };
  const dTable = o.dTable;
  return {
    count: P,
    recordForward(rec) {
      o.before?.(rec);
      layers.forEach((narrow, l) => recordGatherColumns(rec, shape(l), { wide: table, narrow }));
    },
    layer: (l) => at(layers, l),
    grad: dTable ? (l) => at(grads, l) : undefined,
    recordBackward: dTable
      ? (rec, accumulate) => {
          // Every layer writes its own columns, so together they cover the table: adding is for later micro-batches.
          const add = accumulate && !o.afterGrad;
          grads.forEach((narrow, l) => recordScatterColumns(rec, shape(l), { narrow, wide: dTable }, add));
          o.afterGrad?.(rec, accumulate);
        }
      : undefined,
    release() {
      for (const b of owned.splice(0)) e.buffers.release(b);
    },
  };
}
