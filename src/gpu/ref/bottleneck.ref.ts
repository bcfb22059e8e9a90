// Plain TypeScript reference (float64) of a linear layer wrapped by a bottleneck adapter on its output
// (src/model/runtime/bottleneck.ts): h = x·Wᵀ + b, z = h·Dᵀ + b_d, a = act(z), y = h + a·Uᵀ + b_u; and its backward
// from dy: dx, dD, db_d, dU, db_u. W is [out, in] whatever the storage; D [m, out], U [out, m], row-major.
import { UNARY_REF, type UnaryActivationRef } from './activation.ref.ts';

export interface BottleneckRefShape {
  T: number;
  in: number;
  out: number;
  /** The bottleneck size. */
  m: number;
  activation: UnaryActivationRef;
}

export interface BottleneckRefWeights {
  W: ArrayLike<number>;
  b?: ArrayLike<number>;
  D: ArrayLike<number>;
  bd: ArrayLike<number>;
  U: ArrayLike<number>;
  bu: ArrayLike<number>;
}

/** C (rows × cols) = A (rows × k) · Bᵀ (B: cols × k) + bias. */
function linear(A: ArrayLike<number>, B: ArrayLike<number>, bias: ArrayLike<number> | undefined, rows: number, cols: number, k: number): Float64Array {
  const C = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let s = bias ? bias[c] : 0;
      for (let j = 0; j < k; j++) s += A[r * k + j] * B[c * k + j];
      C[r * cols + c] = s;
    }
  }
  return C;
}

export function bottleneckForwardRef(s: BottleneckRefShape, w: BottleneckRefWeights, x: ArrayLike<number>) {
  const h = linear(x, w.W, w.b, s.T, s.out, s.in);
  const z = linear(h, w.D, w.bd, s.T, s.m, s.out);
  const a = UNARY_REF[s.activation].forward(z);
  const y = linear(a, w.U, w.bu, s.T, s.out, s.m);
  for (let i = 0; i < y.length; i++) y[i] += h[i];
  return { h, z, a, y };
}

export function bottleneckBackwardRef(s: BottleneckRefShape, w: BottleneckRefWeights, x: ArrayLike<number>, dy: ArrayLike<number>) {
  const { T, m, out } = s;
  const { h, z, a } = bottleneckForwardRef(s, w, x);
  const dU = new Float64Array(out * m);
  const dbu = new Float64Array(out);
  const da = new Float64Array(T * m);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < out; o++) {
      const g = dy[t * out + o];
      dbu[o] += g;
      for (let j = 0; j < m; j++) {
        dU[o * m + j] += g * a[t * m + j];
        da[t * m + j] += g * w.U[o * m + j];
      }
    }
  }
  const dz = UNARY_REF[s.activation].backward(z, da);
  const dD = new Float64Array(m * out);
  const dbd = new Float64Array(m);
  const dh = Float64Array.from(dy);
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < m; j++) {
      const g = dz[t * m + j];
      dbd[j] += g;
      for (let o = 0; o < out; o++) {
        dD[j * out + o] += g * h[t * out + o];
        dh[t * out + o] += g * w.D[j * out + o];
      }
    }
  }
  const dx = new Float64Array(T * s.in);
  for (let t = 0; t < T; t++) for (let o = 0; o < out; o++) for (let i = 0; i < s.in; i++) dx[t * s.in + i] += dh[t * out + o] * w.W[o * s.in + i];
  return { dx, dD, dbd, dU, dbu };
}
