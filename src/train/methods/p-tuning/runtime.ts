// P-tuning's GPU side: the encoder's table and MLP in the flat trainable buffers; at every forward the encoder runs
// over the table (three dense layers over n rows, dense-mlp.ts) and its output is added at the virtual
// positions (virtual_tokens.wgsl); the backward takes the gradient at those positions (dP, per micro-batch) back
// through the MLP into every tensor's gradient. Initialised as PEFT's modules are: the table N(0, 1) (nn.Embedding),
// each Linear's weight and bias U(±1/√fan_in) (nn.Linear's kaiming_uniform(a = √5)), from the run's seed; the golden
// runs pass PEFT's own draw.
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import { recordVirtualTokensBackward, recordVirtualTokensForward } from '../../../gpu/kernels/virtual-tokens.ts';
import { deriveSeed, Rng } from '../../../data/rng.ts';
import type { VirtualTokens } from '../../../model/runtime/virtual-tokens.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import { createDenseMlp, type DenseLayer } from '../dense-mlp.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import { standardNormal } from '../prompt-tuning/runtime.ts';
import { encoderHidden, P_TUNING_TENSORS, pTuningMethod, pTuningSegmentName, pTuningShapes, type PTuningTensor } from './config.ts';

/** PEFT's initial values for each tensor, from `seed`. */
export function pTuningInit(n: number, C: number, H: number, seed: number): Map<PTuningTensor, Float32Array> {
  const shapes = pTuningShapes(n, C, H);
  const rng = new Rng(deriveSeed(seed, 1)); // a stream apart from the table's
  const uniform = (count: number, fanIn: number) => Float32Array.from({ length: count }, () => (2 * rng.next() - 1) / Math.sqrt(fanIn));
  const size = (t: PTuningTensor) => shapes[t].reduce((a, b) => a * b, 1);
  return new Map<PTuningTensor, Float32Array>([
    ['embedding.weight', standardNormal(n * C, seed)],
    ...(['mlp_head.0', 'mlp_head.2', 'mlp_head.4'] as const).flatMap((layer) => {
      const fanIn = shapes[`${layer}.weight`][1];
      return [[`${layer}.weight`, uniform(size(`${layer}.weight`), fanIn)], [`${layer}.bias`, uniform(size(`${layer}.bias`), fanIn)]] as [PTuningTensor, Float32Array][];
    }),
  ]);
}

export const pTuningRuntime: MethodRuntime = {
  id: 'p-tuning',
  attach(e, model, c, modules, init) {
    if (modules.length) throw new Error('P-tuning wraps no layer; got target modules');
    if (model.virtualTokens) throw new Error('the model already has virtual tokens attached');
    const cfg = model.config;
    const n = c.numVirtualTokens;
    const C = cfg.hiddenSize;
    const H = encoderHidden(cfg, c);
    const tensors = pTuningMethod.ownTensors!(cfg, c);
    const layout = planAdamwLayout(tensors);
    const known = new Map(layout.segments.map((s) => [s.name, s]));
    for (const [name, values] of init.initial ?? []) {
      const seg = known.get(name);
      if (!seg) throw new Error(`initial value given for ${name}, which is not a P-tuning tensor (${[...known.keys()].join(', ')})`);
      if (values.length !== seg.length) throw new Error(`initial ${name} has ${values.length} values, expected ${seg.length}`);
    }
    const drawn = pTuningInit(n, C, H, init.seed);
    const host = new Float32Array(layout.totalLength);
    for (const t of P_TUNING_TENSORS) {
      const seg = known.get(pTuningSegmentName(t))!;
      host.set(init.initial?.get(seg.name) ?? drawn.get(t)!, seg.offset);
    }
    const buffers = allocateTrainable(e, layout, host, 'ptuning');
    const param = (t: PTuningTensor) => {
      const s = known.get(pTuningSegmentName(t))!;
      return segmentBinding(buffers.params, s.offset, s.length);
    };
    const grad = (t: PTuningTensor) => {
      const s = known.get(pTuningSegmentName(t))!;
      return segmentBinding(buffers.grads, s.offset, s.length);
    };
    const layer = (name: 'mlp_head.0' | 'mlp_head.2' | 'mlp_head.4', inF: number, outF: number, activation: DenseLayer['activation']): DenseLayer => ({
      in: inF,
      out: outF,
      weight: param(`${name}.weight`),
      bias: param(`${name}.bias`),
      dWeight: grad(`${name}.weight`),
      dBias: grad(`${name}.bias`),
      activation,
    });
    // The encoder's output is the (n, C) prompt P; the virtual tokens' backward overwrites its dOutput with dP.
    const encoder = createDenseMlp(e, {
      label: 'ptuning',
      rows: n,
      input: param('embedding.weight'),
      dInput: grad('embedding.weight'),
      layers: [layer('mlp_head.0', C, H, 'relu'), layer('mlp_head.2', H, H, 'relu'), layer('mlp_head.4', H, C, 'none')],
    });
    const vt = (T: number) => ({ rows: T, C, base: cfg.vocabSize, n });
    const hook: VirtualTokens = {
      count: n,
      recordForward(rec, T, tokens, x) {
        encoder.recordForward(rec);
        recordVirtualTokensForward(rec, vt(T), { ids: tokens, P: encoder.output, x });
      },
      recordBackward(rec, T, tokens, dx, accumulate) {
        recordVirtualTokensBackward(rec, vt(T), { ids: tokens, dx, dP: encoder.dOutput }, false);
        encoder.recordBackward(rec, accumulate);
      },
    };
    model.virtualTokens = hook;
    const attached: AttachedMethod = {
      ...buffers,
      trainableParams: tensors.reduce((s, t) => s + t.length, 0),
      setDropoutSeeds: () => {},
      suspendDropout: () => () => {},
      detach() {
        if (model.virtualTokens === hook) delete model.virtualTokens;
        encoder.release();
        releaseTrainable(e, buffers);
      },
    };
    return attached;
  },
};
