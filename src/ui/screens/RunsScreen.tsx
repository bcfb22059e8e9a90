// Runs: every run saved in this browser (IndexedDB) with its status, curve and final numbers; rename, delete, re-run
// with the same config, resume from the last checkpoint, download the adapter (.zip or bare .safetensors), export the
// metrics as CSV; and the storage used against the browser's quota.
import { useEffect, useId, useMemo, useState } from 'react';
import { chartRows } from '../../store/metrics-buffer.ts';
import type { RunRecord } from '../../store/runs-db.ts';
import { shownStatus } from '../../store/slices/runs.ts';
import { isActive } from '../../store/slices/train.ts';
import { useStudio } from '../../store/studio.ts';
import { COLORS, CurveChart } from '../components/CurveChart.tsx';
import { formatDuration } from '../components/progress-meter.ts';
import { formatBytes } from '../format.ts';

export function RunsScreen() {
  const runs = useStudio((s) => s.runs);
  const loaded = useStudio((s) => s.runsLoaded);
  const error = useStudio((s) => s.runsError);
  const refresh = useStudio((s) => s.refreshRuns);
  useEffect(() => {
    void refresh();
  }, [refresh]);
  return (
    <section aria-labelledby="runs-title" data-testid="screen-runs" className="screen">
      <h2 id="runs-title">Runs</h2>
      <p className="muted">Every run saved in this browser, with its checkpoint and adapter.</p>
      <Storage />
      {error && <p className="error" role="alert" data-testid="runs-error">{error}</p>}
      {loaded && runs.length === 0 && <p className="muted">No runs yet: start one on the Train screen.</p>}
      <ul className="runs">
        {runs.map((r) => <RunCard key={r.id} run={r} />)}
      </ul>
    </section>
  );
}

function Storage() {
  const storage = useStudio((s) => s.storage);
  const runs = useStudio((s) => s.runs);
  if (!storage) return <p className="muted small">This browser does not report its storage quota.</p>;
  const saved = runs.reduce((s, r) => s + (r.checkpoint?.bytes ?? 0) + (r.adapter?.bytes ?? 0), 0);
  return (
    <div className="progress" data-testid="storage">
      <div className="progress-label">
        <span>Storage: {formatBytes(storage.usage)} used of {formatBytes(storage.quota)} ({formatBytes(saved)} in checkpoints and adapters)</span>
      </div>
      <progress max={storage.quota} value={storage.usage} aria-label="Browser storage used" />
    </div>
  );
}

const STATUS_LABELS: Record<string, string> = {
  running: 'training', paused: 'paused', stopped: 'stopped', finished: 'finished', failed: 'failed', interrupted: 'interrupted (tab closed)',
};

