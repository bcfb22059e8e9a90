// P-tuning's GPU side: the encoder's table and MLP in the flat trainable buffers; at every forward the encoder runs
// over the table (three dense layers over n rows, prompt_encoder.wgsl) and its output is added at the virtual
// positions (virtual_tokens.wgsl); the backward takes the gradient at those positions (dP, per micro-batch) back
// through the MLP into every tensor's gradient. Initialised as PEFT's modules are: the table N(0, 1) (nn.Embedding),
// each Linear's weight and bias U(±1/√fan_in) (nn.Linear's kaiming_uniform(a = √5)), from the run's seed; the golden
// runs pass PEFT's own draw.
import { STORAGE_USAGE } from '../../../gpu/buffers.ts';
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import { recordDenseForward, recordDenseInputGrad, recordDenseParamGrads } from '../../../gpu/kernels/prompt-encoder.ts';
import { recordVirtualTokensBackward, recordVirtualTokensForward } from '../../../gpu/kernels/virtual-tokens.ts';
import { deriveSeed, Rng } from '../../../data/rng.ts';
import type { VirtualTokens } from '../../../model/runtime/virtual-tokens.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
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
    const scratch: GPUBuffer[] = [];
    const alloc = (floats: number, label: string) => {
      const b = e.buffers.acquire(floats * 4, STORAGE_USAGE, `ptuning.${label}`);
      scratch.push(b);
      return b;
    };
    // (n, H) hidden activations, (n, C) the prompt, and the backward's (n, C) dP and (n, H) pre-activation gradients.
    const h1 = alloc(n * H, 'h1');
    const h2 = alloc(n * H, 'h2');
    const P = alloc(n * C, 'P');
    const dP = alloc(n * C, 'dP');
    const dz2 = alloc(n * H, 'dz2');
    const dz1 = alloc(n * H, 'dz1');
    const E = param('embedding.weight');
    const W0 = param('mlp_head.0.weight');
    const W2 = param('mlp_head.2.weight');
    const W4 = param('mlp_head.4.weight');
    const vt = (T: number) => ({ rows: T, C, base: cfg.vocabSize, n });
    const hook: VirtualTokens = {
      count: n,
      recordForward(rec, T, tokens, x) {
        recordDenseForward(rec, { rows: n, K: C, O: H }, { X: E, W: W0, bias: param('mlp_head.0.bias'), Y: h1 }, true);
        recordDenseForward(rec, { rows: n, K: H, O: H }, { X: h1, W: W2, bias: param('mlp_head.2.bias'), Y: h2 }, true);
        recordDenseForward(rec, { rows: n, K: H, O: C }, { X: h2, W: W4, bias: param('mlp_head.4.bias'), Y: P }, false);
        recordVirtualTokensForward(rec, vt(T), { ids: tokens, P, x });
      },
      recordBackward(rec, T, tokens, dx, accumulate) {
        recordVirtualTokensBackward(rec, vt(T), { ids: tokens, dx, dP }, false);
        recordDenseParamGrads(rec, { rows: n, K: H, O: C }, { dZ: dP, X: h2, dW: grad('mlp_head.4.weight'), db: grad('mlp_head.4.bias') }, accumulate);
        recordDenseInputGrad(rec, { rows: n, K: H, O: C }, { dZ: dP, W: W4, mask: h2, dX: dz2 }, false);
        recordDenseParamGrads(rec, { rows: n, K: H, O: H }, { dZ: dz2, X: h1, dW: grad('mlp_head.2.weight'), db: grad('mlp_head.2.bias') }, accumulate);
        recordDenseInputGrad(rec, { rows: n, K: H, O: H }, { dZ: dz2, W: W2, mask: h1, dX: dz1 }, false);
        recordDenseParamGrads(rec, { rows: n, K: C, O: H }, { dZ: dz1, X: E, dW: grad('mlp_head.0.weight'), db: grad('mlp_head.0.bias') }, accumulate);
        recordDenseInputGrad(rec, { rows: n, K: C, O: H }, { dZ: dz1, W: W0, dX: grad('embedding.weight') }, accumulate);
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
