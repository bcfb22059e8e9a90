// A run whose tab closed (or crashed) while it trained: its record still says 'running' and no tab holds its lock.
// Offered for resume in one click, not resumed by itself: resuming loads a model (GPU memory, maybe a download) that
// the user may not want on this visit. The click loads the run's model and dataset again from the sources the worker
// kept when the run started (train/resume-sources.ts), unless they are loaded already, then resumes the run from its
// last checkpoint. A source that was not kept (a local model folder, a large dropped file) is named for the user to
// load by hand.
import { useEffect, useState } from 'react';
import type { RunRecord } from '../store/runs-db.ts';
import { shownStatus } from '../store/slices/runs.ts';
import { useStudio, type StudioState } from '../store/studio.ts';
import { loadResumeSources } from '../train/resume-sources.ts';

/** Resolves once `done(state)` holds. */
function until(done: (s: StudioState) => boolean): Promise<void> {
  return new Promise((resolve) => {
    if (done(useStudio.getState())) return resolve();
    const stop = useStudio.subscribe((s) => {
      if (!done(s)) return;
      stop();
      resolve();
    });
  });
}

const modelMatches = (s: StudioState, run: RunRecord) => s.model?.name === run.model.name && s.modelQuant === run.model.quant;
const datasetMatches = (s: StudioState, run: RunRecord) => s.dataset?.fileName === run.dataset.fileName && s.dataset.rows === run.dataset.rows;

/** Loads what the run trained on (what is not loaded yet), then resumes it; `say` narrates. */
async function resumeInterrupted(run: RunRecord, say: (text: string) => void): Promise<void> {
  const get = useStudio.getState;
  const sources = await loadResumeSources(run.id).catch(() => null);
  const byHand = `load ${run.model.name}${run.model.quant === 'nf4' ? ' (NF4)' : ''} on the Models screen and ${run.dataset.fileName} on the Data screen, then resume it on the Runs screen`;
  if (!modelMatches(get(), run)) {
    if (!sources?.model) throw new Error(`its model was a local folder, which is not kept: ${byHand}`);
    say(`Loading ${sources.model.name}…`);
    get().loadModel(sources.model.source, sources.model.name, sources.model.quant);
    await until((s) => s.modelStatus !== 'loading');
    if (!modelMatches(get(), run)) throw new Error(`${sources.model.name} did not load: ${get().modelError || 'another model is loaded'}`);
  }
  // A new model re-tokenizes the dataset already chosen (if any): wait for that before judging it.
  await until((s) => s.datasetStatus !== 'loading');
  if (!datasetMatches(get(), run)) {
    if (!sources?.dataset) throw new Error(`its dataset was too large to keep: ${byHand}`);
    say(`Loading ${sources.dataset.name}…`);
    useStudio.setState({ maxLength: sources.dataset.maxLength, trainOnPrompt: sources.dataset.trainOnPrompt });
    get().loadDataset(sources.dataset.file);
    await until((s) => s.datasetStatus !== 'loading');
    if (!datasetMatches(get(), run)) throw new Error(`${sources.dataset.name} did not load as it was: ${get().datasetError || `${get().dataset?.rows ?? 0} rows now, ${run.dataset.rows} then`}`);
  }
  say(`Resuming from step ${run.checkpoint?.step ?? 0}…`);
  get().resumeSavedRun(run.id, run.name);
}

export function InterruptedRunBanner() {
  const ready = useStudio((s) => s.gpuStatus === 'ready');
  const runs = useStudio((s) => s.runs);
  const locked = useStudio((s) => s.lockedRuns);
  const live = useStudio((s) => s.liveRun);
  const refresh = useStudio((s) => s.refreshRuns);
  const [dismissed, setDismissed] = useState<string[]>([]);
  const [busy, setBusy] = useState('');
  const [problem, setProblem] = useState('');
  useEffect(() => {
    if (ready) void refresh();
  }, [ready, refresh]);

  const run = runs.find(
    (r) => shownStatus(r, locked) === 'interrupted' && r.checkpoint && r.checkpoint.step < r.totalSteps && r.id !== live?.runId && !dismissed.includes(r.id),
  );
  if (!ready || !run) return null;
  const step = run.curves.at(-1)?.step ?? run.checkpoint!.step;
  return (
    <div className="banner row" role="status" data-testid="interrupted-banner" style={{ background: 'var(--panel)', borderBottom: '1px solid var(--border)' }}>
      <span>
        Run <strong>{run.name}</strong> was interrupted at step {step} of {run.totalSteps} when its tab closed.{' '}
        {busy || problem || `Resuming loads ${run.model.name} and ${run.dataset.fileName} again and continues from the checkpoint at step ${run.checkpoint!.step}.`}
      </span>{' '}
      <button
        type="button"
        disabled={busy !== ''}
        onClick={() => {
          setProblem('');
          setBusy('Resuming…');
          resumeInterrupted(run, setBusy)
            .catch((err) => setProblem(`It could not be resumed here: ${err instanceof Error ? err.message : String(err)}.`))
            .finally(() => setBusy(''));
        }}
      >
        Resume from step {run.checkpoint!.step}
      </button>{' '}
      <button type="button" disabled={busy !== ''} onClick={() => setDismissed([...dismissed, run.id])} aria-label={`Dismiss the notice about ${run.name}`}>
        Dismiss
      </button>
    </div>
  );
}
