// The GPU slice through the studio store: a recoverable loss keeps the model and the dataset the other slices hold
// (the worker keeps them too), a loss for good drops them; recovery leaves a notice until dismissed.
import { beforeEach, describe, expect, it } from 'vitest';
import { useStudio } from '../studio.ts';

const adapter = { vendor: 'google', architecture: 'swiftshader', device: '', description: 'SwiftShader', isCpu: true, name: 'SwiftShader' };
const model = { name: 'demo' } as never;
const dataset = { fileName: 'd.jsonl' } as never;

describe('gpu slice: device loss and recovery', () => {
  beforeEach(() =>
    useStudio.setState({
      gpuStatus: 'ready', gpu: null, gpuMessage: '', gpuRecovering: false, gpuNotice: '',
      model, modelStatus: 'loaded', dataset, datasetId: 'dataset-1', datasetStatus: 'loaded',
    }),
  );

  it('recovering: status lost with the worker\'s message, the model and dataset kept', () => {
    useStudio.getState().applyEngineEvent({ type: 'gpu-recovering', reason: 'unknown', message: 'the device was lost (driver reset); asking for a new one' });
    expect(useStudio.getState()).toMatchObject({ gpuStatus: 'lost', gpuRecovering: true, gpuMessage: expect.stringContaining('driver reset'), model, dataset, datasetId: 'dataset-1' });

    useStudio.getState().applyEngineEvent({ type: 'gpu-recovered', gpu: { adapter, limits: {} as never, features: [] }, message: 'GPU recovered on SwiftShader: "r4" resumed from step 2.' });
    expect(useStudio.getState()).toMatchObject({ gpuStatus: 'ready', gpuRecovering: false, gpuMessage: '', gpuNotice: expect.stringContaining('resumed from step 2'), model, dataset });
    expect(useStudio.getState().gpu?.adapter.name).toBe('SwiftShader');
    useStudio.getState().dismissGpuNotice();
    expect(useStudio.getState().gpuNotice).toBe('');
  });

  it('lost for good: the recovery flag cleared, the model and dataset dropped', () => {
    useStudio.getState().applyEngineEvent({ type: 'gpu-recovering', reason: 'unknown', message: 'asking' });
    useStudio.getState().applyEngineEvent({ type: 'gpu-lost', reason: 'unknown', message: 'no new one came after 6 tries. Reload the page to try again.' });
    expect(useStudio.getState()).toMatchObject({ gpuStatus: 'lost', gpuRecovering: false, model: null, dataset: null, datasetId: null });
    expect(useStudio.getState().gpuMessage).toContain('Reload the page');
  });
});
