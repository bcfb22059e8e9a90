// Host side of activation.wgsl: GELU (tanh), SwiGLU, ReLU and SiLU, forward and backward. See the .wgsl header for the contract.
import source from '../../shaders/activation.wgsl?raw';
import { packParams, type BindingAccess, type KernelSpec, type Recorder } from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';
import { elementwiseCost } from './cost.ts';
import { foldWorkgroups, type FoldOptions } from './elementwise.ts';

export const ACTIVATION_OPS = [
  'gelu_forward',
  'gelu_backward',
  'swiglu_forward',
  'swiglu_backward',
  'relu_forward',
  'relu_backward',
  'silu_forward',
  'silu_backward',
] as const;
export type ActivationOp = (typeof ACTIVATION_OPS)[number];

const BINDINGS: Record<ActivationOp, readonly BindingAccess[]> = {
  gelu_forward: ['read', 'read_write'],
  gelu_backward: ['read', 'read', 'read_write'],
  swiglu_forward: ['read', 'read', 'read_write'],
  swiglu_backward: ['read', 'read', 'read', 'read_write', 'read_write'],
  relu_forward: ['read', 'read_write'],
  relu_backward: ['read', 'read', 'read_write'],
  silu_forward: ['read', 'read_write'],
  silu_backward: ['read', 'read', 'read_write'],
};

const WG = 256;

/** Approximate FLOPs per element (tanh and exp count as one each) and f32 operands moved per element. */
const COST: Record<ActivationOp, { flops: number; operands: number }> = {
  gelu_forward: { flops: 8, operands: 2 },
  gelu_backward: { flops: 14, operands: 3 },
  swiglu_forward: { flops: 4, operands: 3 },
  swiglu_backward: { flops: 9, operands: 5 },
  relu_forward: { flops: 1, operands: 2 },
  relu_backward: { flops: 1, operands: 3 },
  silu_forward: { flops: 4, operands: 2 },
  silu_backward: { flops: 7, operands: 3 },
};

export function activationSpec(op: ActivationOp): KernelSpec {
  return {
    label: `activation.${op}`,
    file: 'src/shaders/activation.wgsl',
    wgsl: renderWgsl('activation', source),
    entryPoint: op,
    constants: {},
    bindings: BINDINGS[op],
    paramsBytes: 16,
  };
}

export function allActivationSpecs(_hasF16: boolean): KernelSpec[] {
  return ACTIVATION_OPS.map(activationSpec);
}

function record(rec: Recorder, op: ActivationOp, n: number, buffers: GPUBuffer[], fold: FoldOptions): void {
  const params = packParams([
    ['u32', n],
    ['u32', 0],
    ['u32', 0],
    ['u32', 0],
  ]);
  const c = COST[op];
  rec.dispatch(activationSpec(op), buffers, params, foldWorkgroups(Math.ceil(n / WG), fold.maxWorkgroupsPerDim), elementwiseCost(n, c.flops, 4 * c.operands));
}

/** y = gelu_tanh(x) over n elements. */
export function recordGelu(rec: Recorder, n: number, b: { x: GPUBuffer; y: GPUBuffer }, fold: FoldOptions = {}): void {
  record(rec, 'gelu_forward', n, [b.x, b.y], fold);
}

/** dx = dy · gelu_tanh'(x) over n elements (x is the forward's input). */
export function recordGeluBackward(
  rec: Recorder,
  n: number,
  b: { x: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer },
  fold: FoldOptions = {},
): void {
  record(rec, 'gelu_backward', n, [b.x, b.dy, b.dx], fold);
}

/** out = silu(gate) ⊙ up over n elements. */
export function recordSwiglu(
  rec: Recorder,
  n: number,
  b: { gate: GPUBuffer; up: GPUBuffer; out: GPUBuffer },
  fold: FoldOptions = {},
): void {
  record(rec, 'swiglu_forward', n, [b.gate, b.up, b.out], fold);
}

/** dgate = dout·up·silu'(gate), dup = dout·silu(gate) over n elements. */
export function recordSwigluBackward(
  rec: Recorder,
  n: number,
  b: { gate: GPUBuffer; up: GPUBuffer; dout: GPUBuffer; dgate: GPUBuffer; dup: GPUBuffer },
  fold: FoldOptions = {},
): void {
  record(rec, 'swiglu_backward', n, [b.gate, b.up, b.dout, b.dgate, b.dup], fold);
}

/** An elementwise non-linearity with its own forward and backward entry points (bottleneck adapters'
 *  non_linearity): GPT-2's gelu_new, ReLU or SiLU (swish). */
export type UnaryActivation = 'gelu_new' | 'relu' | 'silu';

const UNARY: Record<UnaryActivation, { forward: ActivationOp; backward: ActivationOp }> = {
  gelu_new: { forward: 'gelu_forward', backward: 'gelu_backward' },
  relu: { forward: 'relu_forward', backward: 'relu_backward' },
  silu: { forward: 'silu_forward', backward: 'silu_backward' },
};

/** y = act(x) over n elements. */
export function recordActivation(rec: Recorder, act: UnaryActivation, n: number, b: { x: GPUBuffer; y: GPUBuffer }, fold: FoldOptions = {}): void {
  record(rec, UNARY[act].forward, n, [b.x, b.y], fold);
}

/** dx = dy · act'(x) over n elements (x is the forward's input). */
export function recordActivationBackward(
  rec: Recorder,
  act: UnaryActivation,
  n: number,
  b: { x: GPUBuffer; dy: GPUBuffer; dx: GPUBuffer },
  fold: FoldOptions = {},
): void {
  record(rec, UNARY[act].backward, n, [b.x, b.dy, b.dx], fold);
}
