// The y-axis ticks of the curve charts: round steps (1, 2, 2.5 or 5 × 10^k) over the data's range, each printed with
// as many digits as the step needs, so adjacent ticks never print the same. Three significant digits alone printed
// 13.28 and 13.30 both as "13.3" on a loss curve that moved little.

export interface AxisTicks {
  ticks: number[];
  /** [first tick, last tick]: the axis spans whole steps around the data. */
  domain: [number, number];
  step: number;
  format: (v: number) => string;
}

/** The round step (1, 2, 2.5 or 5 × 10^k) that cuts `range` into about `count - 1` intervals. */
export function niceStep(range: number, count = 5): number {
  const raw = range / Math.max(1, count - 1);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  const nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10;
  return nice * magnitude;
}

/** Digits after the point that `step` has: 0.25 → 2, 5 → 0, 2e-5 → 5. */
export function stepDecimals(step: number): number {
  for (let d = 0; d < 20; d++) {
    const scaled = step * 10 ** d;
    if (Math.abs(scaled - Math.round(scaled)) <= 1e-9 * scaled) return d;
  }
  return 20;
}

/**
 * A formatter for ticks `step` apart: fixed-point with the step's decimals, or, for values under 0.01 or from a
 * million up, exponential with the mantissa digits the step needs (1.0e-4, 1.2e-4). Should two ticks still print
 * alike, it adds digits until they do not.
 */
export function tickFormat(ticks: readonly number[], step: number): (v: number) => string {
  const maxAbs = Math.max(...ticks.map(Math.abs));
  const exponential = maxAbs > 0 && (maxAbs < 1e-2 || maxAbs >= 1e6);
  const exponentOf = (x: number) => Math.floor(Math.log10(x));
  let digits = exponential
    ? Math.max(0, exponentOf(maxAbs) - exponentOf(step) + stepDecimals(step / 10 ** exponentOf(step)))
    : stepDecimals(step);
  const print = (v: number, d: number) => (!exponential ? (v || 0).toFixed(d) : v === 0 ? '0' : v.toExponential(d));
  while (digits < 20 && new Set(ticks.map((t) => print(t, digits))).size < ticks.length) digits++;
  return (v) => print(v, digits);
}

/** The ticks for the finite values given (about `count` of them), or null when there is none. */
export function axisTicks(values: Iterable<number | null | undefined>, count = 5): AxisTicks | null {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (typeof v !== 'number' || !Number.isFinite(v)) continue;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  if (min > max) return null;
  const step = niceStep(max - min || Math.abs(min) / 10 || 1, count);
  // Rounding error must not add a step: 2e-4 / 5e-5 is 4.000000000000001.
  let lo = Math.floor(min / step + 1e-9);
  let hi = Math.ceil(max / step - 1e-9);
  if (lo === hi) {
    lo -= 1;
    hi += 1;
  }
  // k × step rounded to the step's digits: 3 × 0.1 is 0.30000000000000004 otherwise.
  const decimals = stepDecimals(step);
  const ticks = Array.from({ length: hi - lo + 1 }, (_, i) => Number(((lo + i) * step).toFixed(Math.min(decimals + 2, 100))) || 0);
  return { ticks, domain: [ticks[0], ticks.at(-1)!], step, format: tickFormat(ticks, step) };
}
