// Runs: every run saved in this browser (IndexedDB) with its status, curve and final numbers; rename, delete, re-run
// with the same config, resume from the last checkpoint, continue training from the adapter, download the adapter
// (.zip or bare .safetensors) or the base model with it merged in, export the metrics as CSV; import a PEFT adapter
// (a .zip, a folder or a Hub repo) as a run; and the storage used against the browser's quota.
import { useEffect, useId, useMemo, useState } from 'react';
import { chartRows } from '../../store/metrics-buffer.ts';
import type { RunRecord } from '../../store/runs-db.ts';
import { hubBaseUrl } from '../../store/slices/models.ts';
import { adapterFolderFiles, canPickFolder, NO_FOLDER_PICKER, runHolder, shownStatus } from '../../store/slices/runs.ts';
import { useStudio } from '../../store/studio.ts';
import { COLORS, CurveChart } from '../components/CurveChart.tsx';
import { DropZone } from '../components/DropZone.tsx';
import { droppedFiles } from '../components/dropped-files.ts';
import { formatDuration } from '../../store/progress-meter.ts';
import { formatBytes } from '../format.ts';
import { normalizeConfig } from '../../train/config.ts';
import { METHODS } from '../../train/methods/registry.ts';

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
      <ImportAdapter />
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
  imported: 'imported',
};

function ImportAdapter() {
  const model = useStudio((s) => s.model);
  const state = useStudio((s) => s.adapterImport);
  const importAdapter = useStudio((s) => s.importAdapter);
  const hubUrl = useStudio((s) => s.hubUrl);
  const [name, setName] = useState('');
  const [repo, setRepo] = useState('');
  const [token, setToken] = useState(''); // memory only: never stored or logged
  const [pickError, setPickError] = useState('');
  const ids = { name: useId(), repo: useId(), token: useId(), zip: useId(), title: useId() };
  const busy = state.phase === 'importing';
  const off = busy || !model;
  const run = (work: () => void) => {
    setPickError('');
    try {
      work();
    } catch (err) {
      setPickError(err instanceof Error ? err.message : String(err));
    }
  };
  const fromFolder = (picked: { path: string; file: File }[]) =>
    run(() => {
      const zip = picked.length === 1 && /\.zip$/i.test(picked[0].file.name) ? picked[0].file : null;
      if (zip) return importAdapter({ kind: 'zip', file: zip }, name.trim() || undefined);
      const { files, name: folder } = adapterFolderFiles(picked);
      importAdapter({ kind: 'folder', files, name: folder }, name.trim() || undefined);
    });

  return (
    <section className="card" aria-labelledby={ids.title} data-testid="import-adapter">
      <h3 id={ids.title}>Import adapter</h3>
      <p className="muted small">
        A PEFT LoRA adapter (adapter_config.json and adapter_model.safetensors){model ? ` for ${model.name}` : ''}: checked against the loaded
        model, then listed here, in Compare and in the Playground like a trained run, ready to continue training or merge.
      </p>
      {!model && <p className="muted">Load its base model on the Models screen first: the adapter is checked against it.</p>}
      <div className="row">
        <label htmlFor={ids.name}>Name (optional)</label>
        <input id={ids.name} value={name} onChange={(e) => setName(e.target.value)} placeholder="the file, folder or repo name" />
      </div>
      <div className="row">
        <label htmlFor={ids.zip}>Adapter .zip</label>
        <input
          id={ids.zip}
          type="file"
          accept=".zip,application/zip"
          disabled={off}
          data-testid="import-zip-input"
          onChange={(e) => {
            const file = e.currentTarget.files?.[0];
            e.currentTarget.value = '';
            if (file) run(() => importAdapter({ kind: 'zip', file }, name.trim() || undefined));
          }}
        />
      </div>
      <DropZone
        label="Drop an adapter folder or .zip here"
        pickLabel="Choose an adapter folder…"
        directory
        testId="adapter-dropzone"
        onPick={(files) => {
          if (!off) fromFolder(files.map((file) => ({ path: file.webkitRelativePath || file.name, file })));
        }}
        onDrop={(transfer) => {
          if (!off) void droppedFiles(transfer).then(fromFolder);
        }}
      />
      <form
        className="hub-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (repo.trim()) run(() => importAdapter({ kind: 'hub', repo: repo.trim(), token: token.trim() || undefined, baseUrl: hubBaseUrl(hubUrl) }, name.trim() || undefined));
        }}
      >
        <label htmlFor={ids.repo}>Hugging Face repo id</label>
        <input id={ids.repo} value={repo} onChange={(e) => setRepo(e.target.value)} placeholder="owner/my-lora-adapter" spellCheck={false} autoComplete="off" />
        <label htmlFor={ids.token}>Access token (private repos; kept in this tab only)</label>
        <input id={ids.token} type="password" value={token} onChange={(e) => setToken(e.target.value)} placeholder="hf_…" autoComplete="off" />
        <button type="submit" disabled={off || !repo.trim()}>Import from the Hub</button>
        <span className="muted small">from {hubUrl} (the Hub address of the Models screen)</span>
      </form>
      {busy && (
        <div data-testid="import-progress">
          {state.total > 0 ? <BytesProgress label="Downloading the adapter" done={state.done} total={state.total} /> : <p className="muted">Checking the adapter…</p>}
        </div>
      )}
      {(pickError || state.phase === 'error') && <pre className="error small" role="alert" data-testid="import-error">{pickError || state.message}</pre>}
      {state.phase === 'done' && (
        <div data-testid="import-done">
          <p>{state.message}</p>
          {state.warnings.length > 0 && <ul className="small warn">{state.warnings.map((w) => <li key={w}>{w}</li>)}</ul>}
        </div>
      )}
    </section>
  );
}

