// What every benchmark section gets: the engine, the timer, the run's options and the peer, plus a cache of matmul
// timings so the NF4 table reuses the matmul table's f32/f16 measurements instead of repeating them.
import type { Engine } from '../src/gpu/engine.ts';
import type { BenchOptions, Timing } from './lib/plan.ts';
import type { Table } from './lib/table.ts';
import type { TfjsPeer } from './tfjs-peer.ts';
import type { GpuTimer, Measurement } from './timing.ts';

export interface BenchContext {
  e: Engine;
  timer: GpuTimer;
  timing: Timing;
  options: BenchOptions;
  tfjs: TfjsPeer | { error: string };
  /** Our fastest matmul of table 1 (any variant, shape, weight type): the roofline the training step is put
   *  against. Unset when the matmul section did not run. */
  bestMatmul?: { gflops: number; label: string };
  /** Keyed by matmulKey. */
  matmulTimes: Map<string, Measurement>;
  /** Progress on stderr, so stdout holds only tables or JSON. */
  log(message: string): void;
}

export function matmulKey(M: number, K: number, N: number, variant: string, elemW: string): string {
  return `${M}x${K}x${N}:${variant}:${elemW}`;
}

export interface SectionResult {
  table: Table;
  /** The same results as numbers, for --json. */
  data: unknown;
}
