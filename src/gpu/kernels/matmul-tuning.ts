// Which matmul variant this adapter gets: measured once per adapter on a model-sized shape and cached, or forced by
// a setting (LORA_STUDIO_MATMUL in Node). All variants give the same bits (same k order), so the choice changes
// speed only, never a run's numbers. CPU drivers pay heavily for workgroup barriers and pick `naive`; real GPUs
// pick a tiled one (blocked4 where its vec4 loads pay). A variant chosen here that does not apply to some shape
// (blocked4 needs multiples of 4, see matmulVariantApplies) runs as `blocked` there.
import type { Engine } from '../engine.ts';
import { MATMUL_VARIANTS, matmulVariantApplies, recordMatmul, type MatmulVariant } from './matmul.ts';

/** Where a choice is remembered between sessions (localStorage in the browser, a JSON file in Node). */
export interface TuningCache {
  get(key: string): string | undefined;
  set(key: string, value: string): void;
}

export function isMatmulVariant(v: unknown): v is MatmulVariant {
  return typeof v === 'string' && (MATMUL_VARIANTS as readonly string[]).includes(v);
}

/** Times one variant on an (M, K) × (N, K)ᵀ product (nn.Linear's layout): median of `reps` submissions, in
 *  milliseconds. Refuses a shape the variant would not run itself, so a time is never another variant's. */
export async function timeMatmulVariant(e: Engine, variant: MatmulVariant, M: number, N: number, K: number, reps = 3): Promise<number> {
  const shape = { M, N, K, transB: true };
  if (!matmulVariantApplies(variant, shape)) {
    throw new RangeError(`timeMatmulVariant: ${variant} does not apply to M=${M} N=${N} K=${K} (see matmulVariantApplies)`);
  }
  const A = e.buffers.acquire(M * K * 4, undefined, 'tune.A');
  const B = e.buffers.acquire(K * N * 4, undefined, 'tune.B');
  const C = e.buffers.acquire(M * N * 4, undefined, 'tune.C');
  try {
    const times: number[] = [];
    for (let i = 0; i <= reps; i++) {
      const rec = e.record('matmul-tune');
      recordMatmul(rec, shape, { A, B, C }, { variant });
      const t0 = performance.now();
      await rec.submit();
      if (i > 0) times.push(performance.now() - t0); // the first run includes pipeline compilation
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)];
  } finally {
    for (const b of [A, B, C]) e.buffers.release(b);
  }
}

export interface MatmulChoice {
  variant: MatmulVariant;
  source: 'override' | 'cache' | 'measured';
  timingsMs?: Partial<Record<MatmulVariant, number>>;
}

/** The variant for this engine's adapter: the override if valid, else the cached measurement, else a fresh one
 *  (on a shape small enough for CPU drivers, large enough to separate the variants on a GPU; a multiple of 4, so
 *  every variant runs itself). */
export async function chooseMatmulVariant(e: Engine, cache?: TuningCache, override?: string): Promise<MatmulChoice> {
  if (override) {
    if (!isMatmulVariant(override)) {
      throw new Error(`matmul variant "${override}" is not one of ${MATMUL_VARIANTS.join(', ')}`);
    }
    return { variant: override, source: 'override' };
  }
  const key = `matmul-variant:${e.gpu.adapter.vendor}:${e.gpu.adapter.architecture}:${e.gpu.adapter.device}:${e.gpu.adapter.description}`;
  const cached = cache?.get(key);
  if (isMatmulVariant(cached)) return { variant: cached, source: 'cache' };
  const size = e.gpu.adapter.isCpu ? 96 : 512;
  const timingsMs: Partial<Record<MatmulVariant, number>> = {};
  for (const v of MATMUL_VARIANTS) timingsMs[v] = await timeMatmulVariant(e, v, size, size, size);
  const variant = MATMUL_VARIANTS.reduce((best, v) => (timingsMs[v]! < timingsMs[best]! ? v : best));
  cache?.set(key, variant);
  return { variant, source: 'measured', timingsMs };
}
