// Compare: saved runs of one base model side by side — overlaid loss curves, a table with the base model as its first
// row (its eval loss measured once by the worker on the same held-out rows), and one prompt answered by the base model
// and by each run's adapter. Plus the rank sweep: r = 4, 8, 16, 64 on the same data and seed, queued one after
// another through the worker's ordinary 'start-training' (each waits for the previous run to end).
//
// The pure parts (table rows, overlay rows, sweep configs, the base-eval key) are exported for tests.
import type { StateCreator } from 'zustand';
import { validateConfig, type TrainConfig } from '../../train/config.ts';
import { METHODS } from '../../train/methods/registry.ts';
import type { EngineEvent, StepMetrics } from '../../train/protocol.ts';
import { requestId, sendToEngine } from '../engine-link.ts';
import { newRunId, type RunRecord } from '../runs-db.ts';
import { heldOutOf, type DatasetSlice } from './dataset.ts';
import { DEFAULT_GENERATION, type GenerationsSlice } from './generations.ts';
import type { ModelsSlice } from './models.ts';
import type { RunsSlice } from './runs.ts';
import type { TrainSlice } from './train.ts';

// ---------------------------------------------------------------------------------------------------------------
// Pure parts

export const SWEEP_RANKS = [4, 8, 16, 64] as const;
/** Past any run's last step: the worker then samples only when the run ends. */
const SWEEP_SAMPLE_EVERY = 1e9;

/** 'scaled': α = 2r, so the sweep compares rank and not the update's scale (α/r stays 2); 'fixed': the config's α. */
export type AlphaMode = 'scaled' | 'fixed';

/** One config per rank: everything else (data, seed, schedule, targets…) as `base`. Throws on an invalid result. */
export function rankSweepConfigs(base: TrainConfig, ranks: readonly number[] = SWEEP_RANKS, alphaMode: AlphaMode = 'scaled'): TrainConfig[] {
  if (ranks.length === 0) throw new Error('a rank sweep needs at least one rank');
  const method = METHODS[base.method];
  if (method && !method.settings.includes('rank')) throw new Error(`a rank sweep needs a method with a rank (LoRA, DoRA): ${method.label} has none; choose LoRA or DoRA on the Train screen`);
  if (new Set(ranks).size !== ranks.length) throw new Error(`ranks must differ, got ${ranks.join(', ')}`);
  return ranks.map((rank) => {
    const config: TrainConfig = { ...base, targets: [...base.targets], rank, alpha: alphaMode === 'scaled' ? 2 * rank : base.alpha };
    const errors = validateConfig(config);
    if (errors.length) throw new Error(`rank ${rank}: ${errors.map((e) => e.message).join('; ')}`);
    return config;
  });
}

/** Runs trained on the same base: the same checkpoint (by the name it was loaded as) and the same weight format. */
export function sameBase(a: RunRecord, b: RunRecord): boolean {
  return a.model.name === b.model.name && a.model.quant === b.model.quant;
}

/** What the base model's eval loss depends on: compared once per distinct key. */
export function baseEvalKey(r: RunRecord): string {
  const c = r.config;
  return JSON.stringify([r.model.name, r.model.quant, r.dataset.fileName, r.dataset.rows, c.evalSplit, c.seed, c.maxLength, c.batchSize]);
}

export interface CompareRow {
  /** 'base' or the run id. */
  key: string;
  label: string;
  rank: number | null;
  alpha: number | null;
  trainableParams: number | null;
  adapterBytes: number | null;
  trainLoss: number | null;
  evalLoss: number | null;
  seconds: number | null;
  tokensPerSecond: number | null;
  peakBytes: number | null;
  steps: number | null;
}

function lastOf(curves: readonly StepMetrics[], pick: (m: StepMetrics) => number | undefined): number | null {
  for (let i = curves.length - 1; i >= 0; i--) {
    const v = pick(curves[i]);
    if (v !== undefined && Number.isFinite(v)) return v;
  }
  return null;
}

