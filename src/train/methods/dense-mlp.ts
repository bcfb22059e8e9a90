// A small MLP over `rows` rows (Linear → act → … → Linear), recorded with prompt_encoder.wgsl's dense kernels
// (src/gpu/kernels/prompt-encoder.ts): P-tuning's encoder and prefix tuning's projection. The forward keeps every
// hidden activation (the backward's X and its ReLU mask or tanh output); the backward goes from the last layer to the
// first, each layer's dW and db and then its input's gradient:
//   forward   y_i = act_i(y_{i−1} · W_iᵀ + b_i)                     y_{−1} = input, y_{L−1} = output (act none)
//   backward  dW_i (+)= dz_iᵀ · y_{i−1}   db_i (+)= Σ dz_i           dz_{L−1} = dOutput
//             dz_{i−1} = dz_i · W_i ⊙ act_{i−1}'(y_{i−1})   dInput (+)= dz_0 · W_0
// The intermediate dz are this module's scratch, always overwritten; the parameter and input gradients are added to
// when accumulating (every micro-batch after a step's first), else overwritten.
import { STORAGE_USAGE } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import type { BufferRef, Recorder } from '../../gpu/kernel.ts';
import { recordDenseForward, recordDenseInputGrad, recordDenseParamGrads, type DenseAct, type DenseShape } from '../../gpu/kernels/prompt-encoder.ts';

/** One nn.Linear(in, out) and the activation after it. The tensors are usually ranges of the flat trainable buffers. */
export interface DenseLayer {
  in: number;
  out: number;
  weight: BufferRef; // (out, in)
  bias: BufferRef; // (out)
  dWeight: BufferRef; // (out, in)
  dBias: BufferRef; // (out)
  activation: 'relu' | 'tanh' | 'none';
}

export interface DenseMlpOptions {
  /** Names the scratch buffers (`${label}.h0`, …). */
  label: string;
  rows: number;
  input: BufferRef; // (rows, layers[0].in)
  dInput: BufferRef; // (rows, layers[0].in) the input's gradient
  layers: readonly DenseLayer[];
}

export interface DenseMlp {
  /** (rows, last layer's out): what recordForward writes. */
  readonly output: GPUBuffer;
  /** (rows, last layer's out): the gradient at the output, written (not added to) by the caller before recordBackward. */
  readonly dOutput: GPUBuffer;
  recordForward(rec: Recorder): void;
  /** Every layer's dWeight and dBias, and dInput: added to when `accumulate`, else overwritten. */
  recordBackward(rec: Recorder, accumulate: boolean): void;
  /** Gives the scratch buffers back to the engine's pool. */
  release(): void;
}

const FORWARD_ACT: Record<DenseLayer['activation'], DenseAct> = { relu: 'relu', tanh: 'tanh', none: false };

function checkLayers(layers: readonly DenseLayer[]): void {
  if (!layers.length) throw new Error('dense MLP: no layers');
  layers.forEach((l, i) => {
    if (i > 0 && l.in !== layers[i - 1].out) throw new Error(`dense MLP: layers[${i}].in is ${l.in}, but layers[${i - 1}].out is ${layers[i - 1].out}`);
  });
  // The backward takes dOutput as the last layer's pre-activation gradient: an activation there would be skipped.
  const last = layers[layers.length - 1];
  if (last.activation !== 'none') throw new Error(`dense MLP: the last layer's activation must be 'none' (got '${last.activation}')`);
}

/** Allocates the MLP's scratch (released by `release`); nothing is recorded until recordForward/recordBackward. */
export function createDenseMlp(e: Engine, o: DenseMlpOptions): DenseMlp {
  const { rows, layers } = o;
  checkLayers(layers);
  const L = layers.length;
  const scratch: GPUBuffer[] = [];
  const alloc = (floats: number, name: string) => {
    const b = e.buffers.acquire(floats * 4, STORAGE_USAGE, `${o.label}.${name}`);
    scratch.push(b);
    return b;
  };
  // (rows, layers[i].out) for i < L − 1: the hidden activations, then the output and its gradient, then the hidden
  // pre-activation gradients.
  const hidden = layers.slice(0, -1).map((l, i) => alloc(rows * l.out, `h${i}`));
  const output = alloc(rows * layers[L - 1].out, 'out');
  const dOutput = alloc(rows * layers[L - 1].out, 'dOut');
  const dHidden = layers.slice(0, -1).map((l, i) => alloc(rows * l.out, `dz${i}`));
  const shape = (l: DenseLayer): DenseShape => ({ rows, K: l.in, O: l.out });
  const inputOf = (i: number) => (i === 0 ? o.input : hidden[i - 1]);

  return {
    output,
    dOutput,
    recordForward(rec) {
      layers.forEach((l, i) => {
        recordDenseForward(rec, shape(l), { X: inputOf(i), W: l.weight, bias: l.bias, Y: i === L - 1 ? output : hidden[i] }, FORWARD_ACT[l.activation]);
      });
    },
    recordBackward(rec, accumulate) {
      for (let i = L - 1; i >= 0; i--) {
        const l = layers[i];
        const dZ = i === L - 1 ? dOutput : dHidden[i];
        recordDenseParamGrads(rec, shape(l), { dZ, X: inputOf(i), dW: l.dWeight, db: l.dBias }, accumulate);
        if (i === 0) {
          recordDenseInputGrad(rec, shape(l), { dZ, W: l.weight, dX: o.dInput }, accumulate);
        } else {
          // The input is the previous layer's activation output: its ReLU mask or its tanh value t (for 1 − t²).
          const through = layers[i - 1].activation;
          const y = hidden[i - 1];
          const act = through === 'relu' ? { mask: y } : through === 'tanh' ? { tanh: y } : {};
          recordDenseInputGrad(rec, shape(l), { dZ, W: l.weight, ...act, dX: dHidden[i - 1] }, false);
        }
      }
    },
    release() {
      for (const b of scratch.splice(0)) e.buffers.release(b);
    },
  };
}
