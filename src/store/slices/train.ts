// Training: the config being edited (presets and every field), and the run this tab trains: its phase, totals and
// samples. The per-step metrics themselves go to liveMetrics (metrics-buffer.ts), outside the store: one store update
// per worker batch at most, never one per step.
import type { StateCreator } from 'zustand';
import { applyPreset, DEFAULT_CONFIG, normalizeConfig, validateConfig, type FieldError, type PresetName, type TrainConfig } from '../../train/config.ts';
import type { EngineEvent } from '../../train/protocol.ts';
import { virtualTokenCount } from '../../train/methods/prompt-tuning/config.ts';
import { requestId, sendToEngine } from '../engine-link.ts';
import { saveFile } from '../downloads.ts';
import { liveMetrics } from '../metrics-buffer.ts';
import { continuationMethod, METHODS } from '../../train/methods/registry.ts';
import { newRunId, requestPersistenceOnce, type RunRecord, type RunSample } from '../runs-db.ts';
import type { DatasetSlice } from './dataset.ts';
import type { ModelsSlice } from './models.ts';
import type { NavSlice } from './nav.ts';

export type RunPhase = 'starting' | 'running' | 'pausing' | 'paused' | 'stopping' | 'stopped' | 'finished' | 'failed';

export interface LiveRun {
  runId: string;
  /** The start-training request, whose error means the run never started. */
  request: string;
  name: string;
  phase: RunPhase;
  message: string;
  totalSteps: number;
  step: number;
  trainable: string;
  trainableParams: number;
  resumedFrom: number | null;
  trainRows: number;
  evalRows: number;
  config: TrainConfig | null;
}

/** A saved run's adapter the next run continues from: its rank, alpha, targets and rsLoRA are locked in the form. */
export interface TrainFrom {
  runId: string;
  name: string;
  /** The adapter's method (its tensors are that method's); LoRA's rank, alpha and rsLoRA beside it. */
  method: TrainConfig['method'];
  rank: number;
  alpha: number;
  rslora: boolean;
  targets: string[];
  /** Prompt tuning's virtual tokens (the adapter's table has that many rows). */
  numVirtualTokens?: number;
}

/** The config fields an adapter fixes: the next run's LoRA must have the adapter's shape and scale. */
export const LOCKED_BY_ADAPTER = ['method', 'rank', 'alpha', 'rslora', 'targets'] as const;

/** `config` with the adapter's fields put back (whatever a preset or an edit did to them). */
export function lockToAdapter(config: TrainConfig, from: TrainFrom | null): TrainConfig {
  if (!from) return config;
  const locked = { ...config, method: from.method, rank: from.rank, alpha: from.alpha, rslora: from.rslora, targets: [...from.targets] };
  // A prefix adapter holds the prefix itself (PEFT saves no MLP): it continues without the projection.
  const prefix = from.method === 'prefix-tuning' ? { prefixProjection: false } : {};
  return from.numVirtualTokens === undefined ? { ...locked, ...prefix } : { ...locked, ...prefix, numVirtualTokens: from.numVirtualTokens };
}

/** The config a run is started with: the base weights as the model was loaded (the Models screen's choice: QLoRA is
 *  LoRA over an NF4 load), and no target list for a method without a target setting (full fine-tuning trains every
 *  layer; the form's targets, kept for when another method is picked again, do not apply). */
export function effectiveConfig(config: TrainConfig, modelQuant: 'none' | 'nf4'): TrainConfig {
  const method = METHODS[config.method];
  const targets = method && !method.settings.includes('targets') ? [] : config.targets;
  return { ...config, quant: modelQuant, doubleQuant: modelQuant === 'nf4' && config.doubleQuant, targets };
}

/** Every problem with the form, as field errors: config.ts's ranges, then the method's own rules (full fine-tuning:
 *  not over an NF4 load) on the config the run would start with. */
export function trainConfigErrors(config: TrainConfig, modelQuant: 'none' | 'nf4'): FieldError[] {
  const errors = validateConfig(config);
  const method = METHODS[config.method];
  return method ? [...errors, ...method.validate(effectiveConfig(config, modelQuant))] : errors;
}

/** A run's default name: "demo · r4 · pirate.jsonl", "demo · Full fine-tuning · pirate.jsonl". */
export function defaultRunName(model: string, config: TrainConfig, dataset: string): string {
  const lora = config.method === 'lora' || config.method === 'dora';
  const n = virtualTokenCount(config);
  const what = n ? `${n} virtual tokens` : lora ? `r${config.rank}` : (METHODS[config.method]?.label ?? config.method);
  return `${model} · ${what} · ${dataset}`;
}

