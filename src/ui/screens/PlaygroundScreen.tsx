// Playground: chat with, or continue text from, the base model and any saved adapters side by side; each column
// streams its tokens as the worker sends them (in chunks, a few a second). The adapter is put on the model for its
// generation only; the base model's column runs on the untouched weights.
import { describeMethod } from '../../train/methods/registry.ts';
import { useEffect, useId, useState } from 'react';
import type { Generation, GenerationSettings } from '../../store/slices/generations.ts';
import { useStudio } from '../../store/studio.ts';
import type { RunRecord } from '../../store/runs-db.ts';

export function PlaygroundScreen() {
  const model = useStudio((s) => s.model);
  const go = useStudio((s) => s.go);
  const runs = useStudio((s) => s.runs);
  const refreshRuns = useStudio((s) => s.refreshRuns);
  const prompt = useStudio((s) => s.playPrompt);
  const setPrompt = useStudio((s) => s.setPlayPrompt);
  const settings = useStudio((s) => s.playSettings);
  const setSettings = useStudio((s) => s.setPlaySettings);
  const run = useStudio((s) => s.runPlayground);
  const stop = useStudio((s) => s.stopPlayground);
  const columns = useStudio((s) => s.playColumns);
  const generations = useStudio((s) => s.generations);
  const error = useStudio((s) => s.playError);
  const ids = { prompt: useId(), chat: useId(), complete: useId() };

  useEffect(() => {
    void refreshRuns();
  }, [refreshRuns]);

  const adapters = runs.filter((r) => r.adapter && model && r.model.name === model.name);
  const shown = columns.map((id) => generations[id]).filter((g): g is Generation => !!g);
  const busy = shown.some((g) => g.status === 'running');
  const chatPossible = !!model?.hasChatTemplate;

  return (
    <section aria-labelledby="playground-title" data-testid="screen-playground" className="screen">
      <h2 id="playground-title">Playground</h2>
      <p className="muted">One prompt, answered by the base model and by any saved adapter, side by side, as the tokens come.</p>
      {!model && (
        <p className="notice" role="note">
          <button type="button" className="link" onClick={() => go('models')}>Load a model</button> first (the bundled demo model works offline).
        </p>
      )}

      <form
        className="card playground-form"
        onSubmit={(e) => {
          e.preventDefault();
          run();
        }}
      >
        <fieldset className="row" disabled={!chatPossible}>
          <legend className="sr-only">Mode</legend>
          <input id={ids.chat} type="radio" name="play-mode" checked={settings.chat && chatPossible} onChange={() => setSettings({ chat: true })} />
          <label htmlFor={ids.chat}>Chat (one user message through the chat template)</label>
          <input id={ids.complete} type="radio" name="play-mode" checked={!settings.chat || !chatPossible} onChange={() => setSettings({ chat: false })} />
          <label htmlFor={ids.complete}>Complete (continue the text)</label>
          {!chatPossible && model && <span className="muted small">this model has no chat template</span>}
        </fieldset>
        <label htmlFor={ids.prompt}>Prompt</label>
        <textarea
          id={ids.prompt}
          rows={4}
          value={prompt}
          onChange={(e) => setPrompt(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) run();
          }}
          placeholder={settings.chat ? 'Ask something…' : 'Text to continue…'}
        />
        <Answerers adapters={adapters} />
        <Options settings={settings} setSettings={setSettings} />
        <div className="row">
          <button type="submit" className="primary" disabled={!model || busy}>Generate</button>
          <button type="button" onClick={stop} disabled={!busy}>Stop</button>
          <span className="muted small">Ctrl+Enter generates too.</span>
        </div>
        {error && <p className="error" role="alert" data-testid="playground-error">{error}</p>}
      </form>

      {shown.length > 0 && (
        <div className="gen-columns" data-testid="playground-columns">
          {shown.map((g) => <GenerationCard key={g.id} generation={g} testId="playground-column" />)}
        </div>
      )}
    </section>
  );
}

