// The bottleneck adapters' file layout (PEFT has none; this one is the studio's, "lora-studio-bottleneck/1"), written
// by config.ts's exportAdapter and read back here — for eval/generate --adapter, the studio, and continuing a run.
//
//   adapter_config.json
//     {
//       "adapter_type": "bottleneck",
//       "config": "houlsby" | "pfeiffer",          the registry method that trained it
//       "reduction_factor": 16,                    bottleneck_size = max(1, ⌊out_features / reduction_factor⌋)
//       "bottleneck_size": m,                      of the first module (every module's own m is its tensors' shape)
//       "non_linearity": "relu" | "gelu_new" | "silu",
//       "target_modules": [module paths],          inside the *ForCausalLM, e.g. "model.layers.0.mlp.down_proj"
//       "base_model_name_or_path": "...",
//       "format": "lora-studio-bottleneck/1"
//     }
//   adapter_model.safetensors, F32, per wrapped module (out = the module's out_features):
//     "<module path>.adapter_down.weight"  [m, out]      nn.Linear(out, m): D
//     "<module path>.adapter_down.bias"    [m]           b_d
//     "<module path>.adapter_up.weight"    [out, m]      nn.Linear(m, out): U
//     "<module path>.adapter_up.bias"      [out]         b_u
//
// The module's output becomes h + adapter_up(act(adapter_down(h))), h = the module's own output (bias included): a
// forward hook on the module in PyTorch (scripts/golden_bottleneck.py loads this folder that way).
import type { ModelConfig } from '../../../model/config.ts';
import type { SafetensorsFile } from '../../../model/safetensors.ts';
import { basePrefix, linearModules, type LinearModule } from '../../../model/weights.ts';
import { AdapterError } from '../../adapter-error.ts';

export const BOTTLENECK_FORMAT = 'lora-studio-bottleneck/1';
export const BOTTLENECK_CONFIGS = ['houlsby', 'pfeiffer'] as const;
export type BottleneckConfigName = (typeof BOTTLENECK_CONFIGS)[number];
export const ADAPTER_ACTIVATIONS = ['relu', 'gelu_new', 'silu'] as const;
export type AdapterActivation = (typeof ADAPTER_ACTIVATIONS)[number];

export type BottleneckPart = 'adapter_down.weight' | 'adapter_down.bias' | 'adapter_up.weight' | 'adapter_up.bias';
export const BOTTLENECK_PARTS: readonly BottleneckPart[] = ['adapter_down.weight', 'adapter_down.bias', 'adapter_up.weight', 'adapter_up.bias'];

/** m for a layer of `outFeatures` outputs: adapter-transformers' down_sample = out // reduction_factor, at least 1. */
export function bottleneckSize(outFeatures: number, reductionFactor: number): number {
  return Math.max(1, Math.floor(outFeatures / reductionFactor));
}

/** A tensor's name in the file, which is also its trainable segment's name. */
export function bottleneckTensorName(peftPath: string, part: BottleneckPart): string {
  return `${peftPath}.${part}`;
}

/** Each part's shape on a module with m = `size`. */
export function bottleneckShape(part: BottleneckPart, out: number, size: number): number[] {
  return { 'adapter_down.weight': [size, out], 'adapter_down.bias': [size], 'adapter_up.weight': [out, size], 'adapter_up.bias': [out] }[part];
}

export interface BottleneckFileConfig {
  adapter_type: 'bottleneck';
  config: BottleneckConfigName;
  reduction_factor: number;
  bottleneck_size: number;
  non_linearity: AdapterActivation;
  target_modules: string[];
  base_model_name_or_path: string;
  format: string;
}

export interface BottleneckModuleWeights {
  module: LinearModule;
  peftPath: string;
  /** m of this module. */
  size: number;
  D: Float32Array; // (m, out)
  bd: Float32Array; // (m)
  U: Float32Array; // (out, m)
  bu: Float32Array; // (out)
}

