// Host side of prompt_encoder.wgsl: P-tuning's MLP prompt encoder, forward and backward, over the n virtual tokens.
// See the .wgsl header for the contract.
import source from '../../shaders/prompt_encoder.wgsl?raw';
import { packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';
import { foldWorkgroups } from './elementwise.ts';

type Entry = 'linear_fwd' | 'grad_w' | 'grad_b' | 'grad_x';

export interface PromptEncoderVariant {
  relu?: boolean;
  tanh?: boolean;
  mask?: boolean;
  tanhGrad?: boolean;
  accumulate?: boolean;
}

/** A dense layer's activation: ReLU (P-tuning; `true` says the same), tanh (prefix tuning's projection), or none. */
export type DenseAct = boolean | 'relu' | 'tanh';

export function promptEncoderSpec(entry: Entry, v: PromptEncoderVariant = {}): KernelSpec {
  const constants: Record<string, number> =
    entry === 'linear_fwd'
      ? { RELU: v.relu ? 1 : 0, TANH: v.tanh ? 1 : 0 }
      : entry === 'grad_x'
        ? { MASK: v.mask ? 1 : 0, TANH_GRAD: v.tanhGrad ? 1 : 0, ACCUMULATE: v.accumulate ? 1 : 0 }
        : { ACCUMULATE: v.accumulate ? 1 : 0 };
  if ((v.relu && v.tanh) || (v.mask && v.tanhGrad)) throw new Error(`prompt_encoder.${entry}: one activation at a time`);
  const flags = Object.entries(constants).filter(([, x]) => x).map(([k]) => `.${k.toLowerCase()}`).join('');
  return {
    label: `prompt_encoder.${entry}${flags}`,
    file: 'src/shaders/prompt_encoder.wgsl',
    wgsl: renderWgsl('prompt_encoder', source),
    entryPoint: entry,
    constants,
    bindings: ['read', 'read', 'read', 'read_write'],
    paramsBytes: 16,
  };
}

export function allPromptEncoderSpecs(): KernelSpec[] {
  const bools = [false, true];
  return [
    ...bools.map((relu) => promptEncoderSpec('linear_fwd', { relu })),
    promptEncoderSpec('linear_fwd', { tanh: true }),
    ...bools.flatMap((accumulate) => [promptEncoderSpec('grad_w', { accumulate }), promptEncoderSpec('grad_b', { accumulate })]),
    ...bools.flatMap((mask) => bools.map((accumulate) => promptEncoderSpec('grad_x', { mask, accumulate }))),
    ...bools.map((accumulate) => promptEncoderSpec('grad_x', { tanhGrad: true, accumulate })),
  ];
}

/** rows × K in, O out (nn.Linear(K, O) over `rows` rows). */
export interface DenseShape {
  rows: number;
  K: number;
  O: number;
}

function dispatch(rec: Recorder, spec: KernelSpec, s: DenseShape, buffers: BufferRef[], elements: number, flops: number): void {
  rec.dispatch(spec, buffers, packParams([['u32', s.rows], ['u32', s.K], ['u32', s.O], ['u32', 0]]), foldWorkgroups(Math.ceil(elements / 64)), {
    flops,
    bytes: 4 * (s.rows * s.K + s.O * s.K + s.rows * s.O),
  });
}

/** Y = act(X · Wᵀ + b). */
export function recordDenseForward(rec: Recorder, s: DenseShape, b: { X: BufferRef; W: BufferRef; bias: BufferRef; Y: BufferRef }, act: DenseAct): void {
  const v = { relu: act === true || act === 'relu', tanh: act === 'tanh' };
  dispatch(rec, promptEncoderSpec('linear_fwd', v), s, [b.X, b.W, b.bias, b.Y], s.rows * s.O, 2 * s.rows * s.K * s.O);
}

/** dW (+)= dZᵀ · X and db (+)= Σ dZ. */
export function recordDenseParamGrads(rec: Recorder, s: DenseShape, b: { dZ: BufferRef; X: BufferRef; dW: BufferRef; db: BufferRef }, accumulate: boolean): void {
  dispatch(rec, promptEncoderSpec('grad_w', { accumulate }), s, [b.dZ, b.X, rec.unused, b.dW], s.O * s.K, 2 * s.rows * s.K * s.O);
  recordDenseBiasGrad(rec, s, { dZ: b.dZ, db: b.db }, accumulate);
}

/** db (+)= Σ dZ alone (an LSTM's second bias, b_hh, whose gradient is b_ih's). */
export function recordDenseBiasGrad(rec: Recorder, s: DenseShape, b: { dZ: BufferRef; db: BufferRef }, accumulate: boolean): void {
  dispatch(rec, promptEncoderSpec('grad_b', { accumulate }), s, [b.dZ, rec.unused, rec.unused, b.db], s.O, s.rows * s.O);
}

/** dX (+)= dZ · W, zeroed where `mask` (the input's ReLU output) is not positive, or times 1 − t² where `tanh` (the
 *  input's tanh output t) is given. */
export function recordDenseInputGrad(rec: Recorder, s: DenseShape, b: { dZ: BufferRef; W: BufferRef; mask?: BufferRef; tanh?: BufferRef; dX: BufferRef }, accumulate: boolean): void {
  if (b.mask && b.tanh) throw new Error('recordDenseInputGrad: a ReLU mask or a tanh output, not both');
  const v = { mask: !!b.mask, tanhGrad: !!b.tanh, accumulate };
  dispatch(rec, promptEncoderSpec('grad_x', v), s, [b.dZ, b.W, b.mask ?? b.tanh ?? rec.unused, b.dX], s.rows * s.K, 2 * s.rows * s.K * s.O);
}
