// Host side of adalora.wgsl: AdaLoRA's effective A, the chain rule through it, the orthogonality regulariser, the
// importance EMAs and the triplet scores over every module at once. See the .wgsl header for the contract;
// ref/adalora.ref.ts is the float64 reference.
import source from '../../shaders/adalora.wgsl?raw';
import { KernelError, packParams, type KernelSpec, type Recorder } from '../kernel.ts';

export type AdaloraEntry = 'effective_a' | 'grad_a' | 'gram' | 'orth_loss' | 'orth_grad' | 'importance' | 'scores';

const ENTRIES: readonly AdaloraEntry[] = ['effective_a', 'grad_a', 'gram', 'orth_loss', 'orth_grad', 'importance', 'scores'];

export function adaloraSpec(entry: AdaloraEntry): KernelSpec {
  return {
    label: `adalora.${entry}`,
    file: 'src/shaders/adalora.wgsl',
    wgsl: source,
    entryPoint: entry,
    constants: {},
    bindings: ['read_write', 'read_write', 'read', 'read_write', 'read_write', 'read_write'],
    paramsBytes: 48,
  };
}

export function allAdaloraSpecs(): KernelSpec[] {
  return ENTRIES.map(adaloraSpec);
}

/** One module's place in the flat buffers, in elements (see the .wgsl header). */
export interface AdaloraModuleLayout {
  aOff: number;
  eOff: number;
  bOff: number;
  in: number;
  out: number;
  /** A_eff's offset in the aeff buffer. */
  effOff: number;
  iptOff: number;
  uncOff: number;
  maskOff: number;
}

export interface AdaloraDims {
  r: number;
  modules: readonly AdaloraModuleLayout[];
}

export interface AdaloraBuffers {
  params: GPUBuffer;
  grads: GPUBuffer;
  /** adaloraTable(dims) uploaded. */
  table: GPUBuffer;
  aeff: GPUBuffer;
  /** adaloraScratchFloats(dims) f32. */
  scratch: GPUBuffer;
}

/** The span A..E a module's importance EMAs mirror: its E must follow its A and B. */
export function adaloraSpan(m: AdaloraModuleLayout, r: number): number {
  if (!(m.eOff > m.aOff && m.bOff > m.aOff && m.eOff > m.bOff)) throw new KernelError(`adalora: a module's segments must be A, B, E in that order (A ${m.aOff}, B ${m.bOff}, E ${m.eOff})`);
  return m.eOff + r - m.aOff;
}

export function adaloraTable(d: AdaloraDims): Uint32Array {
  const t = new Uint32Array(Math.max(1, d.modules.length) * 12);
  d.modules.forEach((m, i) => t.set([m.aOff, m.eOff, m.bOff, m.in, m.out, m.effOff, m.iptOff, m.uncOff, m.maskOff, adaloraSpan(m, d.r), 0, 0], i * 12));
  return t;
}

/** scores (M·r), N (2M·r²), f (2M) and R. */
export function adaloraScratchFloats(d: AdaloraDims): number {
  const M = d.modules.length;
  return M * d.r + 2 * M * d.r * d.r + 2 * M + 1;
}

/** Where R (the regulariser's value, written by the loss step) sits in the scratch buffer. */
export function adaloraRegulariserIndex(d: AdaloraDims): number {
  return adaloraScratchFloats(d) - 1;
}

interface Knobs {
  mask?: boolean;
  weight?: number;
  beta1?: number;
  beta2?: number;
}

function params(d: AdaloraDims, k: Knobs = {}): ArrayBuffer {
  const M = d.modules.length;
  const b1 = k.beta1 ?? 0;
  const b2 = k.beta2 ?? 0;
  return packParams([
    ['u32', M],
    ['u32', d.r],
    ['u32', k.mask ? 1 : 0],
    ['u32', M * d.r],
    ['u32', M * d.r + 2 * M * d.r * d.r],
    ['f32', k.weight ?? 0],
    ['f32', b1],
    ['f32', 1 - b1], // 1 − β in float64, as torch computes it
    ['f32', b2],
    ['f32', 1 - b2],
    ['u32', 0],
    ['u32', 0],
  ]);
}

