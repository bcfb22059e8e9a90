// P-tuning's GPU side: the encoder's table and network in the flat trainable buffers; at every forward the encoder
// runs over the table (the MLP: three dense layers over n rows, dense-mlp.ts; the LSTM: lstm-runtime.ts) and its
// output is added at the virtual positions (virtual_tokens.wgsl); the backward takes the gradient at those positions
// (dP, per micro-batch) back through the encoder into every tensor's gradient. Initialised as PEFT's modules are: the
// table N(0, 1) (nn.Embedding), each Linear's weight and bias U(±1/√fan_in) (nn.Linear's kaiming_uniform(a = √5)),
// from the run's seed; the golden runs pass PEFT's own draw.
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import { recordVirtualTokensBackward, recordVirtualTokensForward } from '../../../gpu/kernels/virtual-tokens.ts';
import { deriveSeed, Rng } from '../../../data/rng.ts';
import type { VirtualTokens } from '../../../model/runtime/virtual-tokens.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import { createDenseMlp, type DenseMlp } from '../dense-mlp.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import { standardNormal } from '../prompt-tuning/runtime.ts';
import { encoderHidden, pTuningMethod, pTuningSegmentName, pTuningShapes, type PTuningTensor } from './config.ts';
import { createLstmEncoder, denseLayer, pTuningLstmInit, type EncoderTensors } from './lstm-runtime.ts';

/** PEFT's initial values for each MLP tensor, from `seed`. */
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

/** The MLP encoder: Linear(C, H) → ReLU → Linear(H, H) → ReLU → Linear(H, C) over the table. */
function createMlpEncoder(e: Parameters<MethodRuntime['attach']>[0], dims: { n: number; C: number; H: number }, t: EncoderTensors): DenseMlp {
  const { n, C, H } = dims;
  return createDenseMlp(e, {
    label: 'ptuning',
    rows: n,
    input: t.param('embedding.weight'),
    dInput: t.grad('embedding.weight'),
    layers: [denseLayer(t, 'mlp_head.0', C, H, 'relu'), denseLayer(t, 'mlp_head.2', H, H, 'relu'), denseLayer(t, 'mlp_head.4', H, C, 'none')],
  });
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
    const lstm = c.encoderType === 'lstm';
    const drawn: ReadonlyMap<string, Float32Array> = lstm ? pTuningLstmInit(n, C, H, c.encoderNumLayers, init.seed) : pTuningInit(n, C, H, init.seed);
    const segment = (name: string) => {
      const s = known.get(pTuningSegmentName(name));
      if (!s) throw new Error(`P-tuning: no tensor ${pTuningSegmentName(name)}`);
      return s;
    };
    const host = new Float32Array(layout.totalLength);
    for (const [name, values] of drawn) {
      const seg = segment(name);
      host.set(init.initial?.get(seg.name) ?? values, seg.offset);
    }
    const buffers = allocateTrainable(e, layout, host, 'ptuning');
    const at: EncoderTensors = {
      param: (name) => segmentBinding(buffers.params, segment(name).offset, segment(name).length),
      grad: (name) => segmentBinding(buffers.grads, segment(name).offset, segment(name).length),
    };
    // The encoder's output is the (n, C) prompt P; the virtual tokens' backward overwrites its dOutput with dP.
    const encoder = lstm ? createLstmEncoder(e, { n, C, H, layers: c.encoderNumLayers }, at) : createMlpEncoder(e, { n, C, H }, at);
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
