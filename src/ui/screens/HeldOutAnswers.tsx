// Before/after on a sample dataset's held-out prompts (issue 16): each prompt no training row contains, answered
// greedily by the base model and by each run's adapter, side by side. On Compare (the chosen runs) and on the Run
// screen (the run just trained). The answers come from the engine worker's ordinary 'generate' requests.
import { Fragment } from 'react';
import { heldOutBlocker } from '../../store/slices/compare.ts';
import { heldOutOf } from '../../store/slices/dataset.ts';
import { useStudio } from '../../store/studio.ts';

export function HeldOutAnswers({ runs, title, className }: { runs: { id: string; name: string; modelName: string }[]; title: string; className?: string }) {
  const source = useStudio((s) => s.datasetSource);
  const model = useStudio((s) => s.model);
  const rows = useStudio((s) => s.heldOutAnswers);
  const columns = useStudio((s) => s.heldOutRuns);
  const error = useStudio((s) => s.heldOutError);
  const answer = useStudio((s) => s.answerHeldOut);
  const generations = useStudio((s) => s.generations);
  const heldOut = heldOutOf(source);
  if (!heldOut) return null;
  const blocker = heldOutBlocker({ model, datasetSource: source }, runs);
  // What is shown belongs to these runs (the same columns) and to this sample's prompts.
  const mine = rows.length > 0 && columns.map((c) => c.id).join() === runs.map((r) => r.id).join() && rows[0].prompt === heldOut.prompts[0];
  const busy = mine && rows.some((r) => Object.values(r.ids).some((id) => generations[id]?.status === 'running'));
  const cell = (id: string | undefined) => {
    const g = id ? generations[id] : undefined;
    if (!g) return <td />;
    if (g.status === 'error') return <td className="error small">{g.error}</td>;
    return <td aria-busy={g.status === 'running'}><pre className="sample">{g.text || (g.status === 'running' ? '…' : '')}</pre></td>;
  };
  return (
    <section className={className} aria-labelledby="held-out-title" data-testid="held-out-answers">
      <h4 id="held-out-title">{title}</h4>
      <p className="muted small">
        {source && !(source instanceof Blob) ? source.name : 'This sample'} keeps {heldOut.prompts.length} prompts that no training row contains:
        the base model and the adapter answer each ({heldOut.chat ? 'as a chat question' : 'continued as plain text'}, greedy).
      </p>
      <div className="row">
        <button type="button" className="primary" disabled={!!blocker || busy} onClick={() => answer(runs)} data-testid="held-out-answer">
          Answer the held-out prompts
        </button>
        {(blocker || error) && <span className="muted small">{blocker || error}</span>}
      </div>
      {mine && (
        <table className="held-out" data-testid="held-out-table">
          <thead>
            <tr>
              <th scope="col">Prompt</th>
              <th scope="col">Base model</th>
              {columns.map((c) => <th scope="col" key={c.id}>{c.name}</th>)}
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.prompt}>
                <th scope="row"><pre className="sample">{r.prompt}</pre></th>
                {cell(r.ids.base)}
                {columns.map((c) => <Fragment key={c.id}>{cell(r.ids[c.id])}</Fragment>)}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
