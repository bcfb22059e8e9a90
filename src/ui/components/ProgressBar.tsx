import type { StageProgress } from '../../store/slices/models.ts';
import { formatBytes } from '../format.ts';
import { formatDuration } from '../../store/progress-meter.ts';

const STAGE_LABELS: Record<string, string> = {
  download: 'Downloading',
  tuning: 'Choosing kernels for this GPU',
  weights: 'Moving weights to the GPU',
  dataset: 'Reading and tokenizing',
};

/** A labelled progress bar with bytes, rate and time left; indeterminate while the total is unknown. */
export function ProgressBar({ progress, testId }: { progress: StageProgress | null; testId?: string }) {
  const stage = progress ? (STAGE_LABELS[progress.stage] ?? progress.stage) : 'Starting';
  const known = !!progress && progress.total > 0;
  const parts: string[] = [];
  if (progress && progress.done > 0) parts.push(known ? `${formatBytes(progress.done)} of ${formatBytes(progress.total)}` : formatBytes(progress.done));
  if (progress && progress.rate > 0) parts.push(`${formatBytes(progress.rate)}/s`);
  if (progress && known && progress.etaSeconds !== null && progress.done < progress.total) parts.push(`${formatDuration(progress.etaSeconds)} left`);
  return (
    <div className="progress" data-testid={testId} role="status">
      <div className="progress-label">
        <span>{stage}…</span>
        <span className="muted">{parts.join(' · ')}</span>
      </div>
      {known ? <progress max={progress.total} value={progress.done} aria-label={stage} /> : <progress aria-label={stage} />}
    </div>
  );
}