/** The run's final numbers; from its curve when it never wrote them (interrupted). */
export function runRow(r: RunRecord): CompareRow {
  const f = r.final;
  const peak = r.curves.reduce((p, m) => Math.max(p, m.peakBytes), 0);
  return {
    key: r.id,
    label: r.name,
    rank: r.config.rank,
    alpha: r.config.alpha,
    trainableParams: r.trainableParams,
    adapterBytes: r.adapter?.bytes ?? null,
    trainLoss: f?.trainLoss ?? lastOf(r.curves, (m) => m.loss),
    evalLoss: f?.evalLoss ?? lastOf(r.curves, (m) => m.evalLoss),
    seconds: f?.seconds ?? (r.curves.length ? r.curves.reduce((s, m) => s + m.ms, 0) / 1000 : null),
    tokensPerSecond: f?.tokensPerSecond ?? lastOf(r.curves, (m) => m.tokensPerSecond),
    peakBytes: f?.peakBytes ?? (peak > 0 ? peak : null),
    steps: f?.steps ?? r.curves.at(-1)?.step ?? null,
  };
}

/** The table: the base model first (no adapter, nothing trained; its eval loss when measured), then each run. */
export function compareRows(runs: readonly RunRecord[], baseEvalLoss: number | null): CompareRow[] {
  if (runs.length === 0) return [];
  const base: CompareRow = {
    key: 'base',
    label: `${runs[0].model.name} (base model)`,
    rank: null,
    alpha: null,
    trainableParams: 0,
    adapterBytes: null,
    trainLoss: null,
    evalLoss: baseEvalLoss,
    seconds: null,
    tokensPerSecond: null,
    peakBytes: null,
    steps: null,
  };
  return [base, ...runs.map(runRow)];
}

/** One chart row per step that any run logged: `t<i>` the train loss and `e<i>` the eval loss of runs[i]. At most
 *  `maxPoints` steps per run (an even stride, the last and every evaluated step kept). */
