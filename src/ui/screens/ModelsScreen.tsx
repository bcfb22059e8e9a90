// Models: the bundled demo model, the curated catalogue (with whether each fits this GPU), any Hugging Face repo id,
// or a local folder. Loading happens in the engine worker; this screen shows its progress and the loaded model.
import { useId, useState } from 'react';
import { CATALOGUE, type CatalogueEntry } from '../../model/catalogue.ts';
import { describeSource, hubBaseUrl } from '../../store/slices/models.ts';
import { useStudio } from '../../store/studio.ts';
import type { ModelSource } from '../../train/protocol.ts';
import { DropZone } from '../components/DropZone.tsx';
import { droppedFiles } from '../components/dropped-files.ts';
import { ProgressBar } from '../components/ProgressBar.tsx';
import { formatBytes } from '../format.ts';
import { GpuPanel } from '../GpuPanel.tsx';
import { CachedModels } from './CachedModels.tsx';
import { defaultMemoryBudget, METHOD_LABELS, methodFits } from './model-fit.ts';

export const DEMO_MODEL_PATH = 'models/demo-llama';
const GiB = 1024 ** 3;

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e8 ? 0 : 1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** Only the files at the top of a picked folder: the structured clone to the worker keeps names, not paths. */
function topLevel(files: File[]): File[] {
  return files.filter((f) => !f.webkitRelativePath || f.webkitRelativePath.split('/').length === 2);
}

export function ModelsScreen() {
  const load = useStudio((s) => s.loadModel);
  const status = useStudio((s) => s.modelStatus);
  const [quant, setQuant] = useState<'none' | 'nf4'>('none');
  const [repo, setRepo] = useState('');
  const [token, setToken] = useState(''); // memory only: never stored or logged
  const hubUrl = useStudio((s) => s.hubUrl); // shared with the Runs screen's adapter import
  const setHubUrl = useStudio((s) => s.setHubUrl);
  const ids = { repo: useId(), token: useId(), quant: useId(), hub: useId() };
  const busy = status === 'loading';

  const start = (source: ModelSource) => load(source, describeSource(source), quant);
  const loadHub = (id: string) => {
    start({ kind: 'hub', repo: id.trim(), token: token.trim() || undefined, baseUrl: hubBaseUrl(hubUrl) });
  };

  return (
    <section aria-labelledby="models-title" data-testid="screen-models" className="screen">
      <h2 id="models-title">Models</h2>
      <p className="muted">Pick a model: the bundled demo model, one from the catalogue or any Hugging Face repo id, or a folder from disk.</p>

      <LoadedModel />

      <div className="row">
        <label htmlFor={ids.quant}>Base weights</label>
        <select id={ids.quant} value={quant} onChange={(e) => setQuant(e.target.value as 'none' | 'nf4')} disabled={busy}>
          <option value="none">full precision, for LoRA (f16 where the GPU has shader-f16, else f32)</option>
          <option value="nf4">NF4, for QLoRA (a quarter of the memory)</option>
        </select>
      </div>

      <section className="card demo-card" aria-labelledby="demo-title">
        <h3 id="demo-title">
          demo-llama <span className="badge badge-demo">DEMO</span>
        </h3>
        <p>
          A 1.9M-parameter Llama bundled with the studio and pretrained here on generated text: it works offline and
          trains in seconds, but it only knows short stories, colours, animals, numbers and little lists. Use it to try
          the studio: each sample dataset visibly changes its answers in one epoch of the Quick preset.
        </p>
        <button type="button" className="primary" disabled={busy} onClick={() => start({ kind: 'bundled', path: DEMO_MODEL_PATH })}>
          Use the demo model
        </button>
      </section>

      <section className="card" aria-labelledby="hub-title">
        <h3 id="hub-title">From Hugging Face</h3>
        <form
          className="hub-form"
          onSubmit={(e) => {
            e.preventDefault();
            if (repo.trim()) loadHub(repo);
          }}
        >
          <label htmlFor={ids.repo}>Repo id</label>
          <input id={ids.repo} value={repo} onChange={(e) => setRepo(e.target.value)} placeholder="HuggingFaceTB/SmolLM2-135M-Instruct" spellCheck={false} autoComplete="off" />
          <label htmlFor={ids.token}>Access token (gated models; kept in this tab only)</label>
          <input id={ids.token} type="password" value={token} onChange={(e) => setToken(e.target.value)} placeholder="hf_…" autoComplete="off" />
          <button type="submit" disabled={busy || !repo.trim()}>
            Download and load
          </button>
        </form>
        <details>
          <summary>Hub address</summary>
          <div className="row">
            <label htmlFor={ids.hub}>Hub URL (a mirror, or a local server)</label>
            <input id={ids.hub} value={hubUrl} onChange={(e) => setHubUrl(e.target.value)} spellCheck={false} autoComplete="off" size={32} />
          </div>
        </details>
        <p className="muted small">Files are cached in this browser, so the next load works offline.</p>
      </section>

      <CachedModels />

      <section className="card" aria-labelledby="folder-title">
        <h3 id="folder-title">From a folder on this computer</h3>
        <DropZone
          label="Drop a model folder here (config.json, model.safetensors, tokenizer.json)"
          pickLabel="Choose a folder…"
          directory
          testId="model-dropzone"
          onPick={(files) => start({ kind: 'folder', files: topLevel(files) })}
          onDrop={(transfer) => {
            void droppedFiles(transfer).then((dropped) => {
              const files = dropped.filter((d) => !d.path.includes('/')).map((d) => d.file);
              start({ kind: 'folder', files });
            });
          }}
        />
      </section>

      <Catalogue busy={busy} onPick={(entry) => {
        setRepo(entry.repo);
        loadHub(entry.repo);
      }} />

      <GpuPanel />
    </section>
  );
}

