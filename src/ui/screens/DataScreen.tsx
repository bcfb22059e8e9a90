// Data: drop or pick a JSONL file, or take a sample; the engine worker detects its format, tokenizes it with the
// loaded model's tokenizer and chat template, and reports what happened to every line.
import { useEffect, useId, useState } from 'react';
import { Bar, BarChart, CartesianGrid, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { blobChunks } from '../../data/jsonl.ts';
import { FORMAT_LABELS, isDatasetFormat } from '../../data/formats.ts';
import { effectiveMaxLength, type DatasetSource } from '../../store/slices/dataset.ts';
import { useStudio } from '../../store/studio.ts';
import type { DatasetSummary } from '../../train/protocol.ts';
import { DropZone } from '../components/DropZone.tsx';
import { linesAt } from '../components/line-text.ts';
import { ProgressBar } from '../components/ProgressBar.tsx';
import { formatBytes } from '../format.ts';

interface SampleDataset {
  file: string;
  title: string;
  format: string;
  rows: number;
  bytes: number;
  description: string;
  /** Prompts no training row contains, for before/after (Compare, the Run screen). */
  heldOut?: { prompt: string }[];
}

/** public/datasets/index.json, resolved against the page (the worker's own URL is elsewhere). */
function useSampleDatasets(): { samples: SampleDataset[]; error: string } {
  const [state, setState] = useState<{ samples: SampleDataset[]; error: string }>({ samples: [], error: '' });
  useEffect(() => {
    let live = true;
    fetch(new URL('datasets/index.json', document.baseURI), { headers: { Accept: 'application/json' } })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))))
      .then((json: { datasets?: SampleDataset[] }) => live && setState({ samples: json.datasets ?? [], error: '' }))
      .catch((e: Error) => live && setState({ samples: [], error: `sample datasets unavailable (${e.message})` }));
    return () => {
      live = false;
    };
  }, []);
  return state;
}

function jsonlFiles(files: Iterable<File>): File[] {
  return Array.from(files).filter((f) => /\.(jsonl|ndjson|json)$/i.test(f.name) || f.type === 'application/x-ndjson');
}

export function DataScreen() {
  const model = useStudio((s) => s.model);
  const go = useStudio((s) => s.go);
  const load = useStudio((s) => s.loadDataset);
  const status = useStudio((s) => s.datasetStatus);
  const progress = useStudio((s) => s.datasetProgress);
  const error = useStudio((s) => s.datasetError);
  const source = useStudio((s) => s.datasetSource);
  const dataset = useStudio((s) => s.dataset);
  const [dropError, setDropError] = useState('');
  const { samples, error: samplesError } = useSampleDatasets();

  const take = (files: File[]) => {
    const picked = jsonlFiles(files);
    if (picked.length === 0) {
      setDropError(`${files.map((f) => f.name).join(', ') || 'that'} is not a .jsonl file`);
      return;
    }
    setDropError('');
    load(picked[0]);
  };

  return (
    <section aria-labelledby="data-title" data-testid="screen-data" className="screen">
      <h2 id="data-title">Data</h2>
      <p className="muted">Drop a JSONL dataset: its format is detected, bad lines are listed with their reasons.</p>
      {!model && (
        <p className="notice" role="note">
          Datasets are tokenized with the model's tokenizer: <button type="button" className="link" onClick={() => go('models')}>load a model</button> first.
        </p>
      )}

      <DropZone
        label="Drop a .jsonl file here"
        pickLabel="Choose a .jsonl file…"
        accept=".jsonl,.ndjson,.json,application/x-ndjson"
        testId="data-dropzone"
        onDrop={(transfer) => take(Array.from(transfer.files))}
        onPick={take}
      >
        <p className="muted small">
          Formats: {Object.values(FORMAT_LABELS).join('; ')}.
        </p>
      </DropZone>
      {dropError && <p className="error" role="alert">{dropError}</p>}

      <Options />

      <section aria-labelledby="samples-title">
        <h3 id="samples-title">Sample datasets</h3>
        {samplesError && <p className="muted">{samplesError}</p>}
        <ul className="samples">
          {samples.map((s) => (
            <li key={s.file} className="card sample-card">
              <h4>{s.title}</h4>
              <p className="small">{s.description}</p>
              <p className="muted small">{s.rows} rows · {formatBytes(s.bytes)} · {s.format}</p>
              <button
                type="button"
                disabled={!model || status === 'loading'}
                onClick={() =>
                  load({
                    url: new URL(`datasets/${s.file}`, document.baseURI).href,
                    name: s.file,
                    heldOut: s.heldOut?.length ? { prompts: s.heldOut.map((h) => h.prompt), chat: s.format !== 'text' } : undefined,
                  })
                }
                aria-label={`Use the sample ${s.title}`}
              >
                Use this sample
              </button>
            </li>
          ))}
        </ul>
      </section>

      {status === 'loading' && <ProgressBar progress={progress} testId="dataset-progress" />}
      {status === 'error' && (
        <p className="error" role="alert" data-testid="dataset-error">
          {source ? `${source.name}: ` : ''}{error}
        </p>
      )}
      {dataset && source && <DatasetReport dataset={dataset} source={source} />}
    </section>
  );
}

