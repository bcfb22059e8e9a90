import { afterEach, describe, expect, it } from 'vitest';
import { create } from 'zustand';
import { DEFAULT_CONFIG, type TrainConfig } from '../../train/config.ts';
import type { EngineRequest, ModelSummary, StepMetrics } from '../../train/protocol.ts';
import { linkEngine } from '../engine-link.ts';
import type { RunRecord } from '../runs-db.ts';
import {
  baseEvalBlocker,
  baseEvalKey,
  compareRows,
  createCompareSlice,
  compareCsv,
  methodSweepConfigs,
  overlayRows,
  rankSweepConfigs,
  sameBase,
  type CompareSlice,
} from './compare.ts';

function step(n: number, loss: number, evalLoss?: number): StepMetrics {
  return { step: n, epoch: 0, loss, lr: 1e-3, gradNorm: 1, tokensPerSecond: 100 + n, ms: 500, memBytes: 1000, peakBytes: 1000 + n, evalLoss };
}

function run(id: string, o: Partial<RunRecord> = {}, config: Partial<TrainConfig> = {}): RunRecord {
  return {
    id,
    name: `run ${id}`,
    created: 0,
    updated: 0,
    model: { name: 'demo-llama', modelType: 'llama', quant: 'none', dtype: 'f32', parameters: 1000 },
    dataset: { fileName: 'chat.jsonl', rows: 100, format: 'messages', evalRows: 10 },
    config: { ...DEFAULT_CONFIG, evalSplit: 0.1, ...config },
    status: 'finished',
    message: '',
    totalSteps: 3,
    trainableParams: 4096,
    curves: [step(1, 3), step(2, 2.5), step(3, 2, 2.2)],
    samples: [],
    final: null,
    checkpoint: null,
    adapter: { key: `adapter:${id}:x`, step: 3, bytes: 17000 },
    ...o,
  };
}

describe('rankSweepConfigs', () => {
  const base: TrainConfig = { ...DEFAULT_CONFIG, rank: 8, alpha: 16, seed: 7, lr: 3e-4, targets: ['q_proj', 'v_proj'], maxSteps: 5 };

  it('scales alpha with rank (α = 2r) and keeps everything else, seed and data settings included', () => {
    const configs = rankSweepConfigs(base);
    expect(configs.map((c) => [c.rank, c.alpha])).toEqual([[4, 8], [8, 16], [16, 32], [64, 128]]);
    for (const c of configs) {
      expect({ ...c, rank: base.rank, alpha: base.alpha }).toEqual(base);
      expect(c.alpha / c.rank).toBe(2);
    }
    // Copies: editing one config's targets cannot change another's (or the Train screen's).
    configs[0].targets.push('o_proj');
    expect(configs[1].targets).toEqual(['q_proj', 'v_proj']);
    expect(base.targets).toEqual(['q_proj', 'v_proj']);
  });

  it('holds alpha fixed when asked', () => {
    expect(rankSweepConfigs(base, [2, 4], 'fixed').map((c) => [c.rank, c.alpha])).toEqual([[2, 16], [4, 16]]);
  });

  it('refuses repeated ranks, no ranks, and ranks the config validation rejects', () => {
    expect(() => rankSweepConfigs(base, [4, 4])).toThrow(/ranks must differ/);
    expect(() => rankSweepConfigs(base, [])).toThrow(/at least one rank/);
    expect(() => rankSweepConfigs(base, [0])).toThrow(/rank 0: rank = 0/);
  });

  it('refuses a method without a rank (IA³, full fine-tuning)', () => {
    expect(() => rankSweepConfigs({ ...base, method: 'full', targets: [] })).toThrow(/Full fine-tuning has no rank to sweep: pick LoRA or DoRA/);
    expect(() => rankSweepConfigs({ ...base, method: 'ia3' })).toThrow(/IA³ has no rank/);
  });
});

