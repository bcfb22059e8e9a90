// The live run's metrics, kept outside React and the zustand store (STYLE.md: "metrics outside React"): the worker's
// batches are appended here, and charts subscribe and redraw at most every `throttleMs`, never once per step.
import type { StepMetrics } from '../train/protocol.ts';

/** One chart row: a step's numbers plus the smoothed loss. */
export interface ChartRow {
  step: number;
  loss: number;
  smoothed: number;
  evalLoss?: number;
  lr: number;
  gradNorm: number;
}

/** TensorBoard's debiased exponential moving average: the first points are not dragged towards zero. */
export function smooth(values: readonly number[], weight = 0.8): number[] {
  const out: number[] = [];
  let last = 0;
  let debias = 0;
  for (const v of values) {
    last = last * weight + (1 - weight) * v;
    debias = debias * weight + (1 - weight);
    out.push(last / debias);
  }
  return out;
}

/** Chart rows for a whole curve, at most `maxPoints` of them (an even stride, the last step always kept; every
 *  evaluated step kept so the eval curve never loses a point). */
export function chartRows(steps: readonly StepMetrics[], maxPoints = 1000): ChartRow[] {
  const smoothed = smooth(steps.map((s) => s.loss));
  const rows = steps.map((s, i) => ({
    step: s.step, loss: s.loss, smoothed: smoothed[i], lr: s.lr, gradNorm: s.gradNorm,
    ...(s.evalLoss === undefined ? {} : { evalLoss: s.evalLoss }),
  }));
  if (rows.length <= maxPoints) return rows;
  const stride = Math.ceil(rows.length / maxPoints);
  return rows.filter((r, i) => i % stride === 0 || i === rows.length - 1 || r.evalLoss !== undefined);
}

export class MetricsBuffer {
  private steps: StepMetrics[] = [];
  private listeners = new Set<() => void>();
  private version = 0;

  /** Appends a batch; a step already present (a resumed run re-sending its history) replaces the old one. */
  push(batch: readonly StepMetrics[]): void {
    for (const m of batch) {
      const last = this.steps.at(-1);
      if (last && m.step <= last.step) {
        const i = this.steps.findIndex((s) => s.step >= m.step);
        this.steps.splice(i, this.steps.length - i);
      }
      this.steps.push(m);
    }
    this.version++;
    for (const l of this.listeners) l();
  }

  reset(steps: readonly StepMetrics[] = []): void {
    this.steps = [...steps];
    this.version++;
    for (const l of this.listeners) l();
  }

  get all(): readonly StepMetrics[] {
    return this.steps;
  }

  get latest(): StepMetrics | undefined {
    return this.steps.at(-1);
  }

  get revision(): number {
    return this.version;
  }

  /** Calls `listener` at most once per `throttleMs` after changes (trailing edge, so the last batch always shows).
   *  Returns the unsubscribe. */
  subscribe(listener: () => void, throttleMs = 400): () => void {
    let timer: ReturnType<typeof setTimeout> | null = null;
    let lastCall = 0;
    const fire = () => {
      timer = null;
      lastCall = Date.now();
      listener();
    };
    const onChange = () => {
      if (timer) return;
      const wait = Math.max(0, lastCall + throttleMs - Date.now());
      timer = setTimeout(fire, wait);
    };
    this.listeners.add(onChange);
    return () => {
      this.listeners.delete(onChange);
      if (timer) clearTimeout(timer);
    };
  }
}

/** The page's one live buffer: the run the Train screen shows. */
export const liveMetrics = new MetricsBuffer();

/** Seconds left at the recent pace (the mean step time of the last 20 steps). */
export function etaSeconds(steps: readonly StepMetrics[], totalSteps: number): number | null {
  const last = steps.at(-1);
  if (!last || totalSteps <= 0) return null;
  const recent = steps.slice(-20);
  const ms = recent.reduce((s, m) => s + m.ms, 0) / recent.length;
  return ((totalSteps - last.step) * ms) / 1000;
}
