import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The studio: a static single-page app. The engine runs in a module worker (src/train/engine-worker.ts) that alone
// owns the GPU device.
export default defineConfig({
  plugins: [react()],
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', sourcemap: true },
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1' },
});
