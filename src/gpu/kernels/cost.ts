// What a dispatch costs, for the profiler's TFLOP/s and GB/s columns: the FLOPs the math needs and the bytes each
// operand occupies, read or written once (a tiled kernel re-reads tiles from cache; that is not counted). Every
// kernel wrapper passes one of these as the 5th argument of rec.dispatch.
import type { DispatchCost } from '../kernel.ts';
import type { MatmulShape } from '../ref/matmul.ref.ts';
import type { ElementType } from '../wgsl.ts';

/** Bytes per element of a storage type. */
export function elemBytes(elem: ElementType | undefined): number {
  return elem === 'f16' ? 2 : 4;
}

/** C (M, N) = op(A)·op(B) (+ bias) (+ C) over `batch` products: 2·M·N·K per product; A, B (once when broadcast with
 *  stride 0), C written (and read when accumulating), the bias read. */
export function matmulCost(
  s: MatmulShape,
  o: { elemA?: ElementType; elemB?: ElementType; accumulate?: boolean; hasBias?: boolean } = {},
): DispatchCost {
  const batch = s.batch ?? 1;
  const { M, N, K } = s;
  const aCount = s.strideA === 0 ? 1 : batch;
  const bCount = s.strideB === 0 ? 1 : batch;
  return {
    flops: 2 * M * N * K * batch,
    bytes:
      M * K * aCount * elemBytes(o.elemA) +
      K * N * bCount * elemBytes(o.elemB) +
      M * N * batch * 4 * (o.accumulate ? 2 : 1) +
      (o.hasBias ? N * 4 : 0),
  };
}

/** n elements, `flopsPer` each, `bytesPer` bytes moved each. */
export function elementwiseCost(n: number, flopsPer: number, bytesPer: number): DispatchCost {
  return { flops: n * flopsPer, bytes: n * bytesPer };
}
