// Compare: saved runs of one base model side by side — loss curves overlaid (one colour per run; train solid, eval
// dashed with dots), a table with the base model as its first row, and one prompt answered by the base model and by
// each adapter. "Compare ranks" queues r = 4, 8, 16, 64 with the Train screen's config (α = 2r unless held fixed);
// "Compare methods" queues the article's methods (full FT, LoRA r8/r64, QLoRA, DoRA, IA³) that fit the loaded model;
// both show their queue as it trains.
import { describeMethod } from '../../train/methods/registry.ts';
import { useEffect, useId, useMemo, useState, type ReactNode } from 'react';
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import {
  baseEvalBlocker,
  baseEvalKey,
  chosenRuns,
  compareRows,
  methodSweepConfigs,
  overlayRows,
  sameBase,
  SWEEP_RANKS,
  type CompareRow,
  type RankSweep,
} from '../../store/slices/compare.ts';
import type { Generation } from '../../store/slices/generations.ts';
import { useStudio } from '../../store/studio.ts';
import type { RunRecord } from '../../store/runs-db.ts';
import { axisTicks } from '../components/axis-ticks.ts';
import { formatDuration } from '../../store/progress-meter.ts';
import { formatBytes } from '../format.ts';
import { HeldOutAnswers } from './HeldOutAnswers.tsx';
import { GenerationCard } from './PlaygroundScreen.tsx';

// Mid-tone colours that read on the light and the dark background alike, distinct in hue.
export const RUN_COLORS = ['#5b4fd6', '#e07a1f', '#1f9d6b', '#c0398a', '#2b8cc4', '#a08a00', '#d1453b', '#7a7f8c'];
const BASE_COLOR = '#7a7f8c';
const colorOf = (i: number) => RUN_COLORS[i % RUN_COLORS.length];

export function CompareScreen() {
  const runs = useStudio((s) => s.runs);
  const refreshRuns = useStudio((s) => s.refreshRuns);
  const compareIds = useStudio((s) => s.compareIds);
  const error = useStudio((s) => s.compareError);
  const chosen = useMemo(() => chosenRuns({ runs, compareIds }), [runs, compareIds]);

  useEffect(() => {
    void refreshRuns();
  }, [refreshRuns]);

  return (
    <section aria-labelledby="compare-title" data-testid="screen-compare" className="screen">
      <h2 id="compare-title">Compare</h2>
      <p className="muted">Runs of one base model side by side: curves, final numbers and answers to the same prompt.</p>
      <RankSweepPanel />
      <MethodSweepPanel />
      <RunPicker runs={runs} chosen={chosen} />
      {error && <p className="error" role="alert" data-testid="compare-error">{error}</p>}
      {chosen.length > 0 && (
        <>
          <OverlayChart runs={chosen} />
          <CompareTable runs={chosen} />
          <CompareGenerations runs={chosen} />
          <HeldOutAnswers
            className="card"
            runs={chosen.filter((r) => r.adapter).map((r) => ({ id: r.id, name: r.name, modelName: r.model.name }))}
            title="Held-out prompts, base vs each adapter"
          />
        </>
      )}
    </section>
  );
}

function RunPicker({ runs, chosen }: { runs: RunRecord[]; chosen: RunRecord[] }) {
  const toggle = useStudio((s) => s.toggleCompareRun);
  const first = chosen[0];
  if (runs.length === 0) return <p className="muted">No saved runs yet: train one on the Train screen, or compare ranks above.</p>;
  return (
    <fieldset className="card run-picker" data-testid="compare-picker">
      <legend>Runs to compare</legend>
      {runs.map((r) => {
        const isChosen = chosen.some((c) => c.id === r.id);
        const otherBase = !!first && !isChosen && !sameBase(first, r);
        return (
          <div className="row" key={r.id}>
            <input id={`cmp-${r.id}`} type="checkbox" checked={isChosen} disabled={otherBase} onChange={() => toggle(r.id)} />
            <label htmlFor={`cmp-${r.id}`}>
              {r.name}{' '}
              <span className="muted small">
                {describeMethod(r.config)} · {r.status}
                {otherBase && ` · another base model (${r.model.name}${r.model.quant === 'nf4' ? ', NF4' : ''})`}
              </span>
            </label>
          </div>
        );
      })}
    </fieldset>
  );
}

