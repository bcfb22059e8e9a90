// What the UI knows of the GPU: only what the engine worker reported.
import type { StateCreator } from 'zustand';
import type { EngineEvent, GpuReport } from '../../train/protocol.ts';

export type GpuStatus = 'probing' | 'ready' | 'unavailable' | 'lost' | 'error';

export interface GpuSlice {
  gpuStatus: GpuStatus;
  gpu: GpuReport | null;
  gpuMessage: string;
  applyEngineEvent(event: EngineEvent): void;
}

export const createGpuSlice: StateCreator<GpuSlice, [], [], GpuSlice> = (set) => ({
  gpuStatus: 'probing',
  gpu: null,
  gpuMessage: '',
  applyEngineEvent(event) {
    switch (event.type) {
      case 'gpu-ready':
        set({ gpuStatus: 'ready', gpu: event.gpu, gpuMessage: '' });
        break;
      case 'gpu-unavailable':
        set({ gpuStatus: 'unavailable', gpuMessage: event.message });
        break;
      case 'gpu-lost':
        set({ gpuStatus: 'lost', gpuMessage: `The GPU device was lost (${event.reason}): ${event.message}` });
        break;
      case 'error':
        // Errors that answer a request (a model that failed to load) belong to that request's slice.
        if (event.id === undefined) set({ gpuStatus: 'error', gpuMessage: event.message });
        break;
    }
  },
});
