// Host side of attention_decode.wgsl: attention of new rows against a KV cache (generation), and the copy that
// appends the new rows' K and V to the cache first. See the .wgsl header for the contract.
import source from '../../shaders/attention_decode.wgsl?raw';
import { KernelError, packParams, type KernelSpec, type Recorder } from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';
import { AttentionShapeError, attentionScale } from '../ref/attention.ref.ts';
import { checkDecodeShape, type AttentionDecodeShape } from '../ref/attention_decode.ref.ts';
import { ATTENTION_MAX_HEAD_DIM, rowGroups } from './attention.ts';

export type { AttentionDecodeShape } from '../ref/attention_decode.ref.ts';

export function attentionDecodeSpec(): KernelSpec {
  return {
    label: 'attention_decode.decode',
    file: 'src/shaders/attention_decode.wgsl',
    wgsl: renderWgsl('attention_decode', source),
    entryPoint: 'decode',
    constants: {},
    bindings: ['read', 'read', 'read', 'read_write'], // Q Kc Vc → O
    paramsBytes: 32,
  };
}

/** Every spec the runtime can instantiate, for the compile-everything test. */
export function allAttentionDecodeSpecs(): KernelSpec[] {
  return [attentionDecodeSpec()];
}

function checked(shape: AttentionDecodeShape): void {
  checkDecodeShape(shape);
  if (shape.D > ATTENTION_MAX_HEAD_DIM) {
    throw new AttentionShapeError(`attention_decode: head_dim ${shape.D} exceeds the kernel's maximum ${ATTENTION_MAX_HEAD_DIM}`);
  }
}

export interface AttentionDecodeBuffers {
  /** (n, Hq, D) the new rows' queries */
  Q: GPUBuffer;
  /** (maxLen, Hkv, D) key cache holding positions 0..p0+n−1 */
  Kc: GPUBuffer;
  /** (maxLen, Hkv, D) value cache, likewise */
  Vc: GPUBuffer;
  /** (n, Hq, D) output, overwritten */
  O: GPUBuffer;
}

/** Records O = softmax(scale·Q·Kcᵀ, causal from position p0)·Vc for the n new rows. */
export function recordAttentionDecode(rec: Recorder, shape: AttentionDecodeShape, b: AttentionDecodeBuffers): void {
  checked(shape);
  const scale = attentionScale({ T: shape.n, Hq: shape.Hq, Hkv: shape.Hkv, D: shape.D, scale: shape.scale });
  if (!Number.isFinite(scale)) throw new KernelError(`attention_decode: scale must be finite, got ${scale}`);
  const params = packParams([
    ['u32', shape.n],
    ['u32', shape.p0],
    ['u32', shape.Hq],
    ['u32', shape.Hkv],
    ['u32', shape.D],
    ['f32', scale],
  ]);
  // Row i (position p0 + i) attends to p0 + i + 1 keys: q·k and p·v, 4·D FLOPs per key and head; the cache's
  // p0 + n rows of K and V read once.
  const keys = shape.n * shape.p0 + (shape.n * (shape.n + 1)) / 2;
  const cost = {
    flops: 4 * shape.D * keys * shape.Hq,
    bytes: 2 * shape.n * shape.Hq * shape.D * 4 + 2 * (shape.p0 + shape.n) * shape.Hkv * shape.D * 4,
  };
  rec.dispatch(attentionDecodeSpec(), [b.Q, b.Kc, b.Vc, b.O], params, rowGroups(shape.n * shape.Hq), cost);
}

export interface KvAppendBuffers {
  /** (n, Hkv, D) the new rows' keys (after RoPE) and values */
  k: GPUBuffer;
  v: GPUBuffer;
  /** (maxLen, Hkv, D) the caches they are copied into at positions p0..p0+n−1 */
  Kc: GPUBuffer;
  Vc: GPUBuffer;
}

/** Records the copies that put the new rows' K and V into the caches: two buffer copies at byte offset p0·Hkv·D·4. */
export function recordKvAppend(rec: Recorder, shape: AttentionDecodeShape, b: KvAppendBuffers): void {
  checked(shape);
  const row = shape.Hkv * shape.D * 4;
  rec.copy(b.k, 0, b.Kc, shape.p0 * row, shape.n * row);
  rec.copy(b.v, 0, b.Vc, shape.p0 * row, shape.n * row);
}
