import { beforeEach, describe, expect, it } from 'vitest';
import { PRESETS, presetLr } from '../train/presets.ts';
import type { ModelSummary } from '../train/protocol.ts';
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

  it("scales the preset in use to a newly loaded model's width, and leaves a custom config alone", () => {
    const loaded = (name: string, hidden: number) => {
      useStudio.setState({ modelRequest: 'model-1', modelStatus: 'loading' });
      useStudio.getState().applyEngineEvent({ type: 'model-loaded', id: 'model-1', model: { name, hidden } as ModelSummary });
    };
    useStudio.getState().applyTrainPreset('quick');
    loaded('demo-llama', 192);
    expect(useStudio.getState().trainConfig.lr).toBe(presetLr(PRESETS.quick.config.lr!, 192));
    expect(useStudio.getState().trainPreset).toBe('quick');
    loaded('big', 4096);
    expect(useStudio.getState().trainConfig.lr).toBe(PRESETS.quick.config.lr);
    useStudio.getState().applyTrainPreset('quality');
    expect(useStudio.getState().trainConfig.lr).toBe(PRESETS.quality.config.lr);
    useStudio.getState().setTrainConfig({ lr: 1e-3 });
    loaded('demo-llama', 192);
    expect(useStudio.getState().trainConfig.lr).toBe(1e-3);
  });
});
