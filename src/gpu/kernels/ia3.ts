// Host side of ia3.wgsl: IA³'s vector on a matrix's columns (scale_columns) and its gradient (column_dot). See the
// .wgsl header for the contract.
import source from '../../shaders/ia3.wgsl?raw';
import { KernelError, packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import type { Ia3Shape } from '../ref/ia3.ref.ts';
import { renderWgsl } from '../wgsl.ts';
import { foldWorkgroups, type FoldOptions } from './elementwise.ts';

export type { Ia3Shape } from '../ref/ia3.ref.ts';

export type Ia3Entry = 'scale_columns' | 'column_dot';

export function ia3Spec(entry: Ia3Entry, accumulate = false): KernelSpec {
  return {
    label: `ia3.${entry}${accumulate ? '.acc' : ''}`,
    file: 'src/shaders/ia3.wgsl',
    wgsl: renderWgsl('ia3', source),
    entryPoint: entry,
    constants: { ACCUMULATE: accumulate ? 1 : 0 },
    bindings: ['read', 'read', 'read_write'],
    paramsBytes: 16,
  };
}

export function allIa3Specs(): KernelSpec[] {
  return (['scale_columns', 'column_dot'] as const).flatMap((entry) => [ia3Spec(entry), ia3Spec(entry, true)]);
}

function params(s: Ia3Shape): ArrayBuffer {
  if (!(Number.isInteger(s.rows) && s.rows > 0 && Number.isInteger(s.n) && s.n > 0)) throw new KernelError(`ia3: rows ${s.rows} × n ${s.n} must be positive integers`);
  return packParams([
    ['u32', s.rows],
    ['u32', s.n],
    ['u32', 0],
    ['u32', 0],
  ]);
}

/** out = a ⊙ l (l over the columns; += when accumulate). `out` must not alias `a`. */
export function recordScaleColumns(
  rec: Recorder,
  s: Ia3Shape,
  b: { a: BufferRef; l: BufferRef; out: BufferRef },
  accumulate = false,
  fold: FoldOptions = {},
): void {
  const n = s.rows * s.n;
  rec.dispatch(ia3Spec('scale_columns', accumulate), [b.a, b.l, b.out], params(s), foldWorkgroups(Math.ceil(n / 64), fold.maxWorkgroupsPerDim), {
    flops: n * (accumulate ? 2 : 1),
    bytes: n * 4 * (accumulate ? 3 : 2) + s.n * 4,
  });
}

/** out[j] = Σ_rows a[:, j]·b[:, j] (+= when accumulate): the gradient of l. */
export function recordColumnDot(rec: Recorder, s: Ia3Shape, b: { a: BufferRef; b: BufferRef; out: BufferRef }, accumulate = false): void {
  const groups = Math.ceil(s.n / 64);
  if (groups > 65535) throw new KernelError(`ia3.column_dot: ${s.n} columns need ${groups} workgroups, above 65535`);
  rec.dispatch(ia3Spec('column_dot', accumulate), [b.a, b.b, b.out], params(s), [groups, 1, 1], {
    flops: 2 * s.rows * s.n,
    bytes: 2 * s.rows * s.n * 4 + s.n * 4 * (accumulate ? 2 : 1),
  });
}
