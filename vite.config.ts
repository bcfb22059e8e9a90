import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';

// The studio: a static single-page app. The engine runs in a module worker (src/train/engine-worker.ts) that alone
// owns the GPU device.

// ---------------------------------------------------------------------------------------------------------------
// Content-Security-Policy (issue 14): scripts and workers from this origin only, no eval (nothing the app bundles
// needs it: @huggingface/jinja interprets templates, @huggingface/tokenizers is plain JS, no WebAssembly), network
// to this origin and the Hugging Face Hub only (downloads redirect to *.huggingface.co and *.hf.co CDNs).
// LORA_STUDIO_CONNECT_SRC adds origins at build time (space-separated, e.g. a Hub mirror: "https://hf-mirror.com");
// the e2e build adds http://127.0.0.1:* for its fake Hub (scripts/run-suite.mjs). A Hub address typed into the
// Models screen that is not one of these is refused with a message saying so (src/model/sources/connect-policy.ts).
//
// Delivered twice: a <meta> tag in the built index.html (any static host; it covers the page) and a response header
// from `vite preview` (it also covers the engine worker, whose policy comes with its script's response, and which is
// what downloads from the Hub). The dev server (`npm start`) has none: React's refresh preamble is an inline script.
export const HUB_CONNECT_SRC = ['https://huggingface.co', 'https://*.huggingface.co', 'https://*.hf.co'];

export function contentSecurityPolicy(extraConnectSrc: string[] = [], { meta = false } = {}): string {
  const directives: [string, ...string[]][] = [
    ['default-src', "'self'"],
    ['script-src', "'self'"],
    ['worker-src', "'self'"],
    ['connect-src', "'self'", ...HUB_CONNECT_SRC, ...extraConnectSrc],
    ['img-src', "'self'", 'data:', 'blob:'],
    ['style-src', "'self'"],
    ['font-src', "'self'"],
    ['object-src', "'none'"],
    ['base-uri', "'self'"],
    ['form-action', "'none'"],
  ];
  if (!meta) directives.push(['frame-ancestors', "'none'"]); // ignored (with a console warning) in a <meta> tag
  return directives.map((d) => d.join(' ')).join('; ');
}

const extraConnectSrc = (process.env.LORA_STUDIO_CONNECT_SRC ?? '').split(/\s+/).filter(Boolean);

function cspMetaTag(): Plugin {
  return {
    name: 'lora-studio-csp',
    apply: 'build',
    transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: contentSecurityPolicy(extraConnectSrc, { meta: true }) }, injectTo: 'head-prepend' }],
  };
}

export default defineConfig(({ command }) => ({
  plugins: [react(), cspMetaTag()],
  // The policy's connect-src, for src/model/sources/connect-policy.ts (null in the dev server, which has no policy).
  define: { __LORA_STUDIO_CONNECT_SRC__: JSON.stringify(command === 'build' ? ["'self'", ...HUB_CONNECT_SRC, ...extraConnectSrc] : null) },
  worker: { format: 'es' },
  build: { target: 'es2022', outDir: 'dist', sourcemap: true },
  server: { host: '127.0.0.1', port: 5173 },
  preview: { host: '127.0.0.1', headers: { 'Content-Security-Policy': contentSecurityPolicy(extraConnectSrc) } },
}));
