// The flat f32 buffers every method's trainable tensors live in: params, grads and AdamW's two moments laid out by
// planAdamwLayout, plus the segment table, the norm partials and the step's status (see adamw.wgsl), so one AdamW
// step updates every tensor of a run in three dispatches whatever the method.
import { STORAGE_USAGE, writeBuffer } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import { ADAMW_MAX_PARTIALS, ADAMW_STATUS_FLOATS, type AdamwLayout } from '../gpu/kernels/adamw.ts';
import type { TrainableBuffers } from './methods/method.ts';

/** Allocates the buffers of `layout`, params from `host` (its full length) and the rest zero. */
export function allocateTrainable(e: Engine, layout: AdamwLayout, host: Float32Array, label: string): TrainableBuffers {
  if (host.length !== layout.totalLength) throw new Error(`${label}: ${host.length} initial values for a layout of ${layout.totalLength}`);
  const alloc = (name: string, values: Float32Array) => {
    const b = e.buffers.acquire(layout.totalLength * 4, STORAGE_USAGE, `${label}.${name}`);
    writeBuffer(e.device, b, values);
    return b;
  };
  const zeros = new Float32Array(layout.totalLength);
  const buffers: TrainableBuffers = {
    layout,
    params: alloc('params', host),
    grads: alloc('grads', zeros),
    m: alloc('m', zeros),
    v: alloc('v', zeros),
    segments: e.buffers.acquire(layout.table.byteLength, STORAGE_USAGE, `${label}.segments`),
    partials: e.buffers.acquire(ADAMW_MAX_PARTIALS * 4, STORAGE_USAGE, `${label}.partials`),
    norm: e.buffers.acquire(ADAMW_STATUS_FLOATS * 4, STORAGE_USAGE, `${label}.norm`),
  };
  writeBuffer(e.device, buffers.segments, layout.table);
  writeBuffer(e.device, buffers.norm, new Float32Array(ADAMW_STATUS_FLOATS)); // a reused buffer could hold a sticky skip
  return buffers;
}

export function releaseTrainable(e: Engine, b: TrainableBuffers): void {
  for (const x of [b.params, b.grads, b.m, b.v, b.segments, b.partials, b.norm]) e.buffers.release(x);
}

/** A segment of a flat buffer as a binding (segments start at 256-byte boundaries, the storage offset alignment). */
export function segmentBinding(buffer: GPUBuffer, offset: number, length: number): GPUBufferBinding {
  return { buffer, offset: offset * 4, size: length * 4 };
}
