// The Node host: dawn.node through the `webgpu` package (tests, CLI, benchmarks). Never imported by browser code.
import { create, globals } from 'webgpu';
import { openGpu, type Gpu, type OpenGpuOptions } from './device.ts';

// dawn.node's GPU object must outlive every device made from it: if it is garbage-collected while a device is in
// use, the process dies with SIGSEGV. So each one we create is kept here for the life of the process.
const keptAlive = new Map<string, GPU>();

export interface NodeGpuOptions extends OpenGpuOptions {
  /** Dawn toggles, e.g. ['backend=null'] to validate shaders without running them. */
  dawnFlags?: string[];
  /** Keep Dawn's default rounding of GPU timestamps to 65.536 µs (default false: see HONEST_TIMESTAMPS). */
  quantizeTimestamps?: boolean;
}

/** Dawn rounds every GPU timestamp down to a multiple of 65,536 ns by default (the `timestamp_quantization` toggle,
 *  a browser's defence against timing attacks), which leaves a 0.1 ms kernel known to ±1 tick. Node has nothing to
 *  defend, so the CLI, the benchmarks and the tests turn it off; the browser cannot (the tuner times ≥ 20 ticks). */
export const HONEST_TIMESTAMPS = 'timestamp_quantization';

/** The flags as given, with `disable-dawn-features` extended by the toggles in `disable` (dawn.node reads one
 *  comma-separated list per flag name; a second entry would replace the first). */
export function withDisabledFeatures(dawnFlags: readonly string[], disable: readonly string[]): string[] {
  if (disable.length === 0) return [...dawnFlags];
  const prefix = 'disable-dawn-features=';
  const i = dawnFlags.findIndex((f) => f.startsWith(prefix));
  if (i < 0) return [...dawnFlags, prefix + disable.join(',')];
  const given = dawnFlags[i].slice(prefix.length).split(',').filter(Boolean);
  const merged = [...given, ...disable.filter((t) => !given.includes(t))];
  return dawnFlags.map((f, j) => (j === i ? prefix + merged.join(',') : f));
}

/** dawn.node's GPU entry point (navigator.gpu's twin) for the given Dawn flags, created once per flag set; GPU
 *  timestamps are exact unless `quantizeTimestamps`. */
export function nodeGpuEntry(flags: string[] = [], options: { quantizeTimestamps?: boolean } = {}): GPU {
  const dawnFlags = withDisabledFeatures(flags, options.quantizeTimestamps ? [] : [HONEST_TIMESTAMPS]);
  const key = dawnFlags.join('\n');
  let entry = keptAlive.get(key);
  if (!entry) {
    Object.assign(globalThis, globals);
    entry = create(dawnFlags);
    keptAlive.set(key, entry);
  }
  return entry;
}

const NODE_HINT =
  'dawn.node needs a Vulkan driver: install your GPU\'s, or on Debian/Ubuntu without a GPU run `npm run setup:webgpu` ' +
  'and then `source .webgpu/lavapipe/env.sh` (a CPU driver: correct, slow).';

export function openNodeGpu(options: NodeGpuOptions = {}): Promise<Gpu> {
  return openGpu(nodeGpuEntry(options.dawnFlags, { quantizeTimestamps: options.quantizeTimestamps }), { noAdapterHint: NODE_HINT, ...options });
}