function LoadedModel() {
  const status = useStudio((s) => s.modelStatus);
  const label = useStudio((s) => s.modelLabel);
  const progress = useStudio((s) => s.modelProgress);
  const model = useStudio((s) => s.model);
  const quant = useStudio((s) => s.modelQuant);
  const error = useStudio((s) => s.modelError);
  return (
    <section className="card loaded-model" aria-labelledby="loaded-title" data-testid="loaded-model">
      <h3 id="loaded-title">Current model</h3>
      {status === 'loading' && (
        <>
          <p>Loading <strong>{label}</strong></p>
          <ProgressBar progress={progress} testId="model-progress" />
        </>
      )}
      {status === 'error' && (
        <p className="error" role="alert" data-testid="model-error">
          Could not load {label}: {error}
        </p>
      )}
      {model ? (
        <div data-testid="model-summary">
          <p>
            <strong data-testid="model-name">{model.name}</strong>
            {model.name === 'demo-llama' && <span className="badge badge-demo">DEMO</span>}
          </p>
          <dl className="facts">
            <dt>Architecture</dt>
            <dd>{model.modelType}, {model.layers} layers, hidden {model.hidden}</dd>
            <dt>Parameters</dt>
            <dd>{formatCount(model.parameters)} ({model.parameters.toLocaleString('en')})</dd>
            <dt>Vocabulary / context</dt>
            <dd>{model.vocab.toLocaleString('en')} tokens / {model.maxPositions.toLocaleString('en')} positions</dd>
            <dt>Weights on the GPU</dt>
            <dd>{formatBytes(model.weightBytes)} ({quant === 'nf4' ? `NF4 linear layers, ${model.dtype} embeddings` : model.dtype})</dd>
            <dt>Chat template</dt>
            <dd>{model.hasChatTemplate ? 'its own' : 'none: chat data is rendered with the ChatML fallback'}</dd>
            <dt>LoRA targets (PEFT default)</dt>
            <dd><code>{model.defaultTargets.join(', ')}</code> of <code>{model.linearModules.join(', ')}</code></dd>
          </dl>
        </div>
      ) : (
        status !== 'loading' && <p className="muted">No model loaded yet.</p>
      )}
    </section>
  );
}

function Catalogue({ busy, onPick }: { busy: boolean; onPick(entry: CatalogueEntry): void }) {
  const gpu = useStudio((s) => s.gpu);
  const budgetOverride = useStudio((s) => s.memoryBudget);
  const setBudget = useStudio((s) => s.setMemoryBudget);
  const budgetId = useId();
  const defaultBudget = gpu ? defaultMemoryBudget(gpu.limits) : null;
  const budget = budgetOverride ?? defaultBudget;
  return (
    <section aria-labelledby="catalogue-title">
      <h3 id="catalogue-title">Catalogue</h3>
      <p className="muted small">
        Memory estimates are for rank 8 on PEFT's default targets, one row of 512 tokens. WebGPU does not report a GPU's
        memory, so the budget defaults to four times its largest buffer; set your own if you know better.
      </p>
      <div className="row">
        <label htmlFor={budgetId}>GPU memory budget (GiB)</label>
        <input
          id={budgetId}
          type="number"
          min={0.25}
          step={0.25}
          value={budget ? +(budget / GiB).toFixed(2) : ''}
          onChange={(e) => setBudget(e.target.value === '' ? null : Number(e.target.value) * GiB)}
        />
        {budgetOverride !== null && (
          <button type="button" onClick={() => setBudget(null)}>
            Reset to default
          </button>
        )}
      </div>
      <ul className="catalogue">
        {CATALOGUE.map((entry) => {
          const fits = gpu && budget ? methodFits(entry, { hasF16: gpu.features.includes('shader-f16'), limits: gpu.limits }, budget) : null;
          return (
            <li key={entry.repo} className="card model-card" data-testid="catalogue-card">
              <h4>{entry.title}</h4>
              <p className="muted"><code>{entry.repo}</code></p>
              <dl className="facts">
                <dt>Parameters</dt>
                <dd>{formatCount(entry.params)}</dd>
                <dt>Licence</dt>
                <dd>{entry.licence}</dd>
                <dt>Download</dt>
                <dd>{formatBytes(entry.downloadBytes)}</dd>
              </dl>
              {fits ? (
                <table className="fit-table">
                  <caption className="sr-only">Training memory on this GPU</caption>
                  <thead>
                    <tr><th scope="col">Method</th><th scope="col">Memory</th><th scope="col">On this GPU</th></tr>
                  </thead>
                  <tbody>
                    {fits.map((f) => (
                      <tr key={f.method}>
                        <th scope="row">{METHOD_LABELS[f.method]}</th>
                        <td>{formatBytes(f.estimate.totalBytes)}</td>
                        <td className={f.verdict.fits ? 'ok' : 'error'}>{f.verdict.fits ? 'fits' : <>won't fit: {f.verdict.reason}</>}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <p className="muted small">Memory estimate once the GPU is found.</p>
              )}
              {entry.gated && <p className="small warn">Gated: accept its licence on the Hub and add an access token above.</p>}
              <button type="button" disabled={busy} onClick={() => onPick(entry)} aria-label={`Download and load ${entry.title}`}>
                Download and load
              </button>
            </li>
          );
        })}
      </ul>
    </section>
  );
}