function BytesProgress({ label, done, total }: { label: string; done: number; total: number }) {
  return (
    <div className="progress" role="status">
      <div className="progress-label">
        <span>{label}…</span>
        {total > 0 && <span className="muted">{formatBytes(done)} of {formatBytes(total)}</span>}
      </div>
      {total > 0 ? <progress max={total} value={done} aria-label={label} /> : <progress aria-label={label} />}
    </div>
  );
}

/** "Download merged model": the loaded base model with this run's adapter folded in, f16 or f32; "Download for
 *  llama.cpp / Ollama" (format gguf): the same as one GGUF file (f32, f16 or q8_0) and an Ollama Modelfile; "Export
 *  for a GPU cluster" (format trl): the run as train.py for TRL + accelerate with its rows (src/export/trl.ts). */
function MergePanel({ run, format }: { run: RunRecord; format: 'hf' | 'gguf' | 'trl' | 'full' }) {
  const model = useStudio((s) => s.model);
  const merge = useStudio((s) => s.merges[run.id]);
  const start = useStudio((s) => s.mergeRun);
  const cancel = useStudio((s) => s.cancelMerge);
  const [dtype, setDtype] = useState<'f16' | 'f32'>('f16');
  const [ggufType, setGgufType] = useState<'f32' | 'f16' | 'q8_0'>('f16');
  const dtypeId = useId();
  const gguf = format === 'gguf';
  const trl = format === 'trl';
  const full = format === 'full';
  const folder = canPickFolder();
  const wrongModel = !model
    ? `Load ${run.model.name} on the Models screen first: the ${full ? 'model folder takes its config and tokenizer files' : 'merge reads its files'}.`
    : model.name !== run.model.name ? `Load ${run.model.name} first (loaded: ${model.name}).` : '';
  const busy = merge?.phase === 'merging';
  return (
    <div className="card merge-panel" data-testid={full ? 'full-model-panel' : trl ? 'trl-panel' : gguf ? 'gguf-panel' : 'merge-panel'} data-status={merge?.phase ?? 'idle'}>
      {full ? (
        <p className="small">
          The fully fine-tuned model itself, not an adapter: <code>model.safetensors</code> (every weight as trained, in the base
          checkpoint&apos;s dtype), <code>config.json</code> and the tokenizer files, a folder transformers&apos;{' '}
          <code>from_pretrained</code> loads as a plain model.
        </p>
      ) : trl ? (
        <p className="small">
          This run for TRL + accelerate on GPUs: <code>train.py</code> (TRL's SFTTrainer with PEFT, this run's settings), the
          rows exactly as it trained on them, accelerate configs for DDP, FSDP and DeepSpeed, and a README. Run{' '}
          <code>python train.py</code> on one machine or <code>accelerate launch --config_file accelerate/ddp.yaml train.py</code> on
          many; {run.config.method === 'full' ? 'the model folder it writes loads on the Models screen' : 'the adapter it writes imports back here'}. Needs the run's dataset loaded (Data screen).
        </p>
      ) : gguf ? (
        <p className="small">
          The base model with this adapter folded in, as one GGUF file for llama.cpp, LM Studio and Ollama (tokenizer and
          chat template inside), with an Ollama Modelfile: <code>ollama create my-model -f Modelfile</code>.
        </p>
      ) : (
        <p className="small">
          The base model with this adapter folded in (W + s·B·A), with config.json and the tokenizer files: a plain model
          for transformers, streamed to disk so it never sits whole in memory.
        </p>
      )}
      {wrongModel && <p className="muted">{wrongModel}</p>}
      <div className="row">
        {!trl && !full && <label htmlFor={dtypeId}>Weights</label>}
        {trl || full ? null : gguf ? (
          <select id={dtypeId} value={ggufType} onChange={(e) => setGgufType(e.target.value as 'f32' | 'f16' | 'q8_0')} disabled={busy}>
            <option value="f16">f16 (half the size)</option>
            <option value="q8_0">q8_0 (a quarter, 8-bit)</option>
            <option value="f32">f32 (exact)</option>
          </select>
        ) : (
          <select id={dtypeId} value={dtype} onChange={(e) => setDtype(e.target.value as 'f16' | 'f32')} disabled={busy}>
            <option value="f16">f16 (half the size)</option>
            <option value="f32">f32 (exact)</option>
          </select>
        )}
        <button type="button" disabled={busy || !!wrongModel || !folder} onClick={() => void start(run.id, dtype, 'folder', gguf ? ggufType : undefined, trl)}>
          Save into a folder…
        </button>
        <button type="button" disabled={busy || !!wrongModel} onClick={() => void start(run.id, dtype, 'zip', gguf ? ggufType : undefined, trl)}>
          Download .zip (up to 200 MiB)
        </button>
        {busy && <button type="button" onClick={() => cancel(run.id)}>Cancel</button>}
      </div>
      {!folder && <p className="muted small" data-testid="merge-no-folder">{NO_FOLDER_PICKER}</p>}
      {busy && <BytesProgress label={trl ? 'Exporting' : full ? 'Writing the model' : 'Merging'} done={merge.done} total={merge.total} />}
      {merge && merge.phase !== 'merging' && merge.message && (
        <p className={merge.phase === 'error' ? 'error small' : 'small'} role={merge.phase === 'error' ? 'alert' : undefined} data-testid="merge-message">{merge.message}</p>
      )}
    </div>
  );
}

