// P-tuning's GPU side: the encoder's table and network in the flat trainable buffers; at every forward the encoder
// runs over the table (the MLP: three dense layers over n rows, prompt_encoder.wgsl; the LSTM: lstm-runtime.ts) and
// its output is added at the virtual positions (virtual_tokens.wgsl); the backward takes the gradient at those
// positions (dP, per micro-batch) back through the encoder into every tensor's gradient. Initialised as PEFT's
// modules are: the table N(0, 1) (nn.Embedding), each Linear's weight and bias U(±1/√fan_in) (nn.Linear's
// kaiming_uniform(a = √5)), from the run's seed; the golden runs pass PEFT's own draw.
import { STORAGE_USAGE } from '../../../gpu/buffers.ts';
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import { recordDenseForward, recordDenseInputGrad, recordDenseParamGrads } from '../../../gpu/kernels/prompt-encoder.ts';
import { recordVirtualTokensBackward, recordVirtualTokensForward } from '../../../gpu/kernels/virtual-tokens.ts';
import { deriveSeed, Rng } from '../../../data/rng.ts';
import type { VirtualTokens } from '../../../model/runtime/virtual-tokens.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import type { BufferRef } from '../../../gpu/kernel.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import { standardNormal } from '../prompt-tuning/runtime.ts';
import { encoderHidden, pTuningMethod, pTuningShapes, type PTuningTensor } from './config.ts';
import { pTuningLstmInit, recordLstmEncoder, type EncoderRecording } from './lstm-runtime.ts';

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
    const lstm = c.encoderType === 'lstm';
    const drawn: ReadonlyMap<string, Float32Array> = lstm ? pTuningLstmInit(n, C, H, c.encoderNumLayers, init.seed) : pTuningInit(n, C, H, init.seed);
    const host = new Float32Array(layout.totalLength);
    for (const seg of layout.segments) host.set(init.initial?.get(seg.name) ?? drawn.get(seg.name.slice('prompt_encoder.'.length))!, seg.offset);
    const buffers = allocateTrainable(e, layout, host, 'ptuning');
    const segment = (name: string) => {
      const s = known.get(`prompt_encoder.${name}`);
      if (!s) throw new Error(`P-tuning: no tensor prompt_encoder.${name}`);
      return s;
    };
    const param = (name: string) => segmentBinding(buffers.params, segment(name).offset, segment(name).length);
    const grad = (name: string) => segmentBinding(buffers.grads, segment(name).offset, segment(name).length);
    const scratch: GPUBuffer[] = [];
    const alloc = (floats: number, label: string) => {
      const b = e.buffers.acquire(floats * 4, STORAGE_USAGE, `ptuning.${label}`);
      scratch.push(b);
      return b;
    };
    // (n, C) the prompt and the backward's dP
    const P = alloc(n * C, 'P');
    const dP = alloc(n * C, 'dP');
    const encoder = lstm
      ? recordLstmEncoder({ n, C, H, layers: c.encoderNumLayers }, { param, grad, alloc, P, dP })
      : recordMlpEncoder({ n, C, H }, { param, grad, alloc, P, dP });
    const vt = (T: number) => ({ rows: T, C, base: cfg.vocabSize, n });
    const hook: VirtualTokens = {
      count: n,
      recordForward(rec, T, tokens, x) {
        encoder.forward(rec);
        recordVirtualTokensForward(rec, vt(T), { ids: tokens, P, x });
      },
      recordBackward(rec, T, tokens, dx, accumulate) {
        recordVirtualTokensBackward(rec, vt(T), { ids: tokens, dx, dP }, false);
        encoder.backward(rec, accumulate);
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
        for (const b of scratch.splice(0)) e.buffers.release(b);
        releaseTrainable(e, buffers);
      },
    };
    return attached;
  },
};

/** The MLP encoder's dispatches: (n, H) hidden activations h1, h2 kept for the backward, (n, H) pre-activation
 *  gradients dz2, dz1 there. */
function recordMlpEncoder(
  dims: { n: number; C: number; H: number },
  b: { param: (name: string) => BufferRef; grad: (name: string) => BufferRef; alloc: (floats: number, label: string) => GPUBuffer; P: BufferRef; dP: BufferRef },
): EncoderRecording {
  const { n, C, H } = dims;
  const [h1, h2, dz2, dz1] = (['h1', 'h2', 'dz2', 'dz1'] as const).map((label) => b.alloc(n * H, label));
  const E = b.param('embedding.weight');
  const W0 = b.param('mlp_head.0.weight');
  const W2 = b.param('mlp_head.2.weight');
  const W4 = b.param('mlp_head.4.weight');
  return {
    forward(rec) {
      recordDenseForward(rec, { rows: n, K: C, O: H }, { X: E, W: W0, bias: b.param('mlp_head.0.bias'), Y: h1 }, true);
      recordDenseForward(rec, { rows: n, K: H, O: H }, { X: h1, W: W2, bias: b.param('mlp_head.2.bias'), Y: h2 }, true);
      recordDenseForward(rec, { rows: n, K: H, O: C }, { X: h2, W: W4, bias: b.param('mlp_head.4.bias'), Y: b.P }, false);
    },
    backward(rec, accumulate) {
      const { dP, grad } = b;
      recordDenseParamGrads(rec, { rows: n, K: H, O: C }, { dZ: dP, X: h2, dW: grad('mlp_head.4.weight'), db: grad('mlp_head.4.bias') }, accumulate);
      recordDenseInputGrad(rec, { rows: n, K: H, O: C }, { dZ: dP, W: W4, mask: h2, dX: dz2 }, false);
      recordDenseParamGrads(rec, { rows: n, K: H, O: H }, { dZ: dz2, X: h1, dW: grad('mlp_head.2.weight'), db: grad('mlp_head.2.bias') }, accumulate);
      recordDenseInputGrad(rec, { rows: n, K: H, O: H }, { dZ: dz2, W: W2, mask: h1, dX: dz1 }, false);
      recordDenseParamGrads(rec, { rows: n, K: C, O: H }, { dZ: dz1, X: E, dW: grad('mlp_head.0.weight'), db: grad('mlp_head.0.bias') }, accumulate);
      recordDenseInputGrad(rec, { rows: n, K: C, O: H }, { dZ: dz1, W: W0, dX: grad('embedding.weight') }, accumulate);
    },
  };
}