function Answerers({ adapters }: { adapters: RunRecord[] }) {
  const base = useStudio((s) => s.playBase);
  const setBase = useStudio((s) => s.setPlayBase);
  const chosen = useStudio((s) => s.playAdapters);
  const toggle = useStudio((s) => s.togglePlayAdapter);
  const baseId = useId();
  return (
    <fieldset className="answerers">
      <legend>Who answers</legend>
      <div className="row">
        <input id={baseId} type="checkbox" checked={base} onChange={(e) => setBase(e.target.checked)} />
        <label htmlFor={baseId}>Base model</label>
      </div>
      {adapters.length === 0 && <p className="muted small">No saved adapter for this model yet: train a run on the Train screen.</p>}
      {adapters.map((r) => (
        <div className="row" key={r.id}>
          <input id={`play-${r.id}`} type="checkbox" checked={chosen.includes(r.id)} onChange={() => toggle(r.id)} />
          <label htmlFor={`play-${r.id}`}>
            {r.name} <span className="muted small">({describeMethod(r.config)}, {r.final?.steps ?? r.curves.length} steps)</span>
          </label>
        </div>
      ))}
    </fieldset>
  );
}

/** A number field that commits on blur or Enter, so a half-typed value is never sent. */
function NumberField({ label, value, onCommit, step, min, max, placeholder }: {
  label: string;
  value: number | null;
  onCommit: (v: number | null) => void;
  step?: number;
  min?: number;
  max?: number;
  placeholder?: string;
}) {
  const id = useId();
  const [draft, setDraft] = useState<string | null>(null);
  const commit = () => {
    if (draft === null) return;
    onCommit(draft.trim() === '' ? null : Number(draft));
    setDraft(null);
  };
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type="number"
        step={step}
        min={min}
        max={max}
        placeholder={placeholder}
        value={draft ?? (value === null ? '' : String(value))}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => e.key === 'Enter' && commit()}
      />
    </>
  );
}

function Options({ settings, setSettings }: { settings: GenerationSettings; setSettings: (p: Partial<GenerationSettings>) => void }) {
  const stopId = useId();
  return (
    <fieldset className="gen-options">
      <legend>Sampling</legend>
      <NumberField label="Max new tokens" value={settings.maxNewTokens} min={1} onCommit={(v) => setSettings({ maxNewTokens: v ?? 64 })} />
      <NumberField label="Temperature (0 = greedy)" value={settings.temperature} step={0.1} min={0} onCommit={(v) => setSettings({ temperature: v ?? 0 })} />
      <NumberField label="Top-k (0 = off)" value={settings.topK} min={0} onCommit={(v) => setSettings({ topK: v ?? 0 })} />
      <NumberField label="Top-p (1 = off)" value={settings.topP} step={0.05} min={0} max={1} onCommit={(v) => setSettings({ topP: v ?? 1 })} />
      <NumberField label="Seed" value={settings.seed} min={0} placeholder="random" onCommit={(v) => setSettings({ seed: v })} />
      <label htmlFor={stopId}>Stop strings (one per line)</label>
      <textarea
        id={stopId}
        rows={2}
        value={settings.stop.join('\n')}
        onChange={(e) => setSettings({ stop: e.target.value.split('\n') })}
      />
    </fieldset>
  );
}

const STOP_REASONS: Record<string, string> = {
  eos: 'stopped at end of sequence',
  length: 'reached max new tokens',
  stop: 'stopped at a stop string',
  aborted: 'stopped',
};

/** One answer: who wrote it, the text as it streams, and how it ended. Shared with Compare. */
export function GenerationCard({ generation: g, testId, color }: { generation: Generation; testId: string; color?: string }) {
  let status = '';
  if (g.status === 'running') status = g.text ? 'writing…' : 'waiting for the GPU…';
  else if (g.status === 'done') {
    const speed = g.seconds && g.newTokens ? `, ${(g.newTokens / g.seconds).toFixed(1)} tokens/s` : '';
    status = `${g.newTokens ?? 0} tokens${speed}; ${STOP_REASONS[g.stopReason ?? ''] ?? 'done'}`;
  }
  return (
    <article className="card gen-card" data-testid={testId} data-status={g.status} style={color ? { borderTopColor: color } : undefined} aria-busy={g.status === 'running'}>
      <h3 className="gen-label">{g.label}</h3>
      <pre className="gen-text" data-testid={`${testId}-text`}>{g.text}</pre>
      {g.status === 'error' ? (
        <p className="error small" role="alert">{g.error}</p>
      ) : (
        <p className="muted small" data-testid={`${testId}-status`}>{status}</p>
      )}
    </article>
  );
}