export interface TrainSlice {
  trainConfig: TrainConfig;
  /** The preset last applied; 'custom' once a field is edited after it. */
  trainPreset: PresetName | 'custom';
  runName: string;
  /** Empty: the prompt of the dataset's first (eval) row. */
  samplePrompt: string;
  liveRun: LiveRun | null;
  runSamples: RunSample[];
  trainError: string;
  setTrainConfig(patch: Partial<TrainConfig>): void;
  applyTrainPreset(name: PresetName): void;
  setRunName(name: string): void;
  setSamplePrompt(prompt: string): void;
  startTraining(): void;
  /** Continues a saved run from its last checkpoint (Runs screen). */
  resumeSavedRun(runId: string, name: string): void;
  /** Takes a saved run's config into the form (Runs screen's "re-run"). */
  rerunWith(config: TrainConfig, name: string): void;
  /** The run the next start continues from (its adapter's A and B), or null: a fresh LoRA. */
  trainFrom: TrainFrom | null;
  /** Runs screen's "Continue training": the form takes the run's config with its adapter's fields locked. */
  continueFromRun(run: Pick<RunRecord, 'id' | 'name' | 'config'>): void;
  clearTrainFrom(): void;
  pauseRun(): void;
  continueRun(): void;
  stopRun(): void;
  exportLiveAdapter(as: 'zip' | 'safetensors'): void;
  onTrainEvent(event: EngineEvent): void;
}

type Deps = TrainSlice & Pick<ModelsSlice, 'model' | 'modelQuant'> & Pick<DatasetSlice, 'datasetId' | 'dataset'> & Pick<NavSlice, 'go'>;

/** Why Start cannot be pressed now, in words; empty when it can. */
export function startBlocker(s: Pick<Deps, 'model' | 'datasetId' | 'dataset' | 'liveRun' | 'trainConfig'>, errors: FieldError[]): string {
  if (!s.model) return 'Load a model on the Models screen first.';
  if (!s.datasetId || !s.dataset) return 'Load a dataset on the Data screen first.';
  if (s.liveRun && isActive(s.liveRun.phase)) return `Run "${s.liveRun.name}" is in progress: stop it first.`;
  if (errors.length) return `Fix ${errors.length === 1 ? 'the field' : `the ${errors.length} fields`} marked below.`;
  return '';
}

export function isActive(phase: RunPhase): boolean {
  return phase === 'starting' || phase === 'running' || phase === 'pausing' || phase === 'paused' || phase === 'stopping';
}

const downloadsInFlight = new Set<string>();