export function overlayRows(runs: readonly RunRecord[], maxPoints = 400): Record<string, number>[] {
  const byStep = new Map<number, Record<string, number>>();
  runs.forEach((r, i) => {
    const stride = Math.max(1, Math.ceil(r.curves.length / maxPoints));
    r.curves.forEach((m, k) => {
      const keep = k % stride === 0 || k === r.curves.length - 1 || m.evalLoss !== undefined;
      if (!keep) return;
      const row = byStep.get(m.step) ?? { step: m.step };
      if (Number.isFinite(m.loss)) row[`t${i}`] = m.loss;
      if (m.evalLoss !== undefined && Number.isFinite(m.evalLoss)) row[`e${i}`] = m.evalLoss;
      byStep.set(m.step, row);
    });
  });
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

// ---------------------------------------------------------------------------------------------------------------
// The slice

export type SweepItemStatus = 'queued' | 'starting' | 'running' | 'paused' | 'finished' | 'stopped' | 'failed' | 'cancelled';

export interface SweepItem {
  rank: number;
  alpha: number;
  /** The Train screen's config when the sweep began, with this rank and α. */
  config: TrainConfig;
  runId: string;
  /** The start-training request id (its error means the run never started). */
  request: string;
  status: SweepItemStatus;
  message: string;
  step: number;
  totalSteps: number;
}

export interface RankSweep {
  alphaMode: AlphaMode;
  items: SweepItem[];
  status: 'running' | 'done' | 'cancelled' | 'failed';
  message: string;
}

export interface BaseEval {
  status: 'running' | 'done' | 'error';
  request: string;
  loss: number | null;
  tokens: number;
  rows: number;
  message: string;
}

export interface CompareSlice {
  /** Run ids chosen for the comparison, in the order chosen. */
  compareIds: string[];
  /** By baseEvalKey. */
  baseEvals: Record<string, BaseEval>;
  comparePrompt: string;
  /** 'base' or run id → generation id, for the current prompt. */
  compareGenerations: Record<string, string>;
  sweep: RankSweep | null;
  sweepAlphaMode: AlphaMode;
  compareError: string;
  toggleCompareRun(id: string): void;
  setCompareRuns(ids: string[]): void;
  setComparePrompt(prompt: string): void;
  /** Measures the base model's eval loss for the chosen runs, unless it was measured already. */
  evaluateBase(): void;
  /** The prompt answered by the base model and by each chosen run's adapter (greedy, so it is reproducible). */
  generateCompare(): void;
  /** Before/after on the loaded sample dataset's held-out prompts: one row per prompt, 'base' or run id →
   *  generation id. Filled by answerHeldOut, for Compare's chosen runs or the Run screen's finished run. */
  heldOutAnswers: { prompt: string; ids: Record<string, string> }[];
  /** The runs heldOutAnswers has columns for, in order (the base model is always the first column). */
  heldOutRuns: { id: string; name: string }[];
  heldOutError: string;
  /** Each held-out prompt answered greedily by the base model and by each run's adapter, through the worker. */
  answerHeldOut(runs: { id: string; name: string; modelName: string }[]): void;
  setSweepAlphaMode(mode: AlphaMode): void;
  startRankSweep(ranks?: readonly number[]): void;
  cancelRankSweep(): void;
  onCompareEvent(event: EngineEvent): void;
}

type Deps = CompareSlice &
  Pick<RunsSlice, 'runs' | 'refreshRuns'> &
  Pick<TrainSlice, 'trainConfig' | 'liveRun'> &
  Pick<ModelsSlice, 'model' | 'modelQuant'> &
  Pick<DatasetSlice, 'dataset' | 'datasetId' | 'datasetSource'> &
  Pick<GenerationsSlice, 'startGeneration'>;

/** The chosen runs, as records, in the order chosen (ids no longer saved are left out). */
export function chosenRuns(s: Pick<Deps, 'runs' | 'compareIds'>): RunRecord[] {
  return s.compareIds.map((id) => s.runs.find((r) => r.id === id)).filter((r): r is RunRecord => !!r);
}

/** Greedy answers to held-out prompts: as long as the samples' answers need (a chat answer, a story's next sentences). */
export const HELD_OUT_NEW_TOKENS = { chat: 32, text: 48 } as const;

/** Why the held-out prompts cannot be answered now, in words; empty when they can. */
export function heldOutBlocker(s: Pick<Deps, 'model' | 'datasetSource'>, runs: { modelName: string }[]): string {
  if (!heldOutOf(s.datasetSource)) return 'Load a sample dataset on the Data screen: its held-out prompts are asked here.';
  if (runs.length === 0) return 'Choose runs to compare first.';
  if (!s.model || s.model.name !== runs[0].modelName) return `Load ${runs[0].modelName} on the Models screen first: the adapters were trained on it.`;
  return '';
}

/** Why the base model's eval loss cannot be measured now, in words; empty when it can. */
export function baseEvalBlocker(s: Pick<Deps, 'model' | 'modelQuant' | 'dataset' | 'datasetId'>, first: RunRecord): string {
  if (first.config.evalSplit <= 0 || first.dataset.evalRows === 0) return 'the runs hold out no eval rows (eval split 0)';
  if (!s.model || s.model.name !== first.model.name || s.modelQuant !== first.model.quant) {
    return `load ${first.model.name}${first.model.quant === 'nf4' ? ' (NF4)' : ''} on the Models screen to measure it`;
  }
  if (!s.dataset || !s.datasetId || s.dataset.fileName !== first.dataset.fileName || s.dataset.rows !== first.dataset.rows) {
    return `load ${first.dataset.fileName} on the Data screen to measure it`;
  }
  return '';
}

const TERMINAL: readonly SweepItemStatus[] = ['finished', 'stopped', 'failed', 'cancelled'];

export const createCompareSlice: StateCreator<Deps, [], [], CompareSlice> = (set, get) => {
  const patchItem = (runId: string, change: Partial<SweepItem>) => {
    const sweep = get().sweep;
    if (!sweep) return;
    set({ sweep: { ...sweep, items: sweep.items.map((it) => (it.runId === runId ? { ...it, ...change } : it)) } });
  };

  /** Starts the next queued run, or ends the sweep (and compares its runs) when none is left. */
  const advance = () => {
    const sweep = get().sweep;
    if (!sweep || sweep.status !== 'running') return;
    if (sweep.items.some((it) => it.status === 'starting' || it.status === 'running' || it.status === 'paused')) return;
    const next = sweep.items.find((it) => it.status === 'queued');
    if (!next) {
      const done = sweep.items.filter((it) => it.status === 'finished' || it.status === 'stopped');
      set({ sweep: { ...sweep, status: 'done', message: `${done.length} of ${sweep.items.length} runs trained` } });
      void get().refreshRuns().then(() => set({ compareIds: done.map((it) => it.runId) }));
      return;
    }
    const { datasetId } = get();
    const config = next.config;
    patchItem(next.runId, { status: 'starting' });
    const ok = sendToEngine({
      type: 'start-training', id: next.request, runId: next.runId, config, datasetId: datasetId ?? undefined,
      name: `rank sweep · r${next.rank} · α${next.alpha}`,
      // One sample, at the end: the sweep's runs are compared on one prompt here, and a sample every few steps would
      // cost each run generation time for nothing.
      sampleEvery: SWEEP_SAMPLE_EVERY,
    });
    if (!ok) fail('The engine is not running: this browser has no WebGPU.');
  };

  const fail = (message: string) => {
    const sweep = get().sweep;
    if (!sweep) return;
    set({
      sweep: {
        ...sweep,
        status: 'failed',
        message,
        items: sweep.items.map((it) => (it.status === 'queued' || it.status === 'starting' ? { ...it, status: 'cancelled' } : it)),
      },
    });
  };

  return {
    compareIds: [],
    baseEvals: {},
    comparePrompt: '',
    compareGenerations: {},
    sweep: null,
    sweepAlphaMode: 'scaled',
    compareError: '',
    heldOutAnswers: [],
    heldOutRuns: [],
    heldOutError: '',

    toggleCompareRun(id) {
      const ids = get().compareIds;
      set({ compareIds: ids.includes(id) ? ids.filter((x) => x !== id) : [...ids, id], compareError: '' });
    },
    setCompareRuns(ids) {
      set({ compareIds: [...ids], compareError: '' });
    },
    setComparePrompt(prompt) {
      set({ comparePrompt: prompt });
    },

    evaluateBase() {
      const s = get();
      const first = chosenRuns(s)[0];
      if (!first || baseEvalBlocker(s, first)) return;
      const key = baseEvalKey(first);
      const known = s.baseEvals[key];
      if (known && known.status !== 'error') return;
      const request = requestId('evaluate');
      const c = first.config;
      set({ baseEvals: { ...s.baseEvals, [key]: { status: 'running', request, loss: null, tokens: 0, rows: 0, message: '' } } });
      const ok = sendToEngine({
        type: 'evaluate', id: request, datasetId: s.datasetId ?? undefined, evalSplit: c.evalSplit, seed: c.seed, batchSize: c.batchSize, maxLength: c.maxLength,
      });
      if (!ok) set({ baseEvals: { ...get().baseEvals, [key]: { status: 'error', request, loss: null, tokens: 0, rows: 0, message: 'no engine (no WebGPU)' } } });
    },

    generateCompare() {
      const s = get();
      const prompt = s.comparePrompt.trim();
      const runs = chosenRuns(s);
      if (!prompt) {
        set({ compareError: 'Write a prompt first.' });
        return;
      }
      if (runs.length === 0) {
        set({ compareError: 'Choose runs to compare first.' });
        return;
      }
      if (!s.model || s.model.name !== runs[0].model.name) {
        set({ compareError: `Load ${runs[0].model.name} on the Models screen first: the adapters were trained on it.` });
        return;
      }
      const settings = { ...DEFAULT_GENERATION, chat: s.model.hasChatTemplate, maxNewTokens: 32 };
      const out: Record<string, string> = { base: s.startGeneration({ prompt, adapterRunId: null, label: 'Base model', settings }) };
      for (const r of runs) {
        if (!r.adapter) continue;
        out[r.id] = s.startGeneration({ prompt, adapterRunId: r.id, label: r.name, settings });
      }
      set({ compareGenerations: out, compareError: '' });
    },

    answerHeldOut(runs) {
      const s = get();
      const blocker = heldOutBlocker(s, runs);
      const heldOut = heldOutOf(s.datasetSource);
      if (blocker || !heldOut) {
        set({ heldOutError: blocker });
        return;
      }
      const settings = { ...DEFAULT_GENERATION, chat: heldOut.chat, temperature: 0, maxNewTokens: heldOut.chat ? HELD_OUT_NEW_TOKENS.chat : HELD_OUT_NEW_TOKENS.text };
      const rows = heldOut.prompts.map((prompt) => {
        const ids: Record<string, string> = { base: s.startGeneration({ prompt, adapterRunId: null, label: 'Base model', settings }) };
        for (const r of runs) ids[r.id] = s.startGeneration({ prompt, adapterRunId: r.id, label: r.name, settings });
        return { prompt, ids };
      });
      set({ heldOutAnswers: rows, heldOutRuns: runs.map((r) => ({ id: r.id, name: r.name })), heldOutError: '' });
    },

    setSweepAlphaMode(mode) {
      set({ sweepAlphaMode: mode });
    },

    startRankSweep(ranks = SWEEP_RANKS) {
      const s = get();
      if (s.sweep?.status === 'running') return;
      if (!s.model) return set({ compareError: 'Load a model on the Models screen first.' });
      if (!s.datasetId || !s.dataset) return set({ compareError: 'Load a dataset on the Data screen first.' });
      if (s.liveRun && ['starting', 'running', 'pausing', 'paused', 'stopping'].includes(s.liveRun.phase)) {
        return set({ compareError: `Run "${s.liveRun.name}" is in progress: stop it first.` });
      }
      let configs: TrainConfig[];
      try {
        configs = rankSweepConfigs(s.trainConfig, ranks, s.sweepAlphaMode);
      } catch (err) {
        return set({ compareError: `The Train screen's config cannot be swept: ${(err as Error).message}` });
      }
      const items: SweepItem[] = configs.map((c) => ({
        rank: c.rank, alpha: c.alpha, config: c, runId: newRunId(), request: requestId('sweep'), status: 'queued', message: '', step: 0, totalSteps: 0,
      }));
      set({ sweep: { alphaMode: s.sweepAlphaMode, items, status: 'running', message: '' }, compareError: '' });
      advance();
    },

    cancelRankSweep() {
      const sweep = get().sweep;
      if (!sweep || sweep.status !== 'running') return;
      const current = sweep.items.find((it) => it.status === 'starting' || it.status === 'running' || it.status === 'paused');
      set({
        sweep: {
          ...sweep,
          status: 'cancelled',
          message: 'cancelled: the current run stops and keeps what it trained',
          items: sweep.items.map((it) => (it.status === 'queued' ? { ...it, status: 'cancelled' } : it)),
        },
      });
      if (current) sendToEngine({ type: 'stop', runId: current.runId });
    },

    onCompareEvent(event) {
      switch (event.type) {
        case 'evaluated':
        case 'error': {
          if (event.id === undefined) break;
          const entry = Object.entries(get().baseEvals).find(([, b]) => b.request === event.id);
          if (entry) {
            const [key, b] = entry;
            const next: BaseEval = event.type === 'evaluated'
              ? { ...b, status: 'done', loss: event.loss, tokens: event.tokens, rows: event.rows }
              : { ...b, status: 'error', message: event.message };
            set({ baseEvals: { ...get().baseEvals, [key]: next } });
          }
          if (event.type === 'error') {
            const item = get().sweep?.items.find((it) => it.request === event.id);
            if (item) {
              patchItem(item.runId, { status: 'failed', message: event.message });
              fail(`r = ${item.rank} did not start: ${event.message}`);
            }
          }
          break;
        }
        case 'run-started':
          if (get().sweep?.items.some((it) => it.runId === event.runId)) patchItem(event.runId, { status: 'running', totalSteps: event.totalSteps });
          break;
        case 'metrics': {
          const item = get().sweep?.items.find((it) => it.runId === event.runId);
          if (item) patchItem(event.runId, { step: event.steps.at(-1)?.step ?? item.step, totalSteps: event.totalSteps });
          break;
        }
        case 'run-state': {
          const item = get().sweep?.items.find((it) => it.runId === event.runId);
          if (!item || TERMINAL.includes(item.status)) break;
          patchItem(event.runId, { status: event.state, message: event.message ?? '' });
          if (event.state === 'failed') fail(`r = ${item.rank} failed: ${event.message ?? ''}`);
          else if (event.state === 'finished' || event.state === 'stopped') {
            if (get().sweep?.status === 'running') advance();
            else if (get().sweep?.status === 'cancelled') void get().refreshRuns();
          }
          break;
        }
        case 'gpu-lost':
          fail('the GPU device was lost');
          break;
      }
    },
  };
};
