// Host side of lstm.wgsl: a stacked bidirectional nn.LSTM over n rows (P-tuning's LSTM prompt encoder), forward and
// backward through time. The input projections and the products that are plain matrix products (dW_ih, the biases,
// dX) run on prompt_encoder.wgsl's dense entry points; the steps on lstm.wgsl. See the .wgsl header for the contract.
import source from '../../shaders/lstm.wgsl?raw';
import { packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';
import { foldWorkgroups } from './elementwise.ts';
import { recordDenseBiasGrad, recordDenseForward, recordDenseInputGrad, recordDenseParamGrads } from './prompt-encoder.ts';

type Entry = 'cell_forward' | 'cell_backward' | 'grad_whh';

const BINDINGS = {
  cell_forward: ['read', 'read', 'read_write', 'read_write', 'read_write'],
  cell_backward: ['read', 'read', 'read', 'read', 'read_write', 'read_write'],
  grad_whh: ['read', 'read', 'read_write'],
} as const;

/** The shader's "no step" (u32 max). */
const NONE = 0xffffffff;

export function lstmSpec(entry: Entry, accumulate = false): KernelSpec {
  if (accumulate && entry !== 'grad_whh') throw new Error(`lstm.${entry}: only grad_whh accumulates`);
  return {
    label: `lstm.${entry}${accumulate ? '.accumulate' : ''}`,
    file: 'src/shaders/lstm.wgsl',
    wgsl: renderWgsl('lstm', source),
    entryPoint: entry,
    constants: entry === 'grad_whh' ? { ACCUMULATE: accumulate ? 1 : 0 } : {},
    bindings: BINDINGS[entry],
    paramsBytes: 32,
  };
}

export function allLstmSpecs(): KernelSpec[] {
  return [lstmSpec('cell_forward'), lstmSpec('cell_backward'), lstmSpec('grad_whh', false), lstmSpec('grad_whh', true)];
}

/** One direction of one layer: n steps of input width K, hidden H; its h goes to columns ycol … ycol+H−1 of a
 *  (n, ystride) output. */
export interface LstmDirectionShape {
  n: number;
  K: number;
  H: number;
  reverse: boolean;
  ycol: number;
  ystride: number;
}

/** Time steps in processing order, each with its neighbours in that order (NONE at the ends). */
function steps(n: number, reverse: boolean): { t: number; prev: number; next: number }[] {
  const order = Array.from({ length: n }, (_, s) => (reverse ? n - 1 - s : s));
  return order.map((t, s) => ({ t, prev: s > 0 ? order[s - 1] : NONE, next: s + 1 < n ? order[s + 1] : NONE }));
}

function params(s: LstmDirectionShape, step: { t: number; prev: number; next: number }): ArrayBuffer {
  return packParams([
    ['u32', s.n], ['u32', s.H], ['u32', step.t], ['u32', step.prev],
    ['u32', step.next], ['u32', s.ycol], ['u32', s.ystride], ['u32', s.reverse ? 1 : 0],
  ]);
}

/** A direction's parameters as nn.LSTM stores them: W_ih (4H, K), W_hh (4H, H), b_ih, b_hh (4H). */
export interface LstmDirectionBuffers {
  Wih: BufferRef;
  Whh: BufferRef;
  bih: BufferRef;
  bhh: BufferRef;
}

/** What a direction's forward keeps for its backward: gates (n, 4H), activated; cell (n, H). */
export interface LstmDirectionState {
  gates: BufferRef;
  cell: BufferRef;
}

/** A direction's forward over X (n, K): the input projection for all steps, then n cell steps writing Y's columns. */
export function recordLstmDirectionForward(rec: Recorder, s: LstmDirectionShape, b: LstmDirectionBuffers & LstmDirectionState & { X: BufferRef; Y: BufferRef }): void {
  const { n, K, H } = s;
  recordDenseForward(rec, { rows: n, K, O: 4 * H }, { X: b.X, W: b.Wih, bias: b.bih, Y: b.gates }, false);
  const spec = lstmSpec('cell_forward');
  for (const step of steps(n, s.reverse)) {
    rec.dispatch(spec, [b.Whh, b.bhh, b.gates, b.cell, b.Y], params(s, step), [Math.ceil(H / 64), 1, 1], { flops: 8 * H * H + 20 * H, bytes: 4 * (4 * H * H + 12 * H) });
  }
}

/** A direction's backward from dY's columns: dA step by step (into `dA`, (n, 4H) scratch; `dcarry` (H) scratch),
 *  then dW_ih, db_ih, db_hh, dW_hh (+)= per `accumulate`, and dX (n, K) (+)= per `accumulateDX`. */
export function recordLstmDirectionBackward(
  rec: Recorder,
  s: LstmDirectionShape,
  b: LstmDirectionBuffers & LstmDirectionState & { X: BufferRef; Y: BufferRef; dY: BufferRef; dA: BufferRef; dcarry: BufferRef; dX: BufferRef },
  g: LstmDirectionBuffers,
  o: { accumulate: boolean; accumulateDX: boolean },
): void {
  const { n, K, H } = s;
  const spec = lstmSpec('cell_backward');
  for (const step of steps(n, s.reverse).reverse()) {
    rec.dispatch(spec, [b.Whh, b.dY, b.gates, b.cell, b.dA, b.dcarry], params(s, step), [Math.ceil(H / 64), 1, 1], { flops: 8 * H * H + 20 * H, bytes: 4 * (4 * H * H + 16 * H) });
  }
  const dense = { rows: n, K, O: 4 * H };
  recordDenseParamGrads(rec, dense, { dZ: b.dA, X: b.X, dW: g.Wih, db: g.bih }, o.accumulate);
  recordDenseBiasGrad(rec, dense, { dZ: b.dA, db: g.bhh }, o.accumulate);
  rec.dispatch(lstmSpec('grad_whh', o.accumulate), [b.dA, b.Y, g.Whh], params(s, { t: 0, prev: NONE, next: NONE }), foldWorkgroups(Math.ceil((4 * H * H) / 64)), {
    flops: 8 * n * H * H,
    bytes: 4 * (4 * n * H + n * H + 4 * H * H),
  });
  recordDenseInputGrad(rec, dense, { dZ: b.dA, W: b.Wih, dX: b.dX }, o.accumulateDX);
}

/** A stacked bidirectional LSTM over X (n, C): layer l reads layer l − 1's output (n, 2H), layer 0 reads X. */
export interface LstmShape {
  n: number;
  C: number;
  H: number;
}

export interface LstmLayerBuffers {
  fwd: LstmDirectionBuffers;
  rev: LstmDirectionBuffers;
}

/** Each layer's output Y (n, 2H) and each direction's state, the scratch a forward fills and its backward reads. */
export interface LstmActivations {
  Y: BufferRef[];
  states: { fwd: LstmDirectionState; rev: LstmDirectionState }[];
}

function directionShape(s: LstmShape, l: number, reverse: boolean): LstmDirectionShape {
  return { n: s.n, K: l === 0 ? s.C : 2 * s.H, H: s.H, reverse, ycol: reverse ? s.H : 0, ystride: 2 * s.H };
}

/** The stack's forward: every layer's Y; the last one's is the LSTM's output. */
export function recordLstmForward(rec: Recorder, s: LstmShape, X: BufferRef, layers: readonly LstmLayerBuffers[], a: LstmActivations): void {
  layers.forEach((layer, l) => {
    const input = l === 0 ? X : a.Y[l - 1];
    for (const d of ['fwd', 'rev'] as const) {
      recordLstmDirectionForward(rec, directionShape(s, l, d === 'rev'), { ...layer[d], ...a.states[l][d], X: input, Y: a.Y[l] });
    }
  });
}

/** The stack's backward from dY[last] (the gradient of its output): every parameter's gradient (+)= per
 *  `accumulate`, dX (n, C) (+)= likewise; dY[l] for l < last are scratch (n, 2H) it fills; dA (n, 4H), dcarry (H). */
export function recordLstmBackward(
  rec: Recorder,
  s: LstmShape,
  b: { X: BufferRef; layers: readonly LstmLayerBuffers[]; grads: readonly LstmLayerBuffers[]; dY: BufferRef[]; dA: BufferRef; dcarry: BufferRef; dX: BufferRef },
  a: LstmActivations,
  accumulate: boolean,
): void {
  for (let l = b.layers.length - 1; l >= 0; l--) {
    const input = l === 0 ? b.X : a.Y[l - 1];
    const dInput = l === 0 ? b.dX : b.dY[l - 1];
    (['fwd', 'rev'] as const).forEach((d, i) => {
      const bufs = { ...b.layers[l][d], ...a.states[l][d], X: input, Y: a.Y[l], dY: b.dY[l], dA: b.dA, dcarry: b.dcarry, dX: dInput };
      // the reverse direction adds its input gradient to the forward's; layer 0's lands in the table's gradient
      recordLstmDirectionBackward(rec, directionShape(s, l, d === 'rev'), bufs, b.grads[l][d], { accumulate, accumulateDX: i === 1 || (l === 0 && accumulate) });
    });
  }
}
