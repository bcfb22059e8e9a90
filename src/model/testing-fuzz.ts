// fast-check settings shared by the *.fuzz.test.ts files (issue 14): seeded — FUZZ_SEED=<n> replays a run, the seed
// is printed — FUZZ_RUNS=<n> cases per property (150 in the unit suite; 20 000 under `npm run fuzz`), at most
// PER_CASE_MS per case (a hang is a failure).
import type { Parameters } from 'fast-check';

export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? (process.env.npm_lifecycle_event === 'fuzz' ? 20_000 : 150));
const PER_CASE_MS = 2000;
/** The vitest timeout of a test running one property. */
export const FUZZ_TEST_TIMEOUT = 10_000 + FUZZ_RUNS * 5;

export function fuzzParams<T>(): Parameters<T> {
  return { seed: FUZZ_SEED, numRuns: FUZZ_RUNS, timeout: PER_CASE_MS, markInterruptAsFailure: true };
}

/** The line each fuzz file prints, so a failure can be replayed. */
export function fuzzBanner(what: string): string {
  return `fuzz ${what}: FUZZ_SEED=${FUZZ_SEED} FUZZ_RUNS=${FUZZ_RUNS}`;
}
