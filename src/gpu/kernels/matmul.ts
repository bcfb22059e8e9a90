// Host side of matmul.wgsl: its variants, their specs and dispatch. See the .wgsl header for the contract.
import source from '../../shaders/matmul.wgsl?raw';
import { packParams, type BufferRef, type KernelSpec, type Recorder } from '../kernel.ts';
import { renderWgsl, type ElementType } from '../wgsl.ts';
import { matmulCost } from './cost.ts';
import type { MatmulShape } from '../ref/matmul.ref.ts';

export const MATMUL_VARIANTS = ['naive', 'tiled', 'blocked', 'blocked4'] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];

/** Output-tile edge per workgroup of each variant (its x/y dispatch divides N/M by this). */
const TILE: Record<MatmulVariant, number> = { naive: 8, tiled: 16, blocked: 64, blocked4: 64 };

/** What a variant runs instead where it does not apply (same tile, scalar loads). */
const FALLBACK = 'blocked' satisfies MatmulVariant;

/** Whether `variant` can run `shape`. blocked4 moves 4 consecutive elements of each operand as one vec4, so along
 *  each operand's contiguous dimension (A: k, or m when transA; B: n, or k when transB) the size and the batch
 *  stride must be multiples of 4: then every vec4 starts on a vec4 boundary and lies wholly inside or outside the
 *  matrix. Model shapes pass (hidden sizes are multiples of 4, whatever the token count M); the rest falls back. */
export function matmulVariantApplies(variant: MatmulVariant, shape: MatmulShape): boolean {
  if (variant !== 'blocked4') return true;
  const { M, N, K } = shape;
  const contiguousA = shape.transA ? M : K;
  const contiguousB = shape.transB ? K : N;
  const strideA = shape.strideA ?? M * K;
  const strideB = shape.strideB ?? K * N;
  return [contiguousA, contiguousB, strideA, strideB, shape.offsetA ?? 0, shape.offsetB ?? 0].every((n) => n % 4 === 0);
}

export interface MatmulOptions {
  variant: MatmulVariant;
  elemA?: ElementType;
  elemB?: ElementType;
  transA?: boolean;
  transB?: boolean;
  hasBias?: boolean;
  accumulate?: boolean;
}

export function matmulSpec(o: MatmulOptions): KernelSpec {
  const elemA = o.elemA ?? 'f32';
  const elemB = o.elemB ?? 'f32';
  const flags = [o.transA && 'tA', o.transB && 'tB', o.hasBias && 'bias', o.accumulate && 'acc'].filter(Boolean);
  return {
    label: `matmul.${o.variant}.${elemA}x${elemB}${flags.length ? '.' + flags.join('.') : ''}`,
    file: 'src/shaders/matmul.wgsl',
    wgsl: renderWgsl('matmul', source, { ELEM_A: elemA, ELEM_B: elemB }),
    entryPoint: o.variant,
    constants: {
      TRANS_A: o.transA ? 1 : 0,
      TRANS_B: o.transB ? 1 : 0,
      HAS_BIAS: o.hasBias ? 1 : 0,
      ACCUMULATE: o.accumulate ? 1 : 0,
    },
    // A, B, bias, C, then A and B again as the vec4 views A4, B4 (only blocked4 reads them).
    bindings: ['read', 'read', 'read', 'read_write', 'read', 'read'],
    paramsBytes: 48,
  };
}

/** Every spec the runtime can instantiate, for the compile-everything test. */
export function allMatmulSpecs(hasF16: boolean): KernelSpec[] {
  const elems: ElementType[] = hasF16 ? ['f32', 'f16'] : ['f32'];
  const specs: KernelSpec[] = [];
  for (const variant of MATMUL_VARIANTS)
    for (const elemA of elems)
      for (const elemB of elems)
        for (const transA of [false, true])
          for (const transB of [false, true])
            for (const hasBias of [false, true])
              for (const accumulate of [false, true])
                specs.push(matmulSpec({ variant, elemA, elemB, transA, transB, hasBias, accumulate }));
  return specs;
}

export interface MatmulBuffers {
  A: BufferRef;
  B: BufferRef;
  C: BufferRef;
  /** (N) f32; omit for no bias. */
  bias?: BufferRef;
}

/** Records C = alpha·op(A)·op(B) (+ bias) (+ C when accumulate) into `rec`. Returns the variant dispatched: the one
 *  asked for, or `blocked` where it does not apply to the shape (see matmulVariantApplies); the bits are the same. */
export function recordMatmul(
  rec: Recorder,
  shape: MatmulShape,
  buffers: MatmulBuffers,
  options: Omit<MatmulOptions, 'transA' | 'transB' | 'hasBias'>,
): MatmulVariant {
  const { M, N, K } = shape;
  const batch = shape.batch ?? 1;
  const variant = matmulVariantApplies(options.variant, shape) ? options.variant : FALLBACK;
  const spec = matmulSpec({ ...options, variant, transA: shape.transA, transB: shape.transB, hasBias: !!buffers.bias });
  const params = packParams([
    ['u32', M],
    ['u32', N],
    ['u32', K],
    ['u32', batch],
    ['u32', shape.strideA ?? M * K],
    ['u32', shape.strideB ?? K * N],
    ['u32', M * N],
    ['f32', shape.alpha ?? 1],
    ['u32', shape.offsetA ?? 0],
    ['u32', shape.offsetB ?? 0],
    ['u32', shape.offsetC ?? 0],
    ['u32', 0],
  ]);
  const tile = TILE[variant];
  const { A, B } = buffers;
  rec.dispatch(
    spec,
    [A, B, buffers.bias ?? rec.unused, buffers.C, A, B],
    params,
    [Math.ceil(N / tile), Math.ceil(M / tile), batch],
    matmulCost(shape, { ...options, hasBias: !!buffers.bias }),
  );
  return variant;
}
