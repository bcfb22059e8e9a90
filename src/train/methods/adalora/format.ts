// Reading an AdaLoRA adapter as PEFT 0.21 saves it (peft_type ADALORA: lora_A [k, in], lora_E [k, 1], lora_B [out, k]
// per module, k the module's kept rank from rank_pattern, or init_r without one) into the engine's LoRA form: the
// layer is y = W·x + s·B·(A ⊙ E)·x with s = lora_alpha / (init_r + 1e-5) (PEFT's resize keeps ranknum = init_r), so
// each module becomes a LoRA pair of rank init_r with A' = diag(E)·A in the kept rows and zeros elsewhere — exactly
// the same layer, which evaluates, generates and merges (W + s·B·A') as LoRA does. The SVD tensors are kept too
// (`adalora`), padded back to init_r with the rank mask, for continuing to train.
import type { ModelConfig } from '../../../model/config.ts';
import type { SafetensorsFile } from '../../../model/safetensors.ts';
import { basePrefix, linearModules, type LinearModule } from '../../../model/weights.ts';
import { AdapterError } from '../../adapter-error.ts';
import type { AdapterModule, LoraAdapter, PeftAdapterConfig } from '../../peft.ts';
import { adaloraScale } from './config.ts';

/** One module's AdaLoRA tensors padded back to init_r: dropped triplets are zero rows/columns with mask 0. */
export interface AdaloraModuleTensors {
  A: Float32Array; // [init_r, in]
  B: Float32Array; // [out, init_r]
  E: Float32Array; // [init_r]
  mask: Float32Array; // [init_r], 1 kept
}

export interface AdaloraImport {
  initR: number;
  /** adapter_config.json's schedule, for a continuation's config. */
  targetR: number;
  tinit: number;
  tfinal: number;
  deltaT: number;
  totalStep: number;
  beta1: number;
  beta2: number;
  orthRegWeight: number;
  /** By module path, in forward order. */
  tensors: Map<string, AdaloraModuleTensors>;
}

const KEY_RE = /^(?:base_model\.model\.)?(.+)\.lora_([AEB])(?:\.default)?(?:\.weight)?$/;

function num(c: Record<string, unknown>, key: string, fallback: number, problems: string[], integer = true): number {
  const v = c[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    problems.push(`"${key}" must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(c[key])}`);
    return fallback;
  }
  return v;
}

/** adapter_config.json of an AdaLoRA adapter, checked; everything wrong in one AdapterError. */
export function checkAdaloraConfig(where: string, json: unknown): PeftAdapterConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new AdapterError(where, ['not a JSON object']);
  const c = json as Record<string, unknown>;
  const problems: string[] = [];
  const initR = num(c, 'init_r', 12, problems);
  if (initR < 1) problems.push(`"init_r" must be positive, got ${initR}`);
  const alpha = c.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !(alpha > 0)) problems.push(`"lora_alpha" must be a positive number, got ${JSON.stringify(c.lora_alpha)}`);
  if (c.bias !== undefined && c.bias !== 'none') problems.push(`bias is ${JSON.stringify(c.bias)}: only "none" is supported (trained biases are not applied)`);
  if (Array.isArray(c.modules_to_save) && c.modules_to_save.length) problems.push(`modules_to_save ${JSON.stringify(c.modules_to_save)}: fully trained module copies are not supported`);
  if (c.task_type != null && c.task_type !== 'CAUSAL_LM') problems.push(`task_type is ${JSON.stringify(c.task_type)}; expected "CAUSAL_LM"`);
  const rp = c.rank_pattern;
  if (rp != null) {
    if (typeof rp !== 'object' || Array.isArray(rp)) problems.push(`rank_pattern must be an object of boolean lists, got ${JSON.stringify(rp)}`);
    else {
      for (const [k, v] of Object.entries(rp)) {
        if (!Array.isArray(v) || v.length !== initR || v.some((b) => typeof b !== 'boolean')) problems.push(`rank_pattern["${k}"] must be ${initR} booleans (init_r), got ${JSON.stringify(v)}`);
      }
    }
  }
  if (problems.length) throw new AdapterError(where, problems);
  return { ...c, lora_alpha: alpha as number, lora_dropout: typeof c.lora_dropout === 'number' ? c.lora_dropout : 0, use_rslora: false, use_dora: false, fan_in_fan_out: c.fan_in_fan_out === true, bias: 'none' } as PeftAdapterConfig;
}