export const createTrainSlice: StateCreator<Deps, [], [], TrainSlice> = (set, get) => {
  const begin = (runId: string, name: string, resume: boolean) => {
    const { datasetId, samplePrompt, trainFrom, modelQuant } = get();
    // The base weights train as the model was loaded (the Models screen's choice): QLoRA is LoRA over an NF4 load.
    const trainConfig = effectiveConfig(get().trainConfig, modelQuant);
    const id = requestId('train');
    liveMetrics.reset();
    set({
      trainError: '',
      runSamples: [],
      liveRun: {
        runId, request: id, name, phase: 'starting', message: '', totalSteps: 0, step: 0, trainable: '', trainableParams: 0,
        resumedFrom: null, trainRows: 0, evalRows: 0, config: null,
      },
    });
    void requestPersistenceOnce().catch(() => null);
    const ok = sendToEngine({
      type: 'start-training', id, runId, config: trainConfig, resume, name, datasetId: datasetId ?? undefined,
      samplePrompt: samplePrompt.trim() || undefined,
      ...(trainFrom && !resume && { initFromRunId: trainFrom.runId }),
    });
    if (!ok) set({ liveRun: null, trainError: 'The engine is not running: this browser has no WebGPU.' });
  };
  const control = (type: 'pause' | 'resume' | 'stop', phase: RunPhase) => {
    const run = get().liveRun;
    if (!run || !isActive(run.phase)) return;
    sendToEngine({ type, runId: run.runId });
    set({ liveRun: { ...run, phase } });
  };
  const patchRun = (runId: string, patch: Partial<LiveRun>) => {
    const run = get().liveRun;
    if (run && run.runId === runId) set({ liveRun: { ...run, ...patch } });
  };

  return {
    trainConfig: applyPreset('quick', DEFAULT_CONFIG),
    trainPreset: 'quick',
    runName: '',
    samplePrompt: '',
    liveRun: null,
    runSamples: [],
    trainError: '',

    setTrainConfig(patch) {
      set({ trainConfig: lockToAdapter({ ...get().trainConfig, ...patch }, get().trainFrom), trainPreset: 'custom' });
    },
    applyTrainPreset(name) {
      // A preset keeps what it does not set (seed, checkpointing, the method the loaded weights allow); its learning
      // rate is scaled to the loaded model's width (presets.ts's presetLr).
      set({ trainConfig: lockToAdapter(applyPreset(name, get().trainConfig, get().model), get().trainFrom), trainPreset: name });
    },
    setRunName(name) {
      set({ runName: name });
    },
    setSamplePrompt(prompt) {
      set({ samplePrompt: prompt });
    },

    startTraining() {
      const s = get();
      const errors = trainConfigErrors(s.trainConfig, s.modelQuant);
      const blocker = startBlocker(s, errors);
      if (blocker) {
        set({ trainError: blocker });
        return;
      }
      const name = s.runName.trim() || defaultRunName(s.model!.name, s.trainConfig, s.dataset!.fileName);
      begin(newRunId(), name, false);
    },
    resumeSavedRun(runId, name) {
      const s = get();
      const blocker = startBlocker(s, []);
      if (blocker) {
        set({ trainError: blocker });
        s.go('train');
        return;
      }
      begin(runId, name, true);
      s.go('train');
    },
    rerunWith(config, name) {
      set({ trainConfig: normalizeConfig(config), trainPreset: 'custom', runName: `${name} (again)`, trainFrom: null });
      get().go('train');
    },
    trainFrom: null,
    continueFromRun(run) {
      const c = normalizeConfig(run.config);
      // A P-tuning adapter holds the encoder's output only (as PEFT saves it): it continues as prompt tuning.
      // A prefix-tuning adapter holds the prefix only (after its projection): it continues as plain prefix tuning.
      const method = continuationMethod(c.method);
      const prompt = method === 'prompt-tuning' || method === 'prefix-tuning' ? { numVirtualTokens: c.numVirtualTokens } : {};
      const from: TrainFrom = { runId: run.id, name: run.name, method, rank: c.rank, alpha: c.alpha, rslora: c.rslora, targets: [...c.targets], ...prompt };
      // The rest of the form stays as it is (this dataset's settings); a continued run starts its schedule anew.
      set({ trainFrom: from, trainConfig: lockToAdapter(get().trainConfig, from), trainPreset: 'custom', runName: `${run.name} (continued)`, trainError: '' });
      get().go('train');
    },
    clearTrainFrom() {
      set({ trainFrom: null });
    },
    pauseRun() {
      control('pause', 'pausing');
    },
    continueRun() {
      control('resume', 'running');
    },
    stopRun() {
      control('stop', 'stopping');
    },
    exportLiveAdapter(as) {
      const run = get().liveRun;
      if (!run) return;
      const id = requestId('export');
      downloadsInFlight.add(id);
      sendToEngine({ type: 'export-adapter', id, runId: run.runId, as });
    },

    onTrainEvent(event) {
      switch (event.type) {
        case 'progress': {
          // A full fine-tuning run loading the model's weights again in f32 before it starts (worker/full-weights.ts).
          const run = get().liveRun;
          if (run && event.id === run.request && event.stage === 'f32-weights') {
            const pct = event.total > 0 ? ` ${Math.floor((100 * event.done) / event.total)}%` : '';
            patchRun(run.runId, { message: `Loading the model's weights again in f32 for full fine-tuning…${pct}` });
          }
          break;
        }
        case 'run-started':
          // The continuation has started: the next run starts fresh unless "Continue training" is chosen again.
          if (get().liveRun?.runId === event.runId && event.resumedFrom === null && get().trainFrom) set({ trainFrom: null });
          liveMetrics.reset();
          patchRun(event.runId, {
            name: event.name, totalSteps: event.totalSteps, trainable: event.trainable, trainableParams: event.trainableParams,
            resumedFrom: event.resumedFrom, trainRows: event.trainRows, evalRows: event.evalRows, config: event.config,
            step: event.resumedFrom ?? 0,
          });
          break;
        case 'metrics': {
          if (get().liveRun?.runId !== event.runId) break;
          liveMetrics.push(event.steps);
          patchRun(event.runId, { step: event.steps.at(-1)?.step ?? 0, totalSteps: event.totalSteps });
          break;
        }
        case 'sample':
          if (get().liveRun?.runId === event.runId) {
            set({ runSamples: [...get().runSamples, { step: event.step, prompt: event.prompt ?? '', text: event.text }].slice(-20) });
          }
          break;
        case 'run-state': {
          const run = get().liveRun;
          if (!run || run.runId !== event.runId) break;
          // A pause request answered by 'running' (a late batch) keeps showing "pausing" until the pause lands.
          if (event.state === 'running' && (run.phase === 'pausing' || run.phase === 'stopping')) break;
          patchRun(event.runId, { phase: event.state, message: event.message ?? '' });
          break;
        }
        case 'adapter':
          if (downloadsInFlight.delete(event.id)) saveFile(event.bytes, event.fileName, event.fileName.endsWith('.zip') ? 'application/zip' : 'application/octet-stream');
          break;
        case 'error': {
          const run = get().liveRun;
          if (event.id !== undefined && downloadsInFlight.delete(event.id)) {
            set({ trainError: event.message });
          } else if (run && event.id === run.request) {
            // The start was refused: there is no run.
            set({ liveRun: null, trainError: event.message });
          }
          break;
        }
      }
    },
  };
};
