// Host side of virtual_tokens.wgsl: prompt tuning's virtual tokens added into the embeddings, and their gradient.
// See the .wgsl header for the contract.
import source from '../../shaders/virtual_tokens.wgsl?raw';
import { packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';
import { foldWorkgroups } from './elementwise.ts';

export interface VirtualTokensShape {
  rows: number;
  C: number;
  /** The first virtual id (the embedding table's rows). */
  base: number;
  /** Virtual tokens: P has n rows. */
  n: number;
}

export function virtualTokensSpec(pass: 'forward' | 'backward', accumulate = true): KernelSpec {
  return {
    label: pass === 'forward' ? 'virtual_tokens.forward' : `virtual_tokens.backward${accumulate ? '.acc' : ''}`,
    file: 'src/shaders/virtual_tokens.wgsl',
    wgsl: renderWgsl('virtual_tokens', source),
    entryPoint: pass,
    constants: pass === 'backward' ? { ACCUMULATE: accumulate ? 1 : 0 } : {},
    bindings: ['read', 'read', 'read_write'],
    paramsBytes: 16,
  };
}

export function allVirtualTokensSpecs(): KernelSpec[] {
  return [virtualTokensSpec('forward'), virtualTokensSpec('backward', false), virtualTokensSpec('backward', true)];
}

function params(s: VirtualTokensShape): ArrayBuffer {
  return packParams([
    ['u32', s.rows],
    ['u32', s.C],
    ['u32', s.base],
    ['u32', s.n],
  ]);
}

/** x (rows, C) += P[ids[t] − base] at every virtual position. */
export function recordVirtualTokensForward(rec: Recorder, s: VirtualTokensShape, b: { ids: BufferRef; P: BufferRef; x: BufferRef }, maxWorkgroupsPerDim?: number): void {
  rec.dispatch(virtualTokensSpec('forward'), [b.ids, b.P, b.x], params(s), foldWorkgroups(Math.ceil((s.rows * s.C) / 256), maxWorkgroupsPerDim), {
    flops: s.rows * s.C,
    bytes: s.rows * 4 + s.rows * s.C * 8,
  });
}

/** dP (n, C) (+)= Σ over the positions holding base + j of dx. */
export function recordVirtualTokensBackward(rec: Recorder, s: VirtualTokensShape, b: { ids: BufferRef; dx: BufferRef; dP: BufferRef }, accumulate = true): void {
  rec.dispatch(virtualTokensSpec('backward', accumulate), [b.ids, b.dx, b.dP], params(s), [Math.ceil(s.C / 64), s.n, 1], {
    flops: s.rows * s.C,
    bytes: s.rows * 4 * s.n * s.C + s.n * s.C * 4 * (accumulate ? 2 : 1),
  });
}