/** The adapter's tensors against `model`, as the engine's LoRA form plus the padded SVD tensors. */
export async function readAdaloraTensors(where: string, file: SafetensorsFile, config: PeftAdapterConfig, model: ModelConfig): Promise<LoraAdapter> {
  const c = config as Record<string, unknown>;
  const problems: string[] = [];
  const initR = c.init_r as number;
  const modules = linearModules(model);
  const prefix = basePrefix(model);
  const byPath = new Map<string, LinearModule>();
  for (const m of modules) {
    byPath.set(m.peftPath, m);
    byPath.set(m.peftPath.slice(prefix.length), m);
  }
  const found = new Map<LinearModule, Partial<Record<'A' | 'E' | 'B', string>>>();
  for (const key of file.names()) {
    const match = KEY_RE.exec(key);
    const m = match ? byPath.get(match[1]) : undefined;
    if (!match) problems.push(`tensor "${key}" is not an AdaLoRA lora_A, lora_E or lora_B`);
    else if (!m) problems.push(`tensor "${key}": the ${model.modelType} model has no linear layer "${match[1]}"`);
    else {
      const slot = found.get(m) ?? {};
      slot[match[2] as 'A' | 'E' | 'B'] = key;
      found.set(m, slot);
    }
  }
  const rp = (c.rank_pattern ?? null) as Record<string, boolean[]> | null;
  const out: AdapterModule[] = [];
  const tensors = new Map<string, AdaloraModuleTensors>();
  for (const m of modules.filter((x) => found.has(x))) {
    const keys = found.get(m)!;
    const missing = (['A', 'E', 'B'] as const).filter((w) => !keys[w]);
    if (missing.length) {
      problems.push(`${m.peftPath} has no ${missing.map((w) => `lora_${w}`).join(', ')}`);
      continue;
    }
    const pattern = rp ? (rp[`${m.peftPath}.lora_E`] ?? rp[`${m.peftPath.slice(prefix.length)}.lora_E`]) : undefined;
    if (rp && !pattern) {
      problems.push(`rank_pattern has no entry "${m.peftPath}.lora_E"`);
      continue;
    }
    const kept = pattern ? pattern.flatMap((b, i) => (b ? [i] : [])) : Array.from({ length: initR }, (_, i) => i);
    const k = kept.length;
    const want: Record<'A' | 'E' | 'B', number[]> = { A: [k, m.inFeatures], E: [k, 1], B: [m.outFeatures, k] };
    let bad = false;
    for (const w of ['A', 'E', 'B'] as const) {
      const shape = file.info(keys[w]!).shape;
      if (shape.length !== 2 || shape[0] !== want[w][0] || shape[1] !== want[w][1]) {
        problems.push(`tensor "${keys[w]}" has shape [${shape.join(', ')}], expected [${want[w].join(', ')}] (rank ${k} of init_r ${initR}${pattern ? ' by rank_pattern' : ''})`);
        bad = true;
      }
    }
    if (bad) continue;
    const [a, e, b] = await Promise.all((['A', 'E', 'B'] as const).map((w) => file.readTensor(keys[w]!, 'f32')));
    const A = new Float32Array(initR * m.inFeatures);
    const B = new Float32Array(m.outFeatures * initR);
    const E = new Float32Array(initR);
    const mask = new Float32Array(initR);
    const Aeff = new Float32Array(initR * m.inFeatures);
    kept.forEach((i, row) => {
      E[i] = e[row];
      mask[i] = 1;
      for (let x = 0; x < m.inFeatures; x++) {
        A[i * m.inFeatures + x] = a[row * m.inFeatures + x];
        Aeff[i * m.inFeatures + x] = e[row] * a[row * m.inFeatures + x];
      }
      for (let o = 0; o < m.outFeatures; o++) B[o * initR + i] = b[o * k + row];
    });
    tensors.set(m.peftPath, { A, B, E, mask });
    out.push({ peftPath: m.peftPath, inFeatures: m.inFeatures, outFeatures: m.outFeatures, A: Aeff, B, module: m });
  }
  if (out.length === 0 && problems.length === 0) problems.push('no AdaLoRA tensors');
  if (problems.length) throw new AdapterError(where, problems);
  const alpha = config.lora_alpha;
  const n = (key: string, fallback: number) => (typeof c[key] === 'number' ? (c[key] as number) : fallback);
  return {
    kind: 'lora',
    config,
    rank: initR,
    alpha,
    rslora: false,
    scale: adaloraScale(alpha, initR),
    dropout: config.lora_dropout,
    modules: out,
    warnings: [],
    adalora: {
      initR,
      targetR: n('target_r', 8),
      tinit: n('tinit', 0),
      tfinal: n('tfinal', 0),
      deltaT: n('deltaT', 1),
      totalStep: n('total_step', 0),
      beta1: n('beta1', 0.85),
      beta2: n('beta2', 0.85),
      orthRegWeight: n('orth_reg_weight', 0.5),
      tensors,
    },
  };
}
