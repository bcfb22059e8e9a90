// The browser host: navigator.gpu in a page or a worker.
import { openGpu, type Gpu, type OpenGpuOptions } from './device.ts';

export function openBrowserGpu(options: OpenGpuOptions = {}): Promise<Gpu> {
  const gpu = typeof navigator !== 'undefined' ? navigator.gpu : undefined;
  return openGpu(gpu, {
    noAdapterHint: 'Enable WebGPU in your browser (on Linux Chrome: chrome://flags/#enable-unsafe-webgpu) and check chrome://gpu.',
    ...options,
  });
}