function check(d: AdaloraDims, what: string, groups: number): number {
  if (!(Number.isInteger(d.r) && d.r > 0) || d.modules.length === 0) throw new KernelError(`adalora.${what}: r ${d.r} and ${d.modules.length} modules must be positive`);
  if (groups > 65535) throw new KernelError(`adalora.${what}: ${groups} workgroups in one dimension, above 65535`);
  return groups;
}

function buffers(b: AdaloraBuffers, aux: GPUBuffer) {
  return [b.params, b.grads, b.table, b.aeff, b.scratch, aux];
}

/** A_eff = diag(E)·A for every module; with `mask`, E ← E ⊙ mask first (the budget's masked_fill_). `aux`: any
 *  buffer not among `b` (it is not read). */
export function recordEffectiveA(rec: Recorder, d: AdaloraDims, b: AdaloraBuffers, aux: GPUBuffer, mask: boolean): void {
  const rows = check(d, 'effective_a', d.modules.length * d.r);
  const n = d.modules.reduce((s, m) => s + d.r * m.in, 0);
  rec.dispatch(adaloraSpec('effective_a'), buffers(b, aux), params(d, { mask }), [rows, 1, 1], { flops: n, bytes: 8 * n });
}

/** G's A rows from ∂L/∂A_eff to ∂L/∂A, and ∂L/∂E into G's E. */
export function recordGradThroughE(rec: Recorder, d: AdaloraDims, b: AdaloraBuffers, aux: GPUBuffer): void {
  const rows = check(d, 'grad_a', d.modules.length * d.r);
  const n = d.modules.reduce((s, m) => s + d.r * m.in, 0);
  rec.dispatch(adaloraSpec('grad_a'), buffers(b, aux), params(d), [rows, 1, 1], { flops: 3 * n, bytes: 16 * n });
}

/** weight·R into the loss total [Σ loss, count] (as weight·R·count), and weight·∂R/∂A, ∂R/∂B into G. */
export function recordOrthRegulariser(rec: Recorder, d: AdaloraDims, b: AdaloraBuffers, loss: GPUBuffer, weight: number): void {
  const M = d.modules.length;
  check(d, 'gram', d.r * d.r);
  check(d, 'gram', 2 * M);
  const maxElems = d.modules.reduce((s, m) => Math.max(s, d.r * m.in, d.r * m.out), 0);
  const x = check(d, 'orth_grad', Math.ceil(maxElems / 64));
  const n = d.modules.reduce((s, m) => s + d.r * (m.in + m.out), 0);
  const p = params(d, { weight });
  rec.dispatch(adaloraSpec('gram'), buffers(b, loss), p, [d.r * d.r, 2 * M, 1], { flops: 2 * d.r * n, bytes: 8 * d.r * n });
  rec.dispatch(adaloraSpec('orth_loss'), buffers(b, loss), p, [1, 1, 1], { flops: 4 * M * d.r * d.r });
  rec.dispatch(adaloraSpec('orth_grad'), buffers(b, loss), p, [x, 2 * M, 1], { flops: 2 * d.r * n, bytes: 12 * n });
}

/** The importance EMAs from the updated params and the step's gradient times AdamW's clip coefficient (`status`:
 *  AdamW's status buffer). */
export function recordImportance(rec: Recorder, d: AdaloraDims, b: AdaloraBuffers, status: GPUBuffer, beta1: number, beta2: number): void {
  const span = d.modules.reduce((s, m) => Math.max(s, adaloraSpan(m, d.r)), 0);
  const x = check(d, 'importance', Math.ceil(span / 64));
  check(d, 'importance', d.modules.length);
  rec.dispatch(adaloraSpec('importance'), buffers(b, status), params(d, { beta1, beta2 }), [x, d.modules.length, 1], { flops: 8 * span * d.modules.length, bytes: 24 * span * d.modules.length });
}

/** Every triplet's score into scratch[0, M·r) (module-major). */
export function recordScores(rec: Recorder, d: AdaloraDims, b: AdaloraBuffers, aux: GPUBuffer): void {
  const rows = check(d, 'scores', d.modules.length * d.r);
  const n = d.modules.reduce((s, m) => s + d.r * (m.in + m.out), 0);
  rec.dispatch(adaloraSpec('scores'), buffers(b, aux), params(d), [rows, 1, 1], { flops: 2 * n, bytes: 8 * n });
}
