// The studio's one store, bound from slices per concern (zustand's slices pattern).
import { create } from 'zustand';
import type { PresetName } from '../train/presets.ts';
import { createCompareSlice, type CompareSlice } from './slices/compare.ts';
import { createDatasetSlice, type DatasetSlice } from './slices/dataset.ts';
import { createGenerationsSlice, type GenerationsSlice } from './slices/generations.ts';
import { createGpuSlice, type GpuSlice } from './slices/gpu.ts';
import { createModelsSlice, type ModelsSlice } from './slices/models.ts';
import { createNavSlice, type NavSlice } from './slices/nav.ts';
import { createPlaygroundSlice, type PlaygroundSlice } from './slices/playground.ts';
import { createRunsSlice, type RunsSlice } from './slices/runs.ts';
import { createTrainSlice, type TrainSlice } from './slices/train.ts';

export type StudioState = GpuSlice & NavSlice & ModelsSlice & DatasetSlice & TrainSlice & RunsSlice & GenerationsSlice & PlaygroundSlice & CompareSlice;

export const useStudio = create<StudioState>()((...a) => {
  const gpu = createGpuSlice(...a);
  return {
    ...gpu,
    ...createNavSlice(...a),
    ...createModelsSlice(...a),
    ...createDatasetSlice(...a),
    ...createTrainSlice(...a),
    ...createRunsSlice(...a),
    ...createGenerationsSlice(...a),
    ...createPlaygroundSlice(...a),
    ...createCompareSlice(...a),
    // Every engine event reaches every slice that owns some: the model slice before the dataset slice, which reads
    // the newly loaded model.
    applyEngineEvent(event) {
      gpu.applyEngineEvent(event);
      a[1]().onModelEvent(event);
      // The preset in use (Quick at first) follows the newly loaded model: its learning rate depends on the width.
      if (event.type === 'model-loaded' && a[1]().model === event.model && a[1]().trainPreset !== 'custom') a[1]().applyTrainPreset(a[1]().trainPreset as PresetName);
      a[1]().onDatasetEvent(event);
      a[1]().onTrainEvent(event);
      a[1]().onRunsEvent(event);
      a[1]().onGenerationEvent(event);
      a[1]().onCompareEvent(event);
    },
  };
});
