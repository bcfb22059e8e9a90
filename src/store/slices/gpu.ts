// What the UI knows of the GPU: only what the engine worker reported. A lost device is usually recovered by the
// worker (train/worker/recovery.ts): 'gpu-recovering' keeps the status 'lost' with `gpuRecovering` set (the model,
// dataset and run stay as they are), 'gpu-recovered' makes it ready again and leaves a notice of what was resumed.
import type { StateCreator } from 'zustand';
import type { EngineEvent, GpuReport } from '../../train/protocol.ts';

export type GpuStatus = 'probing' | 'ready' | 'unavailable' | 'lost' | 'error';

export interface GpuSlice {
  gpuStatus: GpuStatus;
  gpu: GpuReport | null;
  gpuMessage: string;
  /** The device was lost and the engine is replacing it (gpuStatus is 'lost' meanwhile). */
  gpuRecovering: boolean;
  /** What the last recovery did ("resumed from step 4"), shown until dismissed; empty when there is none. */
  gpuNotice: string;
  dismissGpuNotice(): void;
  applyEngineEvent(event: EngineEvent): void;
}

export const createGpuSlice: StateCreator<GpuSlice, [], [], GpuSlice> = (set) => ({
  gpuStatus: 'probing',
  gpu: null,
  gpuMessage: '',
  gpuRecovering: false,
  gpuNotice: '',
  dismissGpuNotice() {
    set({ gpuNotice: '' });
  },
  applyEngineEvent(event) {
    switch (event.type) {
      case 'gpu-ready':
        set({ gpuStatus: 'ready', gpu: event.gpu, gpuMessage: '', gpuRecovering: false });
        break;
      case 'gpu-unavailable':
        set({ gpuStatus: 'unavailable', gpuMessage: event.message, gpuRecovering: false });
        break;
      case 'gpu-lost':
        set({ gpuStatus: 'lost', gpuMessage: `The GPU device was lost (${event.reason}): ${event.message}`, gpuRecovering: false, gpuNotice: '' });
        break;
      case 'gpu-recovering':
        set({ gpuStatus: 'lost', gpuMessage: event.message, gpuRecovering: true, gpuNotice: '' });
        break;
      case 'gpu-recovered':
        set({ gpuStatus: 'ready', gpu: event.gpu, gpuMessage: '', gpuRecovering: false, gpuNotice: event.message });
        break;
      case 'error':
        // Errors that answer a request (a model that failed to load) belong to that request's slice.
        if (event.id === undefined) set({ gpuStatus: 'error', gpuMessage: event.message });
        break;
    }
  },
});
