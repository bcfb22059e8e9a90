// Rate and ETA of a transfer from its progress events: bytes per second over a sliding window (so a stall shows
// quickly), and the time left at that rate. Pure, so the store computes it as events arrive and tests pin it down.

export interface ProgressStats {
  done: number;
  /** 0 when unknown. */
  total: number;
  /** Bytes (or units) per second; 0 until two samples span some time. */
  rate: number;
  /** Seconds left; null while unknown. */
  etaSeconds: number | null;
}

const WINDOW_MS = 5000;

export class ProgressMeter {
  private samples: { t: number; done: number }[] = [];

  /** Adds a sample; a `done` lower than the last one (a new stage or file) starts over. */
  update(t: number, done: number, total: number): ProgressStats {
    const last = this.samples.at(-1);
    if (last && done < last.done) this.samples = [];
    this.samples.push({ t, done });
    while (this.samples.length > 2 && this.samples[1].t <= t - WINDOW_MS) this.samples.shift();
    const first = this.samples[0];
    const seconds = (t - first.t) / 1000;
    const rate = seconds > 0 ? (done - first.done) / seconds : 0;
    const etaSeconds = total > 0 ? (done >= total ? 0 : rate > 0 ? (total - done) / rate : null) : null;
    return { done, total, rate, etaSeconds };
  }

  reset(): void {
    this.samples = [];
  }
}

/** 75 → "1 min 15 s"; 8 → "8 s". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
