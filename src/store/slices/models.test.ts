import { beforeEach, describe, expect, it } from 'vitest';
import type { EngineRequest, ModelSummary } from '../../train/protocol.ts';
import { linkEngine } from '../engine-link.ts';
import { useStudio } from '../studio.ts';
import { describeSource } from './models.ts';

const summary: ModelSummary = {
  name: 'demo-llama', modelType: 'llama', parameters: 1_320_960, layers: 4, hidden: 160, vocab: 1143, maxPositions: 256,
  dtype: 'f32', hasChatTemplate: true, defaultTargets: ['q_proj', 'v_proj'], linearModules: ['q_proj'], weightBytes: 5_000_000,
};

let sent: EngineRequest[] = [];
beforeEach(() => {
  sent = [];
  linkEngine({ send: (r) => sent.push(r) });
  useStudio.setState({ modelStatus: 'idle', modelRequest: null, model: null, modelError: '', modelProgress: null, gpuStatus: 'ready', gpuMessage: '' });
});

describe('models slice', () => {
  it('sends load-model and follows its progress to model-loaded', () => {
    useStudio.getState().loadModel({ kind: 'bundled', path: 'models/demo-llama' }, 'demo-llama');
    expect(sent).toHaveLength(1);
    const req = sent[0] as Extract<EngineRequest, { type: 'load-model' }>;
    expect(req).toMatchObject({ type: 'load-model', source: { kind: 'bundled', path: 'models/demo-llama' }, quant: 'none' });
    expect(useStudio.getState().modelStatus).toBe('loading');

    useStudio.getState().applyEngineEvent({ type: 'progress', id: req.id, stage: 'weights', done: 100, total: 400 });
    expect(useStudio.getState().modelProgress).toMatchObject({ stage: 'weights', done: 100, total: 400 });
    useStudio.getState().applyEngineEvent({ type: 'model-loaded', id: req.id, model: summary });
    expect(useStudio.getState()).toMatchObject({ modelStatus: 'loaded', model: summary, modelProgress: null });
  });

  it('takes the same model held another way (a full run reloaded it in f32) without dropping the dataset', () => {
    useStudio.getState().loadModel({ kind: 'bundled', path: 'models/demo-llama' }, 'demo-llama');
    const req = sent[0] as Extract<EngineRequest, { type: 'load-model' }>;
    useStudio.getState().applyEngineEvent({ type: 'model-loaded', id: req.id, model: { ...summary, dtype: 'f16' } });
    useStudio.setState({ datasetId: 'dataset-1' });
    useStudio.getState().applyEngineEvent({ type: 'model-updated', id: req.id, model: summary, message: 'loaded again in f32' });
    expect(useStudio.getState()).toMatchObject({ model: summary, modelStatus: 'loaded', datasetId: 'dataset-1' });
  });

  it('ignores events that answer another request', () => {
    useStudio.getState().loadModel({ kind: 'bundled', path: 'models/demo-llama' }, 'demo-llama');
    useStudio.getState().applyEngineEvent({ type: 'model-loaded', id: 'model-stale', model: summary });
    expect(useStudio.getState().modelStatus).toBe('loading');
  });

  it('keeps the previous model when a load fails before its weights stage, drops it after', () => {
    useStudio.setState({ model: summary, modelStatus: 'loaded' });
    useStudio.getState().loadModel({ kind: 'hub', repo: 'nobody/nothing' }, 'nobody/nothing');
    let id = (sent.at(-1) as { id: string }).id;
    useStudio.getState().applyEngineEvent({ type: 'progress', id, stage: 'download', done: 0, total: 0 });
    useStudio.getState().applyEngineEvent({ type: 'error', id, message: 'nobody/nothing@main: no such repository' });
    expect(useStudio.getState()).toMatchObject({ modelStatus: 'error', model: summary, modelError: 'nobody/nothing@main: no such repository' });
    // A request error is not a GPU error.
    expect(useStudio.getState().gpuStatus).toBe('ready');

    useStudio.getState().loadModel({ kind: 'bundled', path: 'models/broken' }, 'broken');
    id = (sent.at(-1) as { id: string }).id;
    useStudio.getState().applyEngineEvent({ type: 'progress', id, stage: 'weights', done: 0, total: 0 });
    useStudio.getState().applyEngineEvent({ type: 'error', id, message: 'tensor missing' });
    expect(useStudio.getState().model).toBeNull();
  });

  it('records NF4 loads and forgets the model when the GPU is lost', () => {
    useStudio.getState().loadModel({ kind: 'bundled', path: 'models/demo-llama' }, 'demo-llama', 'nf4');
    const id = (sent.at(-1) as { id: string }).id;
    expect(sent.at(-1)).toMatchObject({ quant: 'nf4' });
    useStudio.getState().applyEngineEvent({ type: 'model-loaded', id, model: summary });
    expect(useStudio.getState().modelQuant).toBe('nf4');
    useStudio.getState().applyEngineEvent({ type: 'gpu-lost', reason: 'unknown', message: 'reset' });
    expect(useStudio.getState()).toMatchObject({ model: null, modelStatus: 'idle', gpuStatus: 'lost' });
  });

  it('says so when no engine runs', () => {
    linkEngine(null);
    useStudio.getState().loadModel({ kind: 'bundled', path: 'models/demo-llama' }, 'demo-llama');
    expect(useStudio.getState().modelStatus).toBe('error');
    expect(useStudio.getState().modelError).toMatch(/WebGPU/);
  });

  it('validates the memory budget', () => {
    useStudio.getState().setMemoryBudget(2 ** 30);
    expect(useStudio.getState().memoryBudget).toBe(2 ** 30);
    useStudio.getState().setMemoryBudget(-1);
    expect(useStudio.getState().memoryBudget).toBeNull();
  });

  it('describes sources without their token', () => {
    expect(describeSource({ kind: 'hub', repo: 'a/b', token: 'hf_secret' })).toBe('a/b');
    expect(describeSource({ kind: 'bundled', path: 'models/demo-llama/' })).toBe('demo-llama');
  });
});
