// Host side of columns.wgsl: gather a column block out of a wide matrix, or scatter it back (optionally adding).
import source from '../../shaders/columns.wgsl?raw';
import { KernelError, packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import type { ColumnsShape } from '../ref/columns.ref.ts';
import { renderWgsl } from '../wgsl.ts';
import { foldWorkgroups, type FoldOptions } from './elementwise.ts';

export type { ColumnsShape } from '../ref/columns.ref.ts';

export function columnsSpec(o: { entry: 'gather' | 'scatter'; accumulate?: boolean }): KernelSpec {
  if (o.accumulate && o.entry === 'gather') throw new KernelError('columns.gather: accumulate is for scatter');
  return {
    label: `columns.${o.entry}${o.accumulate ? '.acc' : ''}`,
    file: 'src/shaders/columns.wgsl',
    wgsl: renderWgsl('columns', source),
    entryPoint: o.entry,
    constants: { ACCUMULATE: o.accumulate ? 1 : 0 },
    bindings: ['read', 'read_write'],
    paramsBytes: 16,
  };
}

export function allColumnsSpecs(): KernelSpec[] {
  return [columnsSpec({ entry: 'gather' }), columnsSpec({ entry: 'scatter' }), columnsSpec({ entry: 'scatter', accumulate: true })];
}

/** A copy of rows·narrow f32 (read and written; the wide side read too when adding). */
function cost(s: ColumnsShape, accumulate: boolean) {
  const n = s.rows * s.narrow;
  return { flops: accumulate ? n : 0, bytes: n * 4 * (accumulate ? 3 : 2) };
}

function check(s: ColumnsShape): ArrayBuffer {
  if (s.offset + s.narrow > s.wide) throw new KernelError(`columns: ${s.offset}+${s.narrow} columns exceed the wide matrix's ${s.wide}`);
  return packParams([
    ['u32', s.rows],
    ['u32', s.wide],
    ['u32', s.narrow],
    ['u32', s.offset],
  ]);
}

/** narrow = wide[:, offset : offset + narrow]. */
export function recordGatherColumns(rec: Recorder, s: ColumnsShape, b: { wide: BufferRef; narrow: BufferRef }, fold: FoldOptions = {}): void {
  rec.dispatch(columnsSpec({ entry: 'gather' }), [b.wide, b.narrow], check(s), foldWorkgroups(Math.ceil((s.rows * s.narrow) / 64), fold.maxWorkgroupsPerDim), cost(s, false));
}

/** wide[:, offset : offset + narrow] = narrow (+= when accumulate). */
export function recordScatterColumns(
  rec: Recorder,
  s: ColumnsShape,
  b: { narrow: BufferRef; wide: BufferRef },
  accumulate = false,
  fold: FoldOptions = {},
): void {
  rec.dispatch(
    columnsSpec({ entry: 'scatter', accumulate }),
    [b.narrow, b.wide],
    check(s),
    foldWorkgroups(Math.ceil((s.rows * s.narrow) / 64), fold.maxWorkgroupsPerDim),
    cost(s, accumulate),
  );
}
