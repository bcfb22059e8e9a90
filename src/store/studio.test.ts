import { beforeEach, describe, expect, it } from 'vitest';
import { useStudio } from './studio.ts';

const adapter = { vendor: 'google', architecture: 'swiftshader', device: '', description: 'SwiftShader', isCpu: true, name: 'SwiftShader' };

describe('studio store', () => {
  beforeEach(() => useStudio.setState({ gpuStatus: 'probing', gpu: null, gpuMessage: '', screen: 'models' }));

  it('records the adapter the engine reports', () => {
    useStudio.getState().applyEngineEvent({ type: 'gpu-ready', gpu: { adapter, limits: {} as never, features: ['shader-f16'] } });
    expect(useStudio.getState().gpuStatus).toBe('ready');
    expect(useStudio.getState().gpu?.adapter.name).toBe('SwiftShader');
  });

  it('turns device loss and missing WebGPU into a status with the reason', () => {
    useStudio.getState().applyEngineEvent({ type: 'gpu-lost', reason: 'unknown', message: 'driver reset' });
    expect(useStudio.getState().gpuStatus).toBe('lost');
    expect(useStudio.getState().gpuMessage).toContain('driver reset');
    useStudio.getState().applyEngineEvent({ type: 'gpu-unavailable', message: 'no adapter' });
    expect(useStudio.getState().gpuStatus).toBe('unavailable');
  });

  it('navigates between screens', () => {
    useStudio.getState().go('compare');
    expect(useStudio.getState().screen).toBe('compare');
  });
});