function Options() {
  const model = useStudio((s) => s.model);
  const maxLength = useStudio((s) => s.maxLength);
  const trainOnPrompt = useStudio((s) => s.trainOnPrompt);
  const setOptions = useStudio((s) => s.setDatasetOptions);
  const [draft, setDraft] = useState<string | null>(null);
  const ids = { max: useId(), prompt: useId() };
  const effective = effectiveMaxLength(maxLength, model?.maxPositions ?? null);
  const commit = () => {
    if (draft === null) return;
    setOptions({ maxLength: draft.trim() === '' ? null : Number(draft) });
    setDraft(null);
  };
  return (
    <div className="row options">
      <label htmlFor={ids.max}>Max length (tokens)</label>
      <input
        id={ids.max}
        type="number"
        min={2}
        max={model?.maxPositions}
        value={draft ?? String(effective)}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => e.key === 'Enter' && commit()}
      />
      <input id={ids.prompt} type="checkbox" checked={trainOnPrompt} onChange={(e) => setOptions({ trainOnPrompt: e.target.checked })} />
      <label htmlFor={ids.prompt}>Train on prompts too (not only answers)</label>
    </div>
  );
}

function DatasetReport({ dataset, source }: { dataset: DatasetSummary; source: DatasetSource }) {
  const lines = dataset.rows + dataset.skipped;
  const format = dataset.format && isDatasetFormat(dataset.format) ? FORMAT_LABELS[dataset.format] : 'none detected';
  return (
    <section className="card" aria-labelledby="report-title" data-testid="dataset-report">
      <h3 id="report-title">{dataset.fileName}</h3>
      <dl className="facts">
        <dt>Format</dt>
        <dd data-testid="dataset-format">{format}</dd>
        <dt>Rows</dt>
        <dd data-testid="dataset-counts">
          {lines} rows: <strong>{dataset.rows} usable</strong>, <strong className={dataset.skipped ? 'error' : ''}>{dataset.skipped} skipped</strong>
          {dataset.truncated > 0 && <>, {dataset.truncated} truncated to the max length</>}
        </dd>
        <dt>Tokens</dt>
        <dd>{dataset.totalTokens.toLocaleString('en')} in all, {dataset.trainedTokens.toLocaleString('en')} trained</dd>
      </dl>
      {dataset.errors.length > 0 && <SkippedLines dataset={dataset} source={source} />}
      <Histogram dataset={dataset} />
      <Preview dataset={dataset} />
    </section>
  );
}

function SkippedLines({ dataset, source }: { dataset: DatasetSummary; source: DatasetSource }) {
  const [texts, setTexts] = useState<Map<number, string>>(new Map());
  useEffect(() => {
    let live = true;
    const wanted = dataset.errors.map((e) => e.line);
    const read = source instanceof Blob
      ? linesAt(blobChunks(source), wanted)
      : fetch(source.url).then((r) => (r.body ? linesAt(r.body as ReadableStream<Uint8Array>, wanted) : new Map<number, string>()));
    read.then((m) => live && setTexts(m)).catch(() => {});
    return () => {
      live = false;
    };
  }, [dataset, source]);
  return (
    <section aria-labelledby="skipped-title">
      <h4 id="skipped-title">Skipped lines</h4>
      {dataset.skipped > dataset.errors.length && <p className="muted small">The first {dataset.errors.length} of {dataset.skipped}.</p>}
      <table className="skipped" data-testid="skipped-lines">
        <thead>
          <tr><th scope="col">Line</th><th scope="col">Reason</th><th scope="col">Content</th></tr>
        </thead>
        <tbody>
          {dataset.errors.map((e) => (
            <tr key={e.line} data-testid="skipped-line">
              <td>{e.line}</td>
              <td>{e.reason}</td>
              <td><code className="line-text">{texts.get(e.line) ?? ''}</code></td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Histogram({ dataset }: { dataset: DatasetSummary }) {
  const { edges, counts } = dataset.histogram;
  const data = counts.map((rows, i) => ({ range: `${edges[i]}–${edges[i + 1]}`, rows }));
  return (
    <section aria-labelledby="hist-title" className="histogram" data-testid="length-histogram">
      <h4 id="hist-title">Token lengths</h4>
      <p className="sr-only">
        {data.filter((d) => d.rows > 0).map((d) => `${d.rows} rows of ${d.range} tokens`).join('; ')}
      </p>
      <div style={{ width: '100%', height: 220 }} aria-hidden="true">
        <ResponsiveContainer width="100%" height="100%">
          <BarChart data={data} margin={{ top: 8, right: 8, bottom: 8, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="range" interval="preserveStartEnd" />
            <YAxis allowDecimals={false} width={40} />
            <Tooltip cursor={{ fillOpacity: 0.15 }} />
            <Bar dataKey="rows" name="rows" isAnimationActive={false} />
          </BarChart>
        </ResponsiveContainer>
      </div>
    </section>
  );
}

function Preview({ dataset }: { dataset: DatasetSummary }) {
  return (
    <section aria-labelledby="preview-title" data-testid="dataset-preview">
      <h4 id="preview-title">Preview</h4>
      <p className="legend small">
        <span className="tok trained">trained</span> tokens count in the loss; <span className="tok masked">masked</span> ones
        (prompts, template markup) are context only. Token boundaries are outlined.
      </p>
      {dataset.samples.map((s, i) => (
        <pre key={i} className="sample" aria-label={`Sample ${i + 1}`}>
          {s.tokens.map((t, j) => (
            <span key={j} className={`tok ${t.trained ? 'trained' : 'masked'}`}>
              {t.text}
            </span>
          ))}
        </pre>
      ))}
    </section>
  );
}