describe('compare table', () => {
  it('puts the base model first, then each run with its final numbers', () => {
    const a = run('a', {
      final: { steps: 3, trainLoss: 1.9, evalLoss: 2.1, bestStep: null, seconds: 12.5, tokensPerSecond: 321, peakBytes: 5e6, exported: 'current' },
    }, { rank: 4, alpha: 8 });
    const rows = compareRows([a], 3.25);
    expect(rows.map((r) => r.key)).toEqual(['base', 'a']);
    expect(rows[0]).toMatchObject({ label: 'demo-llama (base model)', rank: null, trainableParams: 0, adapterBytes: null, evalLoss: 3.25, trainLoss: null });
    expect(rows[1]).toMatchObject({
      rank: 4, alpha: 8, trainableParams: 4096, adapterBytes: 17000, trainLoss: 1.9, evalLoss: 2.1, seconds: 12.5, tokensPerSecond: 321, peakBytes: 5e6, steps: 3,
    });
  });

  it('reads an interrupted run (no final numbers) from its curve', () => {
    const [, row] = compareRows([run('b', { adapter: null })], null);
    expect(row).toMatchObject({ trainLoss: 2, evalLoss: 2.2, seconds: 1.5, tokensPerSecond: 103, peakBytes: 1003, steps: 3, adapterBytes: null });
    expect(compareRows([], 1)).toEqual([]);
  });

  it('shows no rank or alpha for a run of a method without one (full fine-tuning)', () => {
    const [, row] = compareRows([run('f', {}, { method: 'full', targets: [] })], null);
    expect(row).toMatchObject({ rank: null, alpha: null, trainableParams: 4096 });
  });

  it('is a CSV with the method of each run, quoted where needed, empty where unknown', () => {
    const rows = compareRows([run('a', { name: 'pirate, r4' }, { rank: 4, alpha: 8 }), run('f', {}, { method: 'full', targets: [] })], null);
    const lines = compareCsv(rows).trim().split('\n');
    expect(lines[0]).toBe('run,method,rank,alpha,trainable params,adapter bytes,final train loss,final eval loss,steps,seconds,tokens per second,peak GPU bytes');
    expect(lines[1]).toBe('demo-llama (base model),,,,0,,,,,,,');
    expect(lines[2]).toBe('"pirate, r4","r = 4, α = 8",4,8,4096,17000,2,2.2,3,1.5,103,1003');
    expect(lines[3].split(',').slice(1, 4)).toEqual(['Full fine-tuning', '', '']);
  });

  it('overlays curves by step, one train and one eval series per run', () => {
    const a = run('a');
    const b = run('b', { curves: [step(1, 4), step(2, 3.5, 3.6)] });
    const rows = overlayRows([a, b]);
    expect(rows).toEqual([
      { step: 1, t0: 3, t1: 4 },
      { step: 2, t0: 2.5, t1: 3.5, e1: 3.6 },
      { step: 3, t0: 2, e0: 2.2 },
    ]);
  });

  it('thins long curves but keeps the last and every evaluated step', () => {
    const curves = Array.from({ length: 1000 }, (_, i) => step(i + 1, 5 - i / 1000, (i + 1) % 250 === 0 ? 4 : undefined));
    const rows = overlayRows([run('a', { curves })], 100);
    expect(rows.length).toBeLessThanOrEqual(104);
    expect(rows.at(-1)!.step).toBe(1000);
    expect(rows.filter((r) => r.e0 !== undefined).map((r) => r.step)).toEqual([250, 500, 750, 1000]);
  });

  it('knows which runs share a base and what the base eval depends on', () => {
    expect(sameBase(run('a'), run('b'))).toBe(true);
    expect(sameBase(run('a'), run('b', { model: { ...run('b').model, quant: 'nf4' } }))).toBe(false);
    // Rank and alpha do not change the held-out rows; seed and split do.
    expect(baseEvalKey(run('a', {}, { rank: 4 }))).toBe(baseEvalKey(run('b', {}, { rank: 64, alpha: 128 })));
    expect(baseEvalKey(run('a'))).not.toBe(baseEvalKey(run('b', {}, { seed: 1 })));
  });

  it('says what to load before the base model can be evaluated', () => {
    const model = { name: 'demo-llama' } as ModelSummary;
    const dataset = { fileName: 'chat.jsonl', rows: 100 } as never;
    const ready = { model, modelQuant: 'none' as const, dataset, datasetId: 'dataset-1' };
    expect(baseEvalBlocker(ready, run('a'))).toBe('');
    expect(baseEvalBlocker({ ...ready, model: null }, run('a'))).toMatch(/load demo-llama on the Models screen/);
    expect(baseEvalBlocker({ ...ready, dataset: { fileName: 'other.jsonl', rows: 100 } as never }, run('a'))).toMatch(/load chat.jsonl on the Data screen/);
    expect(baseEvalBlocker(ready, run('a', {}, { evalSplit: 0 }))).toMatch(/no eval rows/);
  });
});