function RunCard({ run }: { run: RunRecord }) {
  const locked = useStudio((s) => s.lockedRuns);
  const live = useStudio((s) => s.liveRun);
  const rename = useStudio((s) => s.renameRun);
  const remove = useStudio((s) => s.deleteRun);
  const download = useStudio((s) => s.downloadRun);
  const csv = useStudio((s) => s.exportRunCsv);
  const resume = useStudio((s) => s.resumeSavedRun);
  const rerun = useStudio((s) => s.rerunWith);
  const continueFrom = useStudio((s) => s.continueFromRun);
  const method = normalizeConfig(run.config).method;
  // The cluster export writes a PEFT LoraConfig run (DoRA: use_dora=True); another method's run says so.
  const loraOnly = method === 'lora' || method === 'dora' || method === 'full' ? undefined : `${METHODS[method]?.label ?? method} runs: the cluster export takes LoRA, DoRA and full fine-tuning runs only (for now)`;
  // A method without a merge rule: a prompt method's virtual tokens are inputs, not weights; a bottleneck adapter is
  // non-linear, so it cannot fold into W. The adapter itself is the export.
  const m = METHODS[method];
  const noMerge = !m || m.exports !== 'adapter' || m.proof.merge !== null
    ? undefined
    : m.wrapsLinears
      ? `${m.label} runs: a non-linear adapter cannot be folded into the weights, so there is no merged model (download the adapter)`
      : method === 'prefix-tuning'
        ? `${m.label} runs: the key/value prefix is attention input, not a weight, so there is nothing to merge (download the adapter)`
        : `${m.label} runs: the virtual tokens are inputs, not weights, so there is nothing to merge (download the adapter)`;
  const [editing, setEditing] = useState<string | null>(null);
  const [merging, setMerging] = useState<null | 'hf' | 'gguf' | 'trl' | 'full'>(null);
  // Full fine-tuning saved the whole model, not an adapter: it downloads as a model folder; merging does not apply.
  const wholeModel = METHODS[method]?.exports === 'model';
  // PEFT has no bottleneck adapters: those download in the studio's own documented layout (methods/bottleneck/format.ts).
  const peftAdapter = METHODS[method]?.peftType !== null;
  const nameId = useId();
  const rows = useMemo(() => chartRows(run.curves, 400), [run.curves]);
  const status = shownStatus(run, locked);
  const holder = runHolder(run, locked, live);
  const here = holder === 'this-tab';
  const elsewhere = holder === 'another-tab';
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
      {run.status === 'imported' ? (
        <p className="muted small" data-testid="run-imported">
          {new Date(run.created).toLocaleString()} · for {run.model.name} · imported from {run.importedFrom} · {method === 'lora' ? `r${run.config.rank} α${run.config.alpha}` : `${METHODS[method]?.label ?? method}${method === 'dora' ? ` r${run.config.rank} α${run.config.alpha}` : method === 'adalora' ? ` r${run.config.initR} → ${run.config.targetR} α${run.config.alpha}` : ''}`}
          {run.config.rslora ? ' (rsLoRA)' : ''}{run.config.targets.length ? ` on ${run.config.targets.join(', ')}` : METHODS[method]?.wrapsLinears === false ? `, ${run.config.numVirtualTokens} virtual tokens` : ' on the PEFT default'} · {run.trainableParams.toLocaleString('en')} parameters
        </p>
      ) : (
        <p className="muted small">
          {new Date(run.created).toLocaleString()} · {run.model.name}{run.model.quant === 'nf4' ? ' (NF4)' : ''} · {run.dataset.fileName} ({run.dataset.rows} rows) ·{' '}
          {METHODS[method]?.label ?? method}{method === 'lora' || method === 'dora' ? ` r${run.config.rank} α${run.config.alpha}` : method === 'adalora' ? ` r${run.config.initR} → ${run.config.targetR} α${run.config.alpha}` : ''} · lr {run.config.lr} · {run.trainableParams.toLocaleString('en')} trainable
          {run.continuedFrom ? ` · continued from "${run.continuedFrom.name}" (its adapter at step ${run.continuedFrom.step})` : ''}
        </p>
      )}
      {run.message && <p className={run.status === 'failed' ? 'error small' : 'muted small'}>{run.message}</p>}
      {wholeModel && (
        <p className="small" data-testid="run-whole-model">
          A whole model, not an adapter: every weight trained. It downloads as a model folder (model.safetensors, config.json,
          tokenizer) that transformers loads; there is nothing to merge.
        </p>
      )}
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
            <dt>{wholeModel ? 'Trained weights' : 'Adapter'}</dt>
            <dd>{formatBytes(run.adapter.bytes)}{wholeModel ? ' (every weight in f32, kept in this browser)' : ''}</dd>
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
        {wholeModel ? (
          <button type="button" disabled={!run.adapter} aria-expanded={merging === 'full'} onClick={() => setMerging(merging === 'full' ? null : 'full')} aria-label={`Download ${run.name} as a model folder`}>
            Download model
          </button>
        ) : (
          <>
            <button type="button" disabled={!run.adapter} onClick={() => void download(run.id, 'zip')} aria-label={`Download the adapter of ${run.name} as ${peftAdapter ? 'a PEFT .zip' : "a .zip in the studio's documented layout"}`}>
              Download .zip ({peftAdapter ? 'PEFT' : 'studio layout'})
            </button>
            <button type="button" disabled={!run.adapter} onClick={() => void download(run.id, 'safetensors')} aria-label={`Download the adapter of ${run.name} as .safetensors`}>
              .safetensors
            </button>
          </>
        )}
        <button type="button" disabled={run.curves.length === 0} onClick={() => void csv(run.id)} aria-label={`Export the metrics of ${run.name} as CSV`}>
          Metrics CSV
        </button>
        {!wholeModel && (
          <>
            <button type="button" disabled={!run.adapter || !!noMerge} title={noMerge} aria-expanded={merging === 'hf'} onClick={() => setMerging(merging === 'hf' ? null : 'hf')} aria-label={`Download ${run.name} merged into its base model`}>
              Download merged model
            </button>
            <button type="button" disabled={!run.adapter || !!noMerge} title={noMerge} aria-expanded={merging === 'gguf'} onClick={() => setMerging(merging === 'gguf' ? null : 'gguf')} aria-label={`Download ${run.name} as GGUF for llama.cpp / Ollama`}>
              Download for llama.cpp / Ollama
            </button>
          </>
        )}
        <button
          type="button"
          disabled={!run.adapter || run.status === 'imported' || !!loraOnly}
          aria-expanded={merging === 'trl'}
          onClick={() => setMerging(merging === 'trl' ? null : 'trl')}
          aria-label={`Export ${run.name} for a GPU cluster (TRL + accelerate)`}
          title={run.status === 'imported' ? 'An imported adapter has no training run to export' : loraOnly}
        >
          Export for a GPU cluster
        </button>
        {canResume && <button type="button" onClick={() => resume(run.id, run.name)}>Resume from step {run.checkpoint!.step}</button>}
        <button type="button" disabled={!run.adapter || here} onClick={() => continueFrom(run)} aria-label={`Continue training from the ${wholeModel ? 'trained weights' : 'adapter'} of ${run.name}`}>
          Continue training
        </button>
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
      {merging && run.adapter && <MergePanel key={merging} run={run} format={merging} />}
    </li>
  );
}