function RankSweepPanel() {
  const sweep = useStudio((s) => s.sweep);
  const alphaMode = useStudio((s) => s.sweepAlphaMode);
  const setAlphaMode = useStudio((s) => s.setSweepAlphaMode);
  const start = useStudio((s) => s.startRankSweep);
  const cancel = useStudio((s) => s.cancelRankSweep);
  const config = useStudio((s) => s.trainConfig);
  const model = useStudio((s) => s.model);
  const dataset = useStudio((s) => s.dataset);
  const [ranksText, setRanksText] = useState(SWEEP_RANKS.join(', '));
  const [ranksError, setRanksError] = useState('');
  const ids = { ranks: useId(), scaled: useId(), fixed: useId() };
  const running = sweep?.status === 'running';

  const begin = () => {
    const ranks = ranksText.split(/[\s,]+/).filter(Boolean).map(Number);
    if (ranks.length === 0 || ranks.some((r) => !Number.isInteger(r) || r < 1)) {
      setRanksError(`ranks must be whole numbers ≥ 1 separated by commas, got "${ranksText}"`);
      return;
    }
    setRanksError('');
    start(ranks);
  };

  return (
    <section className="card" aria-labelledby="sweep-title" data-testid="rank-sweep">
      <h3 id="sweep-title">Compare ranks</h3>
      <p className="small muted">
        Trains one run per rank, one after another, with the Train screen's config
        ({dataset ? dataset.fileName : 'no dataset loaded'}, seed {config.seed}, {config.maxSteps ? `${config.maxSteps} steps` : `${config.epochs} epoch(s)`})
        on {model ? model.name : 'no model loaded'}.
      </p>
      <div className="row">
        <label htmlFor={ids.ranks}>Ranks</label>
        <input id={ids.ranks} value={ranksText} onChange={(e) => setRanksText(e.target.value)} disabled={running} size={16} />
        <input id={ids.scaled} type="radio" name="alpha-mode" checked={alphaMode === 'scaled'} onChange={() => setAlphaMode('scaled')} disabled={running} />
        <label htmlFor={ids.scaled}>α = 2r (compares rank, not scale)</label>
        <input id={ids.fixed} type="radio" name="alpha-mode" checked={alphaMode === 'fixed'} onChange={() => setAlphaMode('fixed')} disabled={running} />
        <label htmlFor={ids.fixed}>α fixed at {config.alpha}</label>
      </div>
      <div className="row">
        <button type="button" className="primary" onClick={begin} disabled={running || !model || !dataset}>Compare ranks</button>
        {running && <button type="button" onClick={cancel}>Cancel the sweep</button>}
      </div>
      {ranksError && <p className="error" role="alert">{ranksError}</p>}
      {sweep?.kind === 'ranks' && <SweepProgress sweep={sweep} />}
    </section>
  );
}

/** The article's comparison: every method row that fits the loaded model, one run each, with the Train screen's data,
 *  seed, steps and eval split (src/train/method-comparison.ts says each row's settings and learning rate). */
function MethodSweepPanel() {
  const sweep = useStudio((s) => s.sweep);
  const start = useStudio((s) => s.startMethodSweep);
  const cancel = useStudio((s) => s.cancelRankSweep);
  const config = useStudio((s) => s.trainConfig);
  const model = useStudio((s) => s.model);
  const quant = useStudio((s) => s.modelQuant);
  const dataset = useStudio((s) => s.dataset);
  const plan = useMemo(() => methodSweepConfigs(config, quant), [config, quant]);
  const running = sweep?.status === 'running';
  return (
    <section className="card" aria-labelledby="methods-sweep-title" data-testid="method-sweep">
      <h3 id="methods-sweep-title">Compare methods</h3>
      <p className="small muted">
        The article's comparison: one run per method on {model ? model.name : 'no model loaded'} with the Train screen's
        data ({dataset ? dataset.fileName : 'no dataset loaded'}), seed {config.seed}, {config.maxSteps ? `${config.maxSteps} steps` : `${config.epochs} epoch(s)`} and
        eval split; LoRA-family rows at lr {config.lr.toExponential(1)}, IA³ at ten times it, full fine-tuning at a tenth.
      </p>
      <p className="small" data-testid="method-sweep-plan">
        Runs: {plan.items.map((it) => it.label).join(', ') || 'none'}.
        {plan.skipped.length > 0 && <> Not on this model: {plan.skipped.map((k) => `${k.label} (${k.reason})`).join('; ')}.</>}
      </p>
      <div className="row">
        <button type="button" className="primary" onClick={start} disabled={running || !model || !dataset || plan.items.length === 0}>Compare methods</button>
        {running && sweep?.kind === 'methods' && <button type="button" onClick={cancel}>Cancel the comparison</button>}
      </div>
      {sweep?.kind === 'methods' && <SweepProgress sweep={sweep} />}
    </section>
  );
}

