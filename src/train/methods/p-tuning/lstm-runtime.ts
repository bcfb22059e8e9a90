// P-tuning's LSTM prompt encoder on the GPU (lstm.ts holds its tensors): at every forward the stacked bidirectional
// LSTM runs over the table (kernels/lstm.ts: the input projections batched over the n steps, then a dispatch per
// step and direction) and the head's two dense layers make P; the backward takes dP back through the head and the
// LSTM (through time) into every tensor's gradient. Initialised as PEFT's modules are: the table N(0, 1)
// (nn.Embedding), every LSTM tensor U(±1/√H) (nn.LSTM.reset_parameters), each Linear's weight and bias U(±1/√fan_in)
// (nn.Linear's kaiming_uniform(a = √5)), from the run's seed; the golden runs pass PEFT's own draw.
import type { BufferRef, Recorder } from '../../../gpu/kernel.ts';
import { recordLstmBackward, recordLstmForward, type LstmActivations, type LstmDirectionBuffers, type LstmLayerBuffers } from '../../../gpu/kernels/lstm.ts';
import { recordDenseForward, recordDenseInputGrad, recordDenseParamGrads } from '../../../gpu/kernels/prompt-encoder.ts';
import { deriveSeed, Rng } from '../../../data/rng.ts';
import { standardNormal } from '../prompt-tuning/runtime.ts';
import { lstmEncoderShapes } from './lstm.ts';

/** PEFT's initial values for each tensor (by its name under prompt_encoder.default), from `seed`. */
export function pTuningLstmInit(n: number, C: number, H: number, layers: number, seed: number): Map<string, Float32Array> {
  const rng = new Rng(deriveSeed(seed, 1)); // a stream apart from the table's
  const uniform = (count: number, bound: number) => Float32Array.from({ length: count }, () => (2 * rng.next() - 1) * bound);
  return new Map(
    lstmEncoderShapes(n, C, H, layers).map(([name, shape]) => {
      const count = shape.reduce((a, b) => a * b, 1);
      if (name === 'embedding.weight') return [name, standardNormal(count, seed)];
      if (name.startsWith('lstm_head.')) return [name, uniform(count, 1 / Math.sqrt(H))];
      return [name, uniform(count, 1 / Math.sqrt(2 * H))]; // both head layers read 2H
    }),
  );
}

/** A recorded prompt encoder: P (n, C) from its parameters; dP back into their gradients. */
export interface EncoderRecording {
  forward(rec: Recorder): void;
  backward(rec: Recorder, accumulate: boolean): void;
}

/** The LSTM encoder's dispatches over the trainable buffers (`param`/`grad` by name under prompt_encoder.default),
 *  its scratch from `alloc` (f32 count). */
export function recordLstmEncoder(
  dims: { n: number; C: number; H: number; layers: number },
  b: { param: (name: string) => BufferRef; grad: (name: string) => BufferRef; alloc: (floats: number, label: string) => GPUBuffer; P: BufferRef; dP: BufferRef },
): EncoderRecording {
  const { n, C, H, layers } = dims;
  const direction = (at: (name: string) => BufferRef, l: number, reverse: boolean): LstmDirectionBuffers => {
    const s = reverse ? '_reverse' : '';
    return { Wih: at(`lstm_head.weight_ih_l${l}${s}`), Whh: at(`lstm_head.weight_hh_l${l}${s}`), bih: at(`lstm_head.bias_ih_l${l}${s}`), bhh: at(`lstm_head.bias_hh_l${l}${s}`) };
  };
  const stack = (at: (name: string) => BufferRef): LstmLayerBuffers[] =>
    Array.from({ length: layers }, (_, l) => ({ fwd: direction(at, l, false), rev: direction(at, l, true) }));
  const params = stack(b.param);
  const grads = stack(b.grad);
  const state = (l: number, d: string) => ({ gates: b.alloc(n * 4 * H, `lstm${l}.${d}.gates`), cell: b.alloc(n * H, `lstm${l}.${d}.cell`) });
  // each layer's output (n, 2H) and each direction's gates and cells, kept for the backward
  const acts: LstmActivations = {
    Y: Array.from({ length: layers }, (_, l) => b.alloc(n * 2 * H, `lstm${l}.Y`)),
    states: Array.from({ length: layers }, (_, l) => ({ fwd: state(l, 'fwd'), rev: state(l, 'rev') })),
  };
  const z = b.alloc(n * 2 * H, 'head.z'); // the head's ReLU output
  const dz = b.alloc(n * 2 * H, 'head.dz');
  const dY = Array.from({ length: layers }, (_, l) => b.alloc(n * 2 * H, `lstm${l}.dY`));
  const dA = b.alloc(n * 4 * H, 'lstm.dA');
  const dcarry = b.alloc(H, 'lstm.dcarry');
  const E = b.param('embedding.weight');
  const Y = acts.Y[layers - 1];
  const head = { rows: n, K: 2 * H, O: 2 * H };
  const out = { rows: n, K: 2 * H, O: C };
  return {
    forward(rec) {
      recordLstmForward(rec, { n, C, H }, E, params, acts);
      recordDenseForward(rec, head, { X: Y, W: b.param('mlp_head.0.weight'), bias: b.param('mlp_head.0.bias'), Y: z }, true);
      recordDenseForward(rec, out, { X: z, W: b.param('mlp_head.2.weight'), bias: b.param('mlp_head.2.bias'), Y: b.P }, false);
    },
    backward(rec, accumulate) {
      recordDenseParamGrads(rec, out, { dZ: b.dP, X: z, dW: b.grad('mlp_head.2.weight'), db: b.grad('mlp_head.2.bias') }, accumulate);
      recordDenseInputGrad(rec, out, { dZ: b.dP, W: b.param('mlp_head.2.weight'), mask: z, dX: dz }, false);
      recordDenseParamGrads(rec, head, { dZ: dz, X: Y, dW: b.grad('mlp_head.0.weight'), db: b.grad('mlp_head.0.bias') }, accumulate);
      recordDenseInputGrad(rec, head, { dZ: dz, W: b.param('mlp_head.0.weight'), dX: dY[layers - 1] }, false);
      recordLstmBackward(rec, { n, C, H }, { X: E, layers: params, grads, dY, dA, dcarry, dX: b.grad('embedding.weight') }, acts, accumulate);
    },
  };
}