/** A bottleneck adapter read from a file, checked against a model. */
export interface BottleneckAdapter {
  kind: 'bottleneck';
  where: string;
  config: BottleneckFileConfig;
  /** The registry method that trains it. */
  method: BottleneckConfigName;
  reductionFactor: number;
  activation: AdapterActivation;
  /** In the model's forward order. */
  modules: BottleneckModuleWeights[];
  warnings: string[];
}

/** A bottleneck method's name in a sentence ("a Houlsby bottleneck adapter"): its paper's first author. */
export function bottleneckName(method: BottleneckConfigName): string {
  return method === 'houlsby' ? 'Houlsby' : 'Pfeiffer';
}

/** Why `what` (merge, the GGUF export, the TRL export) refuses a bottleneck adapter, naming it. */
export function bottleneckRefusal(what: string, method: BottleneckConfigName, where: string): string {
  return (
    `${where} is a ${bottleneckName(method)} bottleneck adapter (--method ${method}): ${what} does not take it — its non-linear ` +
    'adapter (up(act(down(h)))) cannot fold into the weights, and it is not a PEFT adapter. Use it with eval or generate --adapter'
  );
}

/** Whether an adapter_config.json is a bottleneck adapter's (rather than PEFT's). */
export function isBottleneckConfig(json: unknown): boolean {
  return typeof json === 'object' && json !== null && (json as { adapter_type?: unknown }).adapter_type === 'bottleneck';
}

/** The segment names → values a run continuing from this adapter starts from (Trainer's `initial`). */
export function bottleneckInitial(adapter: Pick<BottleneckAdapter, 'modules'>): Map<string, Float32Array> {
  return new Map(
    adapter.modules.flatMap((m) => [
      [bottleneckTensorName(m.peftPath, 'adapter_down.weight'), m.D] as const,
      [bottleneckTensorName(m.peftPath, 'adapter_down.bias'), m.bd] as const,
      [bottleneckTensorName(m.peftPath, 'adapter_up.weight'), m.U] as const,
      [bottleneckTensorName(m.peftPath, 'adapter_up.bias'), m.bu] as const,
    ]),
  );
}

function checkConfig(where: string, json: unknown): BottleneckFileConfig {
  const c = json as Record<string, unknown>;
  const problems: string[] = [];
  if (c.format !== BOTTLENECK_FORMAT) problems.push(`format is ${JSON.stringify(c.format)}; this version reads "${BOTTLENECK_FORMAT}"`);
  if (!(BOTTLENECK_CONFIGS as readonly unknown[]).includes(c.config)) problems.push(`config is ${JSON.stringify(c.config)}: must be one of ${BOTTLENECK_CONFIGS.join(', ')}`);
  if (!(ADAPTER_ACTIVATIONS as readonly unknown[]).includes(c.non_linearity)) {
    problems.push(`non_linearity is ${JSON.stringify(c.non_linearity)}: must be one of ${ADAPTER_ACTIVATIONS.join(', ')}`);
  }
  if (typeof c.reduction_factor !== 'number' || !(c.reduction_factor > 0)) problems.push(`reduction_factor must be a positive number, got ${JSON.stringify(c.reduction_factor)}`);
  if (!Array.isArray(c.target_modules) || c.target_modules.some((t) => typeof t !== 'string')) {
    problems.push(`target_modules must be a list of module paths, got ${JSON.stringify(c.target_modules)}`);
  }
  if (problems.length) throw new AdapterError(where, problems);
  return c as unknown as BottleneckFileConfig;
}

const KEY_RE = /^(.+)\.(adapter_down\.weight|adapter_down\.bias|adapter_up\.weight|adapter_up\.bias)$/;

/** Reads a bottleneck adapter (adapter_config.json already parsed) and checks it against `model`: every tensor a part
 *  of one of its linear layers with the shapes above, all four parts per module, one m per module, finite values.
 *  Every problem is reported at once. */
