import { beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, PRESETS } from '../../train/config.ts';
import type { DatasetSummary, EngineRequest, ModelSummary, StepMetrics } from '../../train/protocol.ts';
import { setDownloader } from '../downloads.ts';
import { linkEngine } from '../engine-link.ts';
import { liveMetrics } from '../metrics-buffer.ts';
import { useStudio } from '../studio.ts';

const model = { name: 'demo-llama', maxPositions: 256, defaultTargets: ['q_proj', 'v_proj'] } as ModelSummary;
const dataset = { fileName: 'chat.jsonl', rows: 8 } as DatasetSummary;
const metric = (step: number): StepMetrics => ({ step, epoch: 0, loss: 2, lr: 1e-4, gradNorm: 1, tokensPerSecond: 100, ms: 10, memBytes: 1, peakBytes: 2 });

let sent: EngineRequest[] = [];
const startRequest = () => sent.find((r) => r.type === 'start-training') as Extract<EngineRequest, { type: 'start-training' }>;

beforeEach(() => {
  sent = [];
  linkEngine({ send: (r) => sent.push(r) });
  liveMetrics.reset();
  useStudio.setState({
    model, dataset, datasetId: 'dataset-7', liveRun: null, runSamples: [], trainError: '', runName: '', samplePrompt: '',
    trainConfig: { ...DEFAULT_CONFIG }, trainPreset: 'custom', screen: 'train',
  });
});

function startedRun() {
  useStudio.getState().startTraining();
  const req = startRequest();
  useStudio.getState().applyEngineEvent({
    type: 'run-started', id: req.id, runId: req.runId, name: 'demo-llama · r8 · chat.jsonl', totalSteps: 10, trainable: 'trainable params: 64',
    trainableParams: 64, resumedFrom: null, trainRows: 8, evalRows: 0, config: req.config,
  });
  useStudio.getState().applyEngineEvent({ type: 'run-state', runId: req.runId, state: 'running' });
  return req;
}