function SweepProgress({ sweep }: { sweep: RankSweep }) {
  const done = sweep.items.filter((it) => it.status === 'finished' || it.status === 'stopped').length;
  return (
    <div data-testid="sweep-progress" data-status={sweep.status}>
      <p className="small" role="status">
        {sweep.status === 'running' ? `Run ${Math.min(done + 1, sweep.items.length)} of ${sweep.items.length}` : sweep.message}
      </p>
      <ol className="sweep-items">
        {sweep.items.map((it) => (
          <li key={it.runId} data-testid="sweep-item" data-status={it.status}>
            <span>{it.label}</span>
            <progress max={Math.max(1, it.totalSteps)} value={it.status === 'finished' ? Math.max(1, it.totalSteps) : it.step} aria-label={`${it.label} progress`} />
            <span className="muted small">
              {it.status}
              {it.totalSteps > 0 && ` · step ${it.step} of ${it.totalSteps}`}
              {it.message && ` · ${it.message}`}
            </span>
          </li>
        ))}
      </ol>
    </div>
  );
}

function OverlayChart({ runs }: { runs: RunRecord[] }) {
  const rows = useMemo(() => overlayRows(runs), [runs]);
  const axis = useMemo(() => axisTicks(rows.flatMap((r) => Object.entries(r).filter(([k]) => k !== 'step').map(([, v]) => v))), [rows]);
  const hasEval = rows.some((r) => Object.keys(r).some((k) => k.startsWith('e')));
  return (
    <figure className="card chart" data-testid="compare-chart" data-runs={runs.length}>
      <figcaption>Loss by step: train (solid){hasEval ? ', eval (dashed, dots)' : ''}</figcaption>
      <p className="sr-only">
        {runs.map((r) => `${r.name}: final train loss ${r.curves.at(-1)?.loss.toPrecision(4) ?? '—'}`).join('; ')}
      </p>
      <div style={{ width: '100%', height: 300 }} aria-hidden="true">
        <ResponsiveContainer width="100%" height="100%">
          <LineChart data={rows} margin={{ top: 8, right: 12, bottom: 4, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} />
            <YAxis width={56} domain={axis ? axis.domain : ['auto', 'auto']} ticks={axis?.ticks} tickFormatter={axis?.format} />
            <Tooltip formatter={(v) => (typeof v === 'number' ? v.toPrecision(5) : String(v))} labelFormatter={(s) => `step ${s}`} />
            <Legend />
            {runs.map((r, i) => (
              <Line
                key={`t${i}`}
                className="compare-train"
                dataKey={`t${i}`}
                name={`${r.name} (train)`}
                stroke={colorOf(i)}
                strokeWidth={2}
                dot={false}
                connectNulls
                isAnimationActive={false}
              />
            ))}
            {hasEval && runs.map((r, i) => (
              <Line
                key={`e${i}`}
                className="compare-eval"
                dataKey={`e${i}`}
                name={`${r.name} (eval)`}
                stroke={colorOf(i)}
                strokeDasharray="5 4"
                strokeWidth={2}
                dot={{ r: 3, fill: colorOf(i) }}
                connectNulls
                isAnimationActive={false}
              />
            ))}
          </LineChart>
        </ResponsiveContainer>
      </div>
    </figure>
  );
}

const fmtLoss = (v: number | null) => (v === null ? '—' : v.toFixed(4));
const fmtInt = (v: number | null) => (v === null ? '—' : v.toLocaleString('en'));

function BaseEvalCell({ first }: { first: RunRecord }) {
  const model = useStudio((s) => s.model);
  const modelQuant = useStudio((s) => s.modelQuant);
  const dataset = useStudio((s) => s.dataset);
  const datasetId = useStudio((s) => s.datasetId);
  const result = useStudio((s) => s.baseEvals[baseEvalKey(first)]);
  const evaluate = useStudio((s) => s.evaluateBase);
  const blocker = baseEvalBlocker({ model, modelQuant, dataset, datasetId }, first);
  // Measured once per eval set, as soon as the right model and dataset are loaded.
  useEffect(() => {
    if (!blocker && !result) evaluate();
  }, [blocker, result, evaluate]);
  if (result?.status === 'done') return <span title={`${result.tokens} tokens in ${result.rows} rows`}>{fmtLoss(result.loss)}</span>;
  if (result?.status === 'running') return <span className="muted">measuring…</span>;
  if (result?.status === 'error') return <span className="error" title={result.message}>failed: {result.message}</span>;
  return <span className="muted small">— ({blocker})</span>;
}

function CompareTable({ runs }: { runs: RunRecord[] }) {
  const baseEvals = useStudio((s) => s.baseEvals);
  const downloadCsv = useStudio((s) => s.downloadCompareTable);
  const baseLoss = baseEvals[baseEvalKey(runs[0])]?.loss ?? null;
  const rows = compareRows(runs, baseLoss);
  const mixedEval = runs.some((r) => baseEvalKey(r) !== baseEvalKey(runs[0]));
  return (
    <section className="card" aria-labelledby="compare-table-title">
      <h3 id="compare-table-title">Final numbers</h3>
      <div className="table-scroll">
        <table className="compare-table" data-testid="compare-table">
          <thead>
            <tr>
              <th scope="col">Run</th>
              <th scope="col">Method</th>
              <th scope="col">Rank</th>
              <th scope="col">α</th>
              <th scope="col">Trainable parameters</th>
              <th scope="col">Adapter size</th>
              <th scope="col">Final train loss</th>
              <th scope="col">Final eval loss</th>
              <th scope="col">Steps</th>
              <th scope="col">Time</th>
              <th scope="col">Tokens/s</th>
              <th scope="col">Peak GPU memory</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row, i) => (
              <TableRow key={row.key} row={row} color={i === 0 ? BASE_COLOR : colorOf(i - 1)} baseCell={i === 0 ? <BaseEvalCell first={runs[0]} /> : null} />
            ))}
          </tbody>
        </table>
      </div>
      <button type="button" data-testid="compare-csv" onClick={downloadCsv}>Download the table (.csv)</button>
      {mixedEval && <p className="small warn">These runs held out different eval rows (split, seed or max length differ): their eval losses are not directly comparable; the base model's is on the first run's.</p>}
    </section>
  );
}