export async function readBottleneckAdapter(where: string, json: unknown, file: SafetensorsFile, model: ModelConfig): Promise<BottleneckAdapter> {
  const config = checkConfig(`${where}/adapter_config.json`, json);
  const modules = linearModules(model);
  const prefix = basePrefix(model);
  const byPath = new Map<string, LinearModule>();
  for (const m of modules) {
    byPath.set(m.peftPath, m);
    byPath.set(m.peftPath.slice(prefix.length), m);
  }
  const problems: string[] = [];
  const found = new Map<LinearModule, Map<BottleneckPart, string>>();
  for (const key of file.names()) {
    const match = KEY_RE.exec(key.replace(/^base_model\.model\./, ''));
    if (!match) {
      problems.push(`tensor "${key}" is not a bottleneck adapter tensor (<module>.adapter_down|adapter_up.weight|bias)`);
      continue;
    }
    const m = byPath.get(match[1]);
    if (!m) {
      problems.push(`tensor "${key}": the ${model.modelType} model has no linear layer "${match[1]}"`);
      continue;
    }
    const parts = found.get(m) ?? new Map<BottleneckPart, string>();
    parts.set(match[2] as BottleneckPart, key);
    found.set(m, parts);
  }
  const sizes = new Map<LinearModule, number>();
  for (const [m, parts] of found) {
    const missing = BOTTLENECK_PARTS.filter((p) => !parts.has(p));
    if (missing.length) {
      problems.push(`${m.peftPath}: no ${missing.join(', ')}`);
      continue;
    }
    const size = file.info(parts.get('adapter_down.weight')!).shape[0];
    sizes.set(m, size);
    const want = bottleneckSize(m.outFeatures, config.reduction_factor);
    if (size !== want) {
      problems.push(`${m.peftPath}: a bottleneck of ${size}, but reduction_factor ${config.reduction_factor} gives max(1, ⌊${m.outFeatures} / ${config.reduction_factor}⌋) = ${want}`);
      continue;
    }
    for (const p of BOTTLENECK_PARTS) {
      const shape = file.info(parts.get(p)!).shape;
      const want = bottleneckShape(p, m.outFeatures, size);
      if (shape.length !== want.length || shape.some((d, i) => d !== want[i])) {
        problems.push(`tensor "${parts.get(p)}" has shape [${shape.join(', ')}], expected [${want.join(', ')}] (out_features ${m.outFeatures}, bottleneck ${size})`);
      }
    }
  }
  const listed = new Set(config.target_modules ?? []);
  for (const m of found.keys()) if (!listed.has(m.peftPath)) problems.push(`${m.peftPath} has tensors but is not in target_modules`);
  if (found.size === 0 && problems.length === 0) problems.push('adapter_model.safetensors holds no bottleneck adapter tensors');
  if (problems.length) throw new AdapterError(where, problems);
  const warnings: string[] = [];
  for (const t of config.target_modules) {
    if (![...found.keys()].some((m) => m.peftPath === t)) warnings.push(`target module ${t} has no tensors: it runs without an adapter`);
  }
  const out: BottleneckModuleWeights[] = [];
  for (const m of modules) {
    const parts = found.get(m);
    if (!parts) continue;
    const read = async (p: BottleneckPart) => {
      const key = parts.get(p)!;
      const v = (await file.readTensor(key, 'f32')).slice();
      const bad = v.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) throw new AdapterError(where, [`tensor "${key}" holds ${v[bad]} at ${bad}`]);
      return v;
    };
    out.push({
      module: m,
      peftPath: m.peftPath,
      size: sizes.get(m)!,
      D: await read('adapter_down.weight'),
      bd: await read('adapter_down.bias'),
      U: await read('adapter_up.weight'),
      bu: await read('adapter_up.bias'),
    });
  }
  return { kind: 'bottleneck', where, config, method: config.config, reductionFactor: config.reduction_factor, activation: config.non_linearity, modules: out, warnings };
}
