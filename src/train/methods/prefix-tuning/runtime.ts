// Prefix tuning's GPU side: the table (or the projection's embedding and MLP) in the flat trainable buffers, attached
// as the model's attention prefix (GpuModel.attentionPrefix, src/model/runtime/attention-prefix.ts). At every forward
// the table is made — the trained one as it is, or the projection's output: Linear → tanh → Linear over the (n,
// token_dim) embedding (dense-mlp.ts) — and each layer's (P, 2, Hkv, D) rows are gathered from its columns for
// the attention kernel; the backward scatters every layer's dPrefixKV into the table's gradient, then (with the
// projection) takes it back through the MLP. Initialised as PEFT's modules are: the embedding N(0, 1)
// (nn.Embedding), each Linear's weight and bias U(±1/√fan_in) (nn.Linear's kaiming_uniform(a = √5)), from the run's
// seed; the golden runs pass PEFT's own draw.
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import { deriveSeed, Rng } from '../../../data/rng.ts';
import { prefixLayers, type PrefixLayers } from '../../../model/runtime/attention-prefix.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import { createDenseMlp, type DenseLayer, type DenseMlp } from '../dense-mlp.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import { PROMPT_EMBEDDINGS } from '../prompt-tuning/config.ts';
import { standardNormal } from '../prompt-tuning/runtime.ts';
import {
  PREFIX_PROJECTION_TENSORS,
  prefixDims,
  prefixEncoderHidden,
  prefixProjectionShapes,
  prefixSegmentName,
  prefixTuningMethod,
  type PrefixProjectionTensor,
} from './config.ts';

/** PEFT's initial values for the projection's tensors, from `seed`. */
export function prefixProjectionInit(n: number, K: number, H: number, O: number, seed: number): Map<PrefixProjectionTensor, Float32Array> {
  const shapes = prefixProjectionShapes(n, K, H, O);
  const rng = new Rng(deriveSeed(seed, 1)); // a stream apart from the embedding's
  const size = (t: PrefixProjectionTensor) => shapes[t].reduce((a, b) => a * b, 1);
  const uniform = (t: PrefixProjectionTensor, fanIn: number) => Float32Array.from({ length: size(t) }, () => (2 * rng.next() - 1) / Math.sqrt(fanIn));
  return new Map<PrefixProjectionTensor, Float32Array>([
    ['embedding.weight', standardNormal(n * K, seed)],
    ['transform.0.weight', uniform('transform.0.weight', K)],
    ['transform.0.bias', uniform('transform.0.bias', K)],
    ['transform.2.weight', uniform('transform.2.weight', H)],
    ['transform.2.bias', uniform('transform.2.bias', H)],
  ]);
}

export const prefixTuningRuntime: MethodRuntime = {
  id: 'prefix-tuning',
  attach(e, model, c, modules, init) {
    if (modules.length) throw new Error('prefix tuning wraps no layer; got target modules');
    if (model.attentionPrefix) throw new Error('the model already has an attention prefix attached');
    if (model.virtualTokens) throw new Error('prefix tuning: the model has virtual tokens attached (a prompt-tuning adapter); detach them first');
    const cfg = model.config;
    const n = c.numVirtualTokens;
    const { tokenDim: K, width: O } = prefixDims(cfg);
    const tensors = prefixTuningMethod.ownTensors!(cfg, c);
    const layout = planAdamwLayout(tensors);
    const known = new Map(layout.segments.map((s) => [s.name, s]));
    for (const [name, values] of init.initial ?? []) {
      const seg = known.get(name);
      if (!seg) throw new Error(`initial value given for ${name}, which is not a prefix-tuning tensor here (${[...known.keys()].join(', ')})`);
      if (values.length !== seg.length) throw new Error(`initial ${name} has ${values.length} values, expected ${seg.length}`);
    }
    const host = new Float32Array(layout.totalLength);
    const H = prefixEncoderHidden(cfg, c);
    if (c.prefixProjection) {
      const drawn = prefixProjectionInit(n, K, H, O, init.seed);
      for (const t of PREFIX_PROJECTION_TENSORS) {
        const seg = known.get(prefixSegmentName(t))!;
        host.set(init.initial?.get(seg.name) ?? drawn.get(t)!, seg.offset);
      }
    } else {
      const seg = known.get(PROMPT_EMBEDDINGS)!;
      host.set(init.initial?.get(PROMPT_EMBEDDINGS) ?? standardNormal(seg.length, init.seed), seg.offset);
    }
    const buffers = allocateTrainable(e, layout, host, 'prefix');
    const ref = (flat: GPUBuffer, name: string) => {
      const s = known.get(name)!;
      return segmentBinding(flat, s.offset, s.length);
    };
    let hook: PrefixLayers;
    let projection: DenseMlp | undefined;
    if (!c.prefixProjection) {
      hook = prefixLayers(e, cfg, n, ref(buffers.params, PROMPT_EMBEDDINGS), { dTable: ref(buffers.grads, PROMPT_EMBEDDINGS) });
    } else {
      const p = (t: PrefixProjectionTensor) => ref(buffers.params, prefixSegmentName(t));
      const g = (t: PrefixProjectionTensor) => ref(buffers.grads, prefixSegmentName(t));
      const layer = (name: 'transform.0' | 'transform.2', inF: number, outF: number, activation: DenseLayer['activation']): DenseLayer => ({
        in: inF,
        out: outF,
        weight: p(`${name}.weight`),
        bias: p(`${name}.bias`),
        dWeight: g(`${name}.weight`),
        dBias: g(`${name}.bias`),
        activation,
      });
      // The (n, O) table is the MLP's output; the prefix's backward overwrites its dOutput with dTable.
      const mlp = createDenseMlp(e, {
        label: 'prefix',
        rows: n,
        input: p('embedding.weight'),
        dInput: g('embedding.weight'),
        layers: [layer('transform.0', K, H, 'tanh'), layer('transform.2', H, O, 'none')],
      });
      projection = mlp;
      hook = prefixLayers(e, cfg, n, mlp.output, {
        dTable: mlp.dOutput,
        before: (rec) => mlp.recordForward(rec),
        afterGrad: (rec, accumulate) => mlp.recordBackward(rec, accumulate),
      });
    }
    model.attentionPrefix = hook;
    const attached: AttachedMethod = {
      ...buffers,
      trainableParams: tensors.reduce((s, t) => s + t.length, 0),
      setDropoutSeeds: () => {},
      suspendDropout: () => () => {},
      detach() {
        if (model.attentionPrefix === hook) delete model.attentionPrefix;
        hook.release();
        projection?.release();
        releaseTrainable(e, buffers);
      },
    };
    return attached;
  },
};
