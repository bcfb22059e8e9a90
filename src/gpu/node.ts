// The Node host: dawn.node through the `webgpu` package (tests, CLI, benchmarks). Never imported by browser code.
import { create, globals } from 'webgpu';
import { openGpu, type Gpu, type OpenGpuOptions } from './device.ts';

// dawn.node's GPU object must outlive every device made from it: if it is garbage-collected while a device is in
// use, the process dies with SIGSEGV. So each one we create is kept here for the life of the process.
const keptAlive = new Map<string, GPU>();

export interface NodeGpuOptions extends OpenGpuOptions {
  /** Dawn toggles, e.g. ['backend=null'] to validate shaders without running them. */
  dawnFlags?: string[];
}

/** dawn.node's GPU entry point (navigator.gpu's twin) for the given Dawn flags, created once per flag set. */
export function nodeGpuEntry(dawnFlags: string[] = []): GPU {
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
  return openGpu(nodeGpuEntry(options.dawnFlags), { noAdapterHint: NODE_HINT, ...options });
}