describe('compare slice', () => {
  let sent: EngineRequest[] = [];
  afterEach(() => linkEngine(null));

  function store(runs: RunRecord[] = []) {
    sent = [];
    linkEngine({ send: (r) => sent.push(r) });
    return create<CompareSlice & Record<string, unknown>>()((set, get, api) => ({
      runs,
      refreshRuns: async () => {},
      trainConfig: { ...DEFAULT_CONFIG, maxSteps: 3, seed: 11 },
      liveRun: null,
      model: { name: 'demo-llama', hasChatTemplate: true } as ModelSummary,
      modelQuant: 'none',
      dataset: { fileName: 'chat.jsonl', rows: 100 },
      datasetId: 'dataset-1',
      startGeneration: ({ adapterRunId }: { adapterRunId: string | null }) => `gen-${adapterRunId ?? 'base'}`,
      ...createCompareSlice(set as never, get as never, api as never),
    }));
  }

  it('runs the rank sweep one run at a time, each after the previous one ended', () => {
    const s = store();
    s.getState().startRankSweep([2, 4]);
    const starts = () => sent.filter((r) => r.type === 'start-training') as Extract<EngineRequest, { type: 'start-training' }>[];
    expect(starts()).toHaveLength(1);
    const first = starts()[0];
    expect([first.config.rank, first.config.alpha, first.config.seed, first.datasetId]).toEqual([2, 4, 11, 'dataset-1']);
    const apply = s.getState().onCompareEvent;
    apply({ type: 'run-started', id: first.id, runId: first.runId, name: 'x', totalSteps: 3, trainable: '', trainableParams: 1, resumedFrom: null, trainRows: 9, evalRows: 1, config: first.config });
    apply({ type: 'metrics', runId: first.runId, steps: [step(2, 1)], totalSteps: 3 });
    expect(s.getState().sweep!.items[0]).toMatchObject({ status: 'running', step: 2, totalSteps: 3 });
    expect(starts()).toHaveLength(1); // still waiting
    apply({ type: 'run-state', runId: first.runId, state: 'finished' });
    expect(starts()).toHaveLength(2);
    const second = starts()[1];
    expect([second.config.rank, second.config.alpha]).toEqual([4, 8]);
    expect(second.runId).not.toBe(first.runId);
    apply({ type: 'run-state', runId: second.runId, state: 'finished' });
    expect(s.getState().sweep).toMatchObject({ status: 'done', message: '2 of 2 runs trained' });
  });

  it('ends the sweep when a run cannot start, and cancels by stopping the current run', () => {
    const s = store();
    s.getState().startRankSweep([2, 4, 8]);
    const first = sent[0] as Extract<EngineRequest, { type: 'start-training' }>;
    s.getState().onCompareEvent({ type: 'error', id: first.id, message: 'no dataset' });
    expect(s.getState().sweep!.status).toBe('failed');
    expect(s.getState().sweep!.items.map((it) => it.status)).toEqual(['failed', 'cancelled', 'cancelled']);

    s.getState().startRankSweep([2, 4]);
    const again = sent.at(-1) as Extract<EngineRequest, { type: 'start-training' }>;
    s.getState().cancelRankSweep();
    expect(sent.at(-1)).toEqual({ type: 'stop', runId: again.runId });
    s.getState().onCompareEvent({ type: 'run-state', runId: again.runId, state: 'stopped' });
    expect(sent.filter((r) => r.type === 'start-training')).toHaveLength(2); // nothing more started
    expect(s.getState().sweep!.items.map((it) => it.status)).toEqual(['stopped', 'cancelled']);
  });

  it('compares the methods: every row that fits queued in turn, a row that fails leaves the others to run', () => {
    const s = store();
    s.getState().startMethodSweep();
    const starts = () => sent.filter((r) => r.type === 'start-training') as Extract<EngineRequest, { type: 'start-training' }>[];
    const sweep = s.getState().sweep!;
    expect(sweep.kind).toBe('methods');
    // Full precision: QLoRA needs an NF4 load, so it is named as skipped, not queued.
    expect(sweep.items.map((it) => it.label)).toEqual(['Full FT', 'LoRA r8', 'LoRA r64', 'DoRA r8', 'AdaLoRA r12→8', 'IA³', 'Prompt tuning', 'Prefix tuning', 'Houlsby adapters', 'Pfeiffer adapters']);
    expect(sweep.skipped.map((k) => k.label)).toEqual(['QLoRA r8']);
    expect(sweep.skipped[0].reason).toMatch(/NF4/);
    expect(starts()).toHaveLength(1);
    expect(starts()[0]).toMatchObject({ name: 'methods · Full FT', config: { method: 'full', targets: [], seed: 11, lr: DEFAULT_CONFIG.lr / 10 } });
    const apply = s.getState().onCompareEvent;
    // Full fine-tuning does not fit this GPU: the engine refuses it, the comparison goes on.
    apply({ type: 'error', id: starts()[0].id, message: 'full fine-tuning keeps this model … above this GPU\'s largest binding' });
    expect(starts()).toHaveLength(2);
    expect(starts()[1].config).toMatchObject({ method: 'lora', rank: 8, alpha: 16, lr: DEFAULT_CONFIG.lr });
    for (let i = 1; i < 10; i++) apply({ type: 'run-state', runId: starts()[i].runId, state: i === 2 ? 'failed' : 'finished', message: i === 2 ? 'NaN' : undefined });
    expect(starts().map((r) => r.config.method)).toEqual(['full', 'lora', 'lora', 'dora', 'adalora', 'ia3', 'prompt-tuning', 'prefix-tuning', 'houlsby', 'pfeiffer']);
    expect(starts()[4].config).toMatchObject({ method: 'adalora', initR: 12, targetR: 8, alpha: 16 });
    expect(starts()[5].config.lr).toBeCloseTo(DEFAULT_CONFIG.lr * 10, 12);
    expect(starts()[7].config.lr).toBeCloseTo(DEFAULT_CONFIG.lr * 10, 12);
    expect(s.getState().sweep).toMatchObject({ status: 'done', message: '8 of 10 runs trained' });
    expect(s.getState().sweep!.items.map((it) => it.status)).toEqual(['failed', 'finished', 'failed', 'finished', 'finished', 'finished', 'finished', 'finished', 'finished', 'finished']);
  });

  it('over an NF4 model the method rows are QLoRA-style and full fine-tuning is skipped', () => {
    const { items, skipped } = methodSweepConfigs({ ...DEFAULT_CONFIG, targets: ['all-linear'] }, 'nf4');
    expect(items.map((it) => [it.label, it.config.quant])).toEqual([
      ['LoRA r8 · NF4', 'nf4'], ['LoRA r64 · NF4', 'nf4'], ['DoRA r8 · NF4', 'nf4'], ['AdaLoRA r12→8 · NF4', 'nf4'], ['IA³ · NF4', 'nf4'],
      ['Prompt tuning · NF4', 'nf4'], ['Prefix tuning · NF4', 'nf4'], ['Houlsby adapters · NF4', 'nf4'], ['Pfeiffer adapters · NF4', 'nf4'],
    ]);
    expect(items[0].config.targets).toEqual(['all-linear']);
    expect(items[3].config.targets).toEqual(['all-linear']); // AdaLoRA keeps the LoRA family's targets
    expect(items[4].config.targets).toEqual([]); // IA³: PEFT's own targets
    expect(skipped.map((k) => k.label)).toEqual(['Full FT']);
  });

  it('measures the base model once per eval set, and generates for the base and each adapter', () => {
    const s = store([run('a'), run('b', { adapter: null }), run('c', {}, { rank: 64 })]);
    s.getState().setCompareRuns(['a', 'b', 'c']);
    s.getState().evaluateBase();
    s.getState().evaluateBase();
    const evals = sent.filter((r) => r.type === 'evaluate');
    expect(evals).toHaveLength(1);
    expect(evals[0]).toMatchObject({ evalSplit: 0.1, seed: DEFAULT_CONFIG.seed, maxLength: DEFAULT_CONFIG.maxLength, datasetId: 'dataset-1' });
    expect(evals[0]).not.toHaveProperty('adapterRunId');
    s.getState().onCompareEvent({ type: 'evaluated', id: (evals[0] as { id: string }).id, loss: 3.5, tokens: 40, rows: 10 });
    expect(Object.values(s.getState().baseEvals)[0]).toMatchObject({ status: 'done', loss: 3.5 });

    s.getState().setComparePrompt('Hello');
    s.getState().generateCompare();
    // b has no saved adapter: no column for it.
    expect(s.getState().compareGenerations).toEqual({ base: 'gen-base', a: 'gen-a', c: 'gen-c' });
  });

  it("answers a sample's held-out prompts with the base model and each adapter, greedy, chat or text as the sample is", () => {
    const calls: { prompt: string; adapterRunId: string | null; settings: { chat: boolean; temperature: number; maxNewTokens: number } }[] = [];
    const s = store();
    s.setState({
      startGeneration: (o: (typeof calls)[number]) => {
        calls.push(o);
        return `gen-${calls.length}`;
      },
    } as never);
    const runs = [{ id: 'a', name: 'run a', modelName: 'demo-llama' }];
    s.getState().answerHeldOut(runs);
    expect(s.getState().heldOutError).toMatch(/Load a sample dataset/);
    expect(calls).toHaveLength(0);

    s.setState({ datasetSource: { url: 'x', name: 'text-robot-pip.jsonl', heldOut: { prompts: ['Pip was', 'Pip had'], chat: false } } } as never);
    s.getState().answerHeldOut([{ ...runs[0], modelName: 'other-model' }]);
    expect(s.getState().heldOutError).toMatch(/Load other-model/);
    s.getState().answerHeldOut(runs);
    expect(s.getState().heldOutError).toBe('');
    expect(calls.map((c) => [c.prompt, c.adapterRunId])).toEqual([['Pip was', null], ['Pip was', 'a'], ['Pip had', null], ['Pip had', 'a']]);
    expect(calls.every((c) => c.settings.chat === false && c.settings.temperature === 0 && c.settings.maxNewTokens === 48)).toBe(true);
    expect(s.getState().heldOutAnswers).toEqual([{ prompt: 'Pip was', ids: { base: 'gen-1', a: 'gen-2' } }, { prompt: 'Pip had', ids: { base: 'gen-3', a: 'gen-4' } }]);
    expect(s.getState().heldOutRuns).toEqual([{ id: 'a', name: 'run a' }]);

    s.setState({ datasetSource: { url: 'y', name: 'chat-pirate.jsonl', heldOut: { prompts: ['What colour is the sea?'], chat: true } } } as never);
    s.getState().answerHeldOut(runs);
    expect(calls.slice(4).every((c) => c.settings.chat && c.settings.maxNewTokens === 32)).toBe(true);
  });
});