function RunCard({ run }: { run: RunRecord }) {
  const locked = useStudio((s) => s.lockedRuns);
  const live = useStudio((s) => s.liveRun);
  const rename = useStudio((s) => s.renameRun);
  const remove = useStudio((s) => s.deleteRun);
  const download = useStudio((s) => s.downloadRun);
  const csv = useStudio((s) => s.exportRunCsv);
  const resume = useStudio((s) => s.resumeSavedRun);
  const rerun = useStudio((s) => s.rerunWith);
  const [editing, setEditing] = useState<string | null>(null);
  const nameId = useId();
  const rows = useMemo(() => chartRows(run.curves, 400), [run.curves]);
  const status = shownStatus(run, locked);
  const here = live?.runId === run.id && isActive(live.phase);
  const elsewhere = locked.includes(run.id) && !here;
  const canResume = !!run.checkpoint && !here && !elsewhere && run.status !== 'finished' && run.checkpoint.step < run.totalSteps;
  const f = run.final;

  return (
    <li className="card run-card" data-testid="run-card" aria-labelledby={`${nameId}-h`}>
      <div className="run-head">
        {editing === null ? (
          <h3 id={`${nameId}-h`} data-testid="run-name">{run.name}</h3>
        ) : (
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              void rename(run.id, editing).then(() => setEditing(null));
            }}
          >
            <label htmlFor={nameId} className="sr-only">New name</label>
            <input id={nameId} value={editing} onChange={(e) => setEditing(e.target.value)} autoFocus />
            <button type="submit">Save</button>
            <button type="button" onClick={() => setEditing(null)}>Cancel</button>
          </form>
        )}
        <span className={`status status-${status}`} data-testid="run-status">{STATUS_LABELS[status] ?? status}{elsewhere ? ' in another tab' : ''}</span>
      </div>
      <p className="muted small">
        {new Date(run.created).toLocaleString()} · {run.model.name}{run.model.quant === 'nf4' ? ' (NF4)' : ''} · {run.dataset.fileName} ({run.dataset.rows} rows) ·{' '}
        {run.config.method} r{run.config.rank} α{run.config.alpha} · lr {run.config.lr} · {run.trainableParams.toLocaleString('en')} trainable
      </p>
      {run.message && <p className={run.status === 'failed' ? 'error small' : 'muted small'}>{run.message}</p>}
      <dl className="facts small">
        <dt>Steps</dt>
        <dd>{run.curves.at(-1)?.step ?? 0} of {run.totalSteps}{run.checkpoint ? ` · checkpoint at step ${run.checkpoint.step} (${formatBytes(run.checkpoint.bytes)})` : ''}</dd>
        {f && (
          <>
            <dt>Final</dt>
            <dd data-testid="run-final">
              train loss {f.trainLoss?.toFixed(4) ?? '—'}{f.evalLoss !== null ? `, eval loss ${f.evalLoss.toFixed(4)}` : ''}
              {' '}· {formatDuration(f.seconds)} · {Math.round(f.tokensPerSecond).toLocaleString('en')} tokens/s · peak {formatBytes(f.peakBytes)}
              {f.exported === 'best' && f.bestStep !== null ? ` · adapter from the best step, ${f.bestStep}` : ''}
            </dd>
          </>
        )}
        {run.adapter && (
          <>
            <dt>Adapter</dt>
            <dd>{formatBytes(run.adapter.bytes)}</dd>
          </>
        )}
      </dl>
      {rows.length > 0 && (
        <CurveChart
          title={`Training loss of ${run.name}`}
          testId="run-curve"
          rows={rows}
          height={150}
          lines={[
            { key: 'smoothed', name: 'loss (smoothed)', color: COLORS.smoothed },
            ...(rows.some((r) => r.evalLoss !== undefined) ? [{ key: 'evalLoss' as const, name: 'eval loss', color: COLORS.eval, dots: true }] : []),
          ]}
        />
      )}
      {run.samples.length > 0 && (
        <details>
          <summary>Last sample (step {run.samples.at(-1)!.step})</summary>
          <pre className="sample"><span className="tok masked">{run.samples.at(-1)!.prompt}</span>{run.samples.at(-1)!.text}</pre>
        </details>
      )}
      <div className="row">
        <button type="button" disabled={!run.adapter} onClick={() => void download(run.id, 'zip')} aria-label={`Download the adapter of ${run.name} as a PEFT .zip`}>
          Download .zip (PEFT)
        </button>
        <button type="button" disabled={!run.adapter} onClick={() => void download(run.id, 'safetensors')} aria-label={`Download the adapter of ${run.name} as .safetensors`}>
          .safetensors
        </button>
        <button type="button" disabled={run.curves.length === 0} onClick={() => void csv(run.id)} aria-label={`Export the metrics of ${run.name} as CSV`}>
          Metrics CSV
        </button>
        {canResume && <button type="button" onClick={() => resume(run.id, run.name)}>Resume from step {run.checkpoint!.step}</button>}
        <button type="button" onClick={() => rerun(run.config, run.name)}>Re-run with this config</button>
        <button type="button" onClick={() => setEditing(run.name)} disabled={editing !== null}>Rename</button>
        <button
          type="button"
          className="danger"
          disabled={here || elsewhere}
          onClick={() => {
            if (window.confirm(`Delete "${run.name}" with its checkpoint and adapter?`)) void remove(run.id);
          }}
        >
          Delete
        </button>
      </div>
    </li>
  );
}