function TableRow({ row, color, baseCell }: { row: CompareRow; color: string; baseCell: ReactNode }) {
  return (
    <tr data-testid="compare-row" data-key={row.key}>
      <th scope="row">
        <span className="swatch" style={{ background: color }} aria-hidden="true" /> {row.label}
      </th>
      <td>{row.method || '—'}</td>
      <td>{row.rank ?? '—'}</td>
      <td>{row.alpha ?? '—'}</td>
      <td>{fmtInt(row.trainableParams)}</td>
      <td>{row.adapterBytes === null ? '—' : formatBytes(row.adapterBytes)}</td>
      <td>{fmtLoss(row.trainLoss)}</td>
      <td>{baseCell ?? fmtLoss(row.evalLoss)}</td>
      <td>{fmtInt(row.steps)}</td>
      <td>{row.seconds === null ? '—' : formatDuration(row.seconds)}</td>
      <td>{row.tokensPerSecond === null ? '—' : row.tokensPerSecond.toFixed(0)}</td>
      <td>{row.peakBytes === null ? '—' : formatBytes(row.peakBytes)}</td>
    </tr>
  );
}

function CompareGenerations({ runs }: { runs: RunRecord[] }) {
  const prompt = useStudio((s) => s.comparePrompt);
  const setPrompt = useStudio((s) => s.setComparePrompt);
  const generate = useStudio((s) => s.generateCompare);
  const byKey = useStudio((s) => s.compareGenerations);
  const generations = useStudio((s) => s.generations);
  const id = useId();
  const shown: { key: string; g: Generation; color: string }[] = [];
  if (byKey.base && generations[byKey.base]) shown.push({ key: 'base', g: generations[byKey.base], color: BASE_COLOR });
  runs.forEach((r, i) => {
    const g = byKey[r.id] && generations[byKey[r.id]];
    if (g) shown.push({ key: r.id, g, color: colorOf(i) });
  });
  const busy = shown.some((x) => x.g.status === 'running');
  return (
    <section className="card" aria-labelledby="compare-gen-title">
      <h3 id="compare-gen-title">Same prompt, each model</h3>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          generate();
        }}
      >
        <label htmlFor={id}>Prompt</label>
        <input id={id} value={prompt} onChange={(e) => setPrompt(e.target.value)} size={48} placeholder="Ask something…" />
        <button type="submit" className="primary" disabled={busy}>Generate with each</button>
        <span className="muted small">greedy, 32 new tokens</span>
      </form>
      {shown.length > 0 && (
        <div className="gen-columns" data-testid="compare-generations">
          {shown.map((x) => <GenerationCard key={x.key} generation={x.g} testId="compare-generation" color={x.color} />)}
        </div>
      )}
    </section>
  );
}
