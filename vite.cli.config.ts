import { defineConfig } from 'vite';

// The headless CLI (`npx lora-studio`): the same engine as the studio, bundled for Node so that .ts sources and
// `?raw` WGSL imports work without a loader. npm packages stay external and load from node_modules.
export default defineConfig({
  build: {
    ssr: 'src/cli/main.ts',
    outDir: 'dist-cli',
    target: 'node20',
    sourcemap: true,
    emptyOutDir: true,
    rollupOptions: { output: { entryFileNames: 'cli.mjs', format: 'es' } },
  },
  logLevel: 'warn',
});
