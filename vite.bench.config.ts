import { defineConfig } from 'vite';

// The benchmark suite (`npm run bench`), bundled for Node like the CLI so that .ts sources and `?raw` WGSL imports
// work without a loader. TensorFlow.js (the peer) is bundled in too, with its dependencies `long` and
// `seedrandom` (left external, tfjs-core fails to load where there is no node_modules and the peer drops out), so a
// copy of the build (dist-bench; dist-device for bench/device.sh) plus the `webgpu` package (dawn.node, a native
// addon that cannot be bundled) is all a GPU machine needs (see bench/device.sh).
export default defineConfig({
  build: {
    ssr: 'bench/main.ts',
    outDir: 'dist-bench',
    target: 'node20',
    sourcemap: true,
    emptyOutDir: true,
    rollupOptions: { output: { entryFileNames: 'bench.mjs', format: 'es' } },
  },
  ssr: { noExternal: [/^@tensorflow\//, 'long', 'seedrandom'] },
  publicDir: false,
  logLevel: 'warn',
});
