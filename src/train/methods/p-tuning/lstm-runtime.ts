// P-tuning's LSTM prompt encoder on the GPU (lstm.ts holds its tensors): at every forward the stacked bidirectional
// LSTM runs over the table (kernels/lstm.ts: the input projections batched over the n steps, then a dispatch per
// step and direction) and the head, Linear(2H, 2H) → ReLU → Linear(2H, C) on dense-mlp.ts, makes P; the backward
// takes dP back through the head and the LSTM (through time) into every tensor's gradient. Initialised as PEFT's
// modules are: the table N(0, 1) (nn.Embedding), every LSTM tensor U(±1/√H) (nn.LSTM.reset_parameters), each
// Linear's weight and bias U(±1/√fan_in) (nn.Linear's kaiming_uniform(a = √5)), from the run's seed; the golden runs
// pass PEFT's own draw.
import { STORAGE_USAGE } from '../../../gpu/buffers.ts';
import type { Engine } from '../../../gpu/engine.ts';
import type { BufferRef } from '../../../gpu/kernel.ts';
import { recordLstmBackward, recordLstmForward, type LstmActivations, type LstmDirectionBuffers, type LstmLayerBuffers } from '../../../gpu/kernels/lstm.ts';
import { deriveSeed, Rng } from '../../../data/rng.ts';
import { createDenseMlp, type DenseLayer, type DenseMlp } from '../dense-mlp.ts';
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

/** The encoder's tensors in the flat trainable buffers, by name under prompt_encoder.default. */
export interface EncoderTensors {
  param(name: string): BufferRef;
  grad(name: string): BufferRef;
}

/** nn.Linear `name` (its .weight and .bias) as dense-mlp.ts takes it. */
export function denseLayer(t: EncoderTensors, name: string, inF: number, outF: number, activation: DenseLayer['activation']): DenseLayer {
  return { in: inF, out: outF, weight: t.param(`${name}.weight`), bias: t.param(`${name}.bias`), dWeight: t.grad(`${name}.weight`), dBias: t.grad(`${name}.bias`), activation };
}

/** The LSTM encoder, shaped as the MLP's (dense-mlp.ts's DenseMlp): output P (n, C), dOutput dP written by the caller
 *  before recordBackward, the scratch released by `release`. */
export function createLstmEncoder(e: Engine, dims: { n: number; C: number; H: number; layers: number }, t: EncoderTensors): DenseMlp {
  const { n, C, H, layers } = dims;
  const scratch: GPUBuffer[] = [];
  const alloc = (floats: number, label: string) => {
    const b = e.buffers.acquire(floats * 4, STORAGE_USAGE, `ptuning.${label}`);
    scratch.push(b);
    return b;
  };
  const direction = (at: (name: string) => BufferRef, l: number, reverse: boolean): LstmDirectionBuffers => {
    const s = reverse ? '_reverse' : '';
    return { Wih: at(`lstm_head.weight_ih_l${l}${s}`), Whh: at(`lstm_head.weight_hh_l${l}${s}`), bih: at(`lstm_head.bias_ih_l${l}${s}`), bhh: at(`lstm_head.bias_hh_l${l}${s}`) };
  };
  const stack = (at: (name: string) => BufferRef): LstmLayerBuffers[] =>
    Array.from({ length: layers }, (_, l) => ({ fwd: direction(at, l, false), rev: direction(at, l, true) }));
  const params = stack(t.param);
  const grads = stack(t.grad);
  const state = (l: number, d: string) => ({ gates: alloc(n * 4 * H, `lstm${l}.${d}.gates`), cell: alloc(n * H, `lstm${l}.${d}.cell`) });
  // each layer's output (n, 2H) and each direction's gates and cells, kept for the backward; each layer's output
  // gradient (n, 2H), and the steps' dA (n, 4H) and carried cell gradient (H), shared by all directions
  const acts: LstmActivations = {
    Y: Array.from({ length: layers }, (_, l) => alloc(n * 2 * H, `lstm${l}.Y`)),
    states: Array.from({ length: layers }, (_, l) => ({ fwd: state(l, 'fwd'), rev: state(l, 'rev') })),
  };
  const dY = Array.from({ length: layers }, (_, l) => alloc(n * 2 * H, `lstm${l}.dY`));
  const dA = alloc(n * 4 * H, 'lstm.dA');
  const dcarry = alloc(H, 'lstm.dcarry');
  const E = t.param('embedding.weight');
  const head = createDenseMlp(e, {
    label: 'ptuning.head',
    rows: n,
    input: acts.Y[layers - 1],
    dInput: dY[layers - 1],
    layers: [denseLayer(t, 'mlp_head.0', 2 * H, 2 * H, 'relu'), denseLayer(t, 'mlp_head.2', 2 * H, C, 'none')],
  });
  return {
    output: head.output,
    dOutput: head.dOutput,
    recordForward(rec) {
      recordLstmForward(rec, { n, C, H }, E, params, acts);
      head.recordForward(rec);
    },
    recordBackward(rec, accumulate) {
      // The head adds its input gradient, like its parameters' gradients, when accumulating; but that gradient feeds
      // only this backward's LSTM steps, so it must start from zero each time.
      if (accumulate) rec.clear(dY[layers - 1]);
      head.recordBackward(rec, accumulate);
      recordLstmBackward(rec, { n, C, H }, { X: E, layers: params, grads, dY, dA, dcarry, dX: t.grad('embedding.weight') }, acts, accumulate);
    },
    release() {
      head.release();
      for (const b of scratch.splice(0)) e.buffers.release(b);
    },
  };
}
