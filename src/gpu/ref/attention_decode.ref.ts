// Plain TypeScript reference for attention_decode.wgsl: decoding n new rows against a KV cache is the full causal
// attention (attention.ref.ts) over the first p0 + n cached positions, one segment, read at its last n rows. The
// reference is built from exactly that, so "decode = the last rows of the full forward" holds by construction here
// and the GPU test checks the kernel against it.
import { AttentionShapeError, attentionRef, checkShape } from './attention.ref.ts';

export interface AttentionDecodeShape {
  /** New query rows, at positions p0..p0+n−1. */
  n: number;
  /** Position of the first new row = cached positions before it. */
  p0: number;
  /** Rows the cache buffers hold (≥ p0 + n). */
  maxLen: number;
  Hq: number;
  Hkv: number;
  D: number;
  /** Score scale; 1/√D when omitted. */
  scale?: number;
}

export interface AttentionDecodeRefInputs extends AttentionDecodeShape {
  /** (n, Hq, D) */
  Q: ArrayLike<number>;
  /** (maxLen, Hkv, D), positions 0..p0+n−1 filled */
  Kc: ArrayLike<number>;
  /** (maxLen, Hkv, D) */
  Vc: ArrayLike<number>;
}

export function checkDecodeShape(s: AttentionDecodeShape): void {
  const { n, p0, maxLen } = s;
  checkShape({ T: n, Hq: s.Hq, Hkv: s.Hkv, D: s.D });
  if (!Number.isInteger(n) || n < 1) throw new AttentionShapeError(`attention_decode: n must be a positive integer, got ${n}`);
  if (!Number.isInteger(p0) || p0 < 0) throw new AttentionShapeError(`attention_decode: p0 must be a non-negative integer, got ${p0}`);
  if (!Number.isInteger(maxLen) || p0 + n > maxLen) {
    throw new AttentionShapeError(`attention_decode: positions ${p0}..${p0 + n - 1} do not fit a cache of ${maxLen} positions`);
  }
}

/** O (n, Hq, D): the new rows' attention outputs. */
export function attentionDecodeRef(x: AttentionDecodeRefInputs): Float64Array {
  checkDecodeShape(x);
  const { n, p0, Hq, Hkv, D } = x;
  const T = p0 + n;
  // Query rows before p0 do not matter (each row's output depends only on its own query): zeros.
  const Q = new Float64Array(T * Hq * D);
  for (let k = 0; k < n * Hq * D; k++) Q[p0 * Hq * D + k] = x.Q[k];
  const kv = T * Hkv * D;
  const { O } = attentionRef({
    T, Hq, Hkv, D, scale: x.scale,
    Q,
    K: Array.prototype.slice.call(x.Kc, 0, kv),
    V: Array.prototype.slice.call(x.Vc, 0, kv),
    seg: new Uint32Array(T),
  });
  return O.slice(p0 * Hq * D);
}
