// The run this tab trains: live charts fed from liveMetrics (redrawn a few times a second, not per step), progress
// with ETA, tokens/s and GPU memory, pause / resume / stop, the samples generated for the fixed prompt, and once it
// has ended, base vs adapter on a sample dataset's held-out prompts.
import { useEffect, useMemo, useState } from 'react';
import { chartRows, etaSeconds, liveMetrics } from '../../store/metrics-buffer.ts';
import { isActive, type LiveRun } from '../../store/slices/train.ts';
import { useStudio } from '../../store/studio.ts';
import { COLORS, CurveChart } from '../components/CurveChart.tsx';
import { formatDuration } from '../../store/progress-meter.ts';
import { formatBytes } from '../format.ts';
import { HeldOutAnswers } from './HeldOutAnswers.tsx';

const PHASE_LABELS: Record<LiveRun['phase'], string> = {
  starting: 'Starting…',
  running: 'Training',
  pausing: 'Pausing…',
  paused: 'Paused',
  stopping: 'Stopping…',
  stopped: 'Stopped',
  finished: 'Finished',
  failed: 'Failed',
};

/** The live buffer's revision, updated at most every 400 ms. */
function useLiveRevision(): number {
  const [rev, setRev] = useState(liveMetrics.revision);
  useEffect(() => liveMetrics.subscribe(() => setRev(liveMetrics.revision)), []);
  return rev;
}

export function RunView() {
  const run = useStudio((s) => s.liveRun);
  const samples = useStudio((s) => s.runSamples);
  const pause = useStudio((s) => s.pauseRun);
  const resume = useStudio((s) => s.continueRun);
  const stop = useStudio((s) => s.stopRun);
  const exportAdapter = useStudio((s) => s.exportLiveAdapter);
  const go = useStudio((s) => s.go);
  const model = useStudio((s) => s.model);
  const rev = useLiveRevision();
  const rows = useMemo(() => chartRows(liveMetrics.all), [rev]);
  if (!run) return null;
  const latest = liveMetrics.latest;
  const eta = etaSeconds(liveMetrics.all, run.totalSteps);
  const active = isActive(run.phase);
  const hasEval = rows.some((r) => r.evalLoss !== undefined);

  return (
    <section className="card run-view" aria-labelledby="run-title" data-testid="run-view">
      <div className="run-head">
        <h3 id="run-title">{run.name}</h3>
        <span className={`status status-${run.phase}`} data-testid="run-phase">{PHASE_LABELS[run.phase]}</span>
      </div>
      {run.message && (
        <p className={run.phase === 'failed' ? 'error' : 'muted'} role={run.phase === 'failed' ? 'alert' : 'status'} data-testid="run-message">
          {run.message}
        </p>
      )}
      {run.trainable && <p className="muted small"><code>{run.trainable}</code> · {run.trainRows} training rows{run.evalRows ? `, ${run.evalRows} held out for evaluation` : ''}{run.resumedFrom !== null ? ` · resumed from step ${run.resumedFrom}` : ''}</p>}

      <div className="progress" role="status" data-testid="run-progress">
        <div className="progress-label">
          <span>Step {run.step} of {run.totalSteps || '…'}</span>
          <span className="muted">{active && eta !== null ? `${formatDuration(eta)} left` : ''}</span>
        </div>
        <progress max={Math.max(1, run.totalSteps)} value={run.step} aria-label="Training progress" />
      </div>

      <dl className="facts run-stats">
        <dt>Loss</dt>
        <dd data-testid="run-loss">{latest ? latest.loss.toFixed(4) : '—'}{latest?.evalLoss !== undefined ? ` (eval ${latest.evalLoss.toFixed(4)})` : ''}</dd>
        <dt>Speed</dt>
        <dd>{latest ? `${Math.round(latest.tokensPerSecond).toLocaleString('en')} tokens/s · ${latest.ms.toFixed(0)} ms/step` : '—'}</dd>
        <dt>GPU memory</dt>
        <dd>{latest ? `${formatBytes(latest.memBytes)} now, ${formatBytes(latest.peakBytes)} peak` : '—'}</dd>
      </dl>

      <div className="row">
        {run.phase === 'running' && <button type="button" onClick={pause}>Pause</button>}
        {run.phase === 'paused' && <button type="button" className="primary" onClick={resume}>Resume</button>}
        {active && <button type="button" onClick={stop} disabled={run.phase === 'stopping' || run.phase === 'starting'}>Stop and save</button>}
        {/* A full fine-tuning run is a whole model: it downloads as a model folder from Runs once it stops. */}
        {run.phase === 'paused' && run.config?.method !== 'full' && <button type="button" onClick={() => exportAdapter('zip')}>Download adapter so far (.zip)</button>}
        {!active && (
          <button type="button" onClick={() => go('runs')}>
            See it in Runs (download, CSV)
          </button>
        )}
      </div>

      <div className="charts">
        <CurveChart
          title="Training loss"
          testId="loss-chart"
          rows={rows}
          lines={[
            { key: 'loss', name: 'loss', color: COLORS.raw, faint: true },
            { key: 'smoothed', name: 'smoothed', color: COLORS.smoothed },
            ...(hasEval ? [{ key: 'evalLoss' as const, name: 'eval loss', color: COLORS.eval, dots: true }] : []),
          ]}
        />
        <CurveChart title="Learning rate" testId="lr-chart" rows={rows} lines={[{ key: 'lr', name: 'lr', color: COLORS.lr }]} height={160} />
        <CurveChart title="Gradient norm (before clipping)" testId="grad-chart" rows={rows} lines={[{ key: 'gradNorm', name: 'grad norm', color: COLORS.grad }]} height={160} />
      </div>

      <section aria-labelledby="samples-title" data-testid="run-samples">
        <h4 id="samples-title">Samples</h4>
        {samples.length === 0 && <p className="muted small">A greedy continuation of a fixed prompt appears here every few steps.</p>}
        <ol className="run-samples" reversed>
          {[...samples].reverse().map((s, i) => (
            <li key={`${s.step}-${i}`}>
              <span className="muted small">step {s.step}</span>
              <pre className="sample">{s.prompt && <span className="tok masked">{s.prompt}</span>}{s.text}</pre>
            </li>
          ))}
        </ol>
      </section>
      {(run.phase === 'finished' || run.phase === 'stopped') && model && (
        <HeldOutAnswers runs={[{ id: run.runId, name: run.name, modelName: model.name }]} title="Before / after: the held-out prompts" />
      )}
    </section>
  );
}