describe('train slice', () => {
  it('applies a preset over the current config and marks later edits as custom', () => {
    useStudio.getState().setTrainConfig({ seed: 7 });
    useStudio.getState().applyTrainPreset('balanced');
    const s = useStudio.getState();
    expect(s.trainPreset).toBe('balanced');
    expect(s.trainConfig).toMatchObject({ ...PRESETS.balanced.config, seed: 7 });
    s.setTrainConfig({ rank: 4 });
    expect(useStudio.getState().trainPreset).toBe('custom');
  });

  it('refuses to start with the reason: no model, no dataset, an invalid field', () => {
    useStudio.setState({ model: null });
    useStudio.getState().startTraining();
    expect(useStudio.getState().trainError).toMatch(/Load a model/);
    useStudio.setState({ model, datasetId: null });
    useStudio.getState().startTraining();
    expect(useStudio.getState().trainError).toMatch(/Load a dataset/);
    useStudio.setState({ datasetId: 'dataset-7' });
    useStudio.getState().setTrainConfig({ rank: 0 });
    useStudio.getState().startTraining();
    expect(useStudio.getState().trainError).toMatch(/Fix the field/);
    expect(sent).toHaveLength(0);
  });

  it('starts a run on the loaded dataset, feeds metrics to the buffer (not the store) and follows its states', () => {
    const req = startedRun();
    expect(req).toMatchObject({ datasetId: 'dataset-7', resume: false, name: 'demo-llama · r8 · chat.jsonl', config: DEFAULT_CONFIG });
    expect(useStudio.getState().liveRun).toMatchObject({ phase: 'running', totalSteps: 10, trainable: 'trainable params: 64' });

    let updates = 0;
    const unsubscribe = useStudio.subscribe(() => updates++);
    useStudio.getState().applyEngineEvent({ type: 'metrics', runId: req.runId, steps: [metric(1), metric(2), metric(3)], totalSteps: 10 });
    unsubscribe();
    expect(updates).toBe(1); // one store update for a batch of three steps
    expect(liveMetrics.all.map((m) => m.step)).toEqual([1, 2, 3]);
    expect(useStudio.getState().liveRun?.step).toBe(3);
    // Another run's metrics are not this run's.
    useStudio.getState().applyEngineEvent({ type: 'metrics', runId: 'other', steps: [metric(9)], totalSteps: 10 });
    expect(liveMetrics.all).toHaveLength(3);

    useStudio.getState().pauseRun();
    expect(sent.at(-1)).toEqual({ type: 'pause', runId: req.runId });
    expect(useStudio.getState().liveRun?.phase).toBe('pausing');
    useStudio.getState().applyEngineEvent({ type: 'run-state', runId: req.runId, state: 'paused' });
    useStudio.getState().continueRun();
    expect(sent.at(-1)).toEqual({ type: 'resume', runId: req.runId });
    useStudio.getState().stopRun();
    useStudio.getState().applyEngineEvent({ type: 'run-state', runId: req.runId, state: 'stopped', message: 'stopped at step 3 of 10' });
    expect(useStudio.getState().liveRun).toMatchObject({ phase: 'stopped', message: 'stopped at step 3 of 10' });
  });

  it('keeps samples and reports a failure with its diagnosis', () => {
    const req = startedRun();
    useStudio.getState().applyEngineEvent({ type: 'sample', runId: req.runId, step: 5, prompt: 'Q:', text: ' Arr!' });
    expect(useStudio.getState().runSamples).toEqual([{ step: 5, prompt: 'Q:', text: ' Arr!' }]);
    useStudio.getState().applyEngineEvent({ type: 'run-state', runId: req.runId, state: 'failed', message: 'step 6: the loss became NaN' });
    expect(useStudio.getState().liveRun).toMatchObject({ phase: 'failed', message: 'step 6: the loss became NaN' });
  });

  it('drops the run when the worker refuses to start it', () => {
    useStudio.getState().startTraining();
    useStudio.getState().applyEngineEvent({ type: 'error', id: startRequest().id, message: 'QLoRA trains over an NF4 base' });
    expect(useStudio.getState()).toMatchObject({ liveRun: null, trainError: 'QLoRA trains over an NF4 base' });
  });

  it('downloads an exported adapter under its file name', () => {
    const saved: { name: string; type: string; size: number }[] = [];
    setDownloader((blob, name) => saved.push({ name, type: blob.type, size: blob.size }));
    try {
      const req = startedRun();
      useStudio.getState().exportLiveAdapter('zip');
      const exp = sent.at(-1) as Extract<EngineRequest, { type: 'export-adapter' }>;
      expect(exp).toMatchObject({ type: 'export-adapter', runId: req.runId, as: 'zip' });
      useStudio.getState().applyEngineEvent({ type: 'adapter', id: exp.id, runId: req.runId, fileName: 'run-adapter.zip', bytes: new Uint8Array(5) });
      // An adapter answering a request this slice did not send is not downloaded again.
      useStudio.getState().applyEngineEvent({ type: 'adapter', id: exp.id, runId: req.runId, fileName: 'run-adapter.zip', bytes: new Uint8Array(5) });
      expect(saved).toEqual([{ name: 'run-adapter.zip', type: 'application/zip', size: 5 }]);
    } finally {
      setDownloader(null);
    }
  });

  it('re-runs a saved config and resumes a saved run from its checkpoint', () => {
    useStudio.getState().rerunWith({ ...DEFAULT_CONFIG, rank: 16 }, 'old run');
    expect(useStudio.getState()).toMatchObject({ trainConfig: { rank: 16 }, runName: 'old run (again)', screen: 'train' });
    useStudio.setState({ screen: 'runs' });
    useStudio.getState().resumeSavedRun('run-1', 'old run');
    expect(startRequest()).toMatchObject({ runId: 'run-1', resume: true });
    expect(useStudio.getState().screen).toBe('train');
  });

  it('starts a full fine-tuning run without the form\'s target list, names it by the method, and shows its f32 reload', () => {
    useStudio.setState({ modelQuant: 'none', trainConfig: { ...DEFAULT_CONFIG, method: 'full', targets: ['all-linear'] } });
    useStudio.getState().startTraining();
    const req = startRequest();
    expect(req.config).toMatchObject({ method: 'full', targets: [], quant: 'none' });
    expect(req.name).toBe('demo-llama · Full fine-tuning · chat.jsonl');
    useStudio.getState().applyEngineEvent({ type: 'progress', id: req.id, stage: 'f32-weights', done: 50, total: 200 });
    expect(useStudio.getState().liveRun?.message).toBe("Loading the model's weights again in f32 for full fine-tuning… 25%");
  });

  it('refuses full fine-tuning over an NF4 load, as a field error', () => {
    useStudio.setState({ modelQuant: 'nf4', trainConfig: { ...DEFAULT_CONFIG, method: 'full', targets: [] } });
    useStudio.getState().startTraining();
    expect(startRequest()).toBeUndefined();
    expect(useStudio.getState().trainError).toMatch(/Fix the field marked below/);
  });
});

