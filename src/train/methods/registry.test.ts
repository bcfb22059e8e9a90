// Every method in the registry is complete: a GPU runtime, settings that are config fields, a parameter count that
// agrees with its tensors, and the files that prove it (reference, goldens against PEFT, export/import tests, merge).
// Adding a method without one of these fails here, naming what is missing. Each method's saved adapter also imports
// back as that method (adapterMethod), which is how the studio and the CLI name an imported adapter and continue it.
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig, SUPPORTED_MODEL_TYPES } from '../../model/config.ts';
import { memoryFolder } from '../../model/sources/memory.ts';
import { DEFAULT_CONFIG } from '../config.ts';
import { adapterMethod, importAnyAdapter } from '../peft.ts';
import { METHOD_IDS } from './ids.ts';
import { countTrainable } from './method.ts';
import { continuationMethod, METHODS } from './registry.ts';
import { METHOD_RUNTIMES } from './runtimes.ts';
import { resolveTargets } from './targets.ts';

const ROOT = join(import.meta.dirname, '../../..');
const llama = parseModelConfig(
  { model_type: 'llama', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1 },
  't',
);

describe.each(METHOD_IDS.map((id) => [id]))('method %s', (id) => {
  const method = METHODS[id];

  it('is registered under its id, with a GPU runtime', () => {
    expect(method?.id).toBe(id);
    expect(METHOD_RUNTIMES[id]?.id).toBe(id);
    expect(method.label.length).toBeGreaterThan(0);
    expect(method.explanation.length).toBeGreaterThan(20);
    expect(method.advice.length).toBeGreaterThan(20);
  });

  it('has settings that are config fields and a default target list for every architecture', () => {
    for (const s of method.settings) expect(Object.keys(DEFAULT_CONFIG), `setting ${String(s)}`).toContain(s);
    for (const t of SUPPORTED_MODEL_TYPES) expect(method.defaultTargets[t], `default targets for ${t}`).toBeDefined();
  });

  it('counts the parameters its tensors hold, and validates the default config', () => {
    const c = { ...DEFAULT_CONFIG, method: id };
    const { modules } = resolveTargets(llama, [], method.defaultTargets);
    expect(method.footprint(modules, c, llama).params).toBe(countTrainable(method, modules, c, llama));
    expect(countTrainable(method, modules, c, llama), 'trains something').toBeGreaterThan(0);
    const names = [...(method.ownTensors?.(llama, c) ?? []), ...modules.flatMap((m) => method.tensors(m, c))].map((t) => t.name);
    expect(new Set(names).size, 'segment names are unique').toBe(names.length);
    expect(method.validate(c)).toEqual([]);
  });

  it('names the files that prove it, and they exist', () => {
    const { proof } = method;
    const files = [proof.reference, ...proof.goldens, ...proof.exportImport, ...(proof.merge ? [proof.merge] : [])];
    expect(proof.goldens.length, 'golden runs against PEFT').toBeGreaterThan(0);
    if (method.peftType) expect(proof.exportImport.length, 'PEFT export/import tests').toBeGreaterThan(0);
    for (const f of files) expect(existsSync(join(ROOT, f)), f).toBe(true);
  });

  // Full fine-tuning saves the model's weights, not an adapter (exports "model"): there is no adapter to import.
  it.runIf(method.exports === 'adapter')('saves an adapter that imports back as this method, continued by continuationMethod', async () => {
    const c = { ...DEFAULT_CONFIG, method: id, totalStep: 10 }; // total_step as a run resolves it (AdaLoRA's planSteps)
    const { modules, targetModules } = resolveTargets(llama, [], method.defaultTargets);
    const tensors = new Map(
      [...(method.ownTensors?.(llama, c) ?? []), ...modules.flatMap((m) => method.tensors(m, c))].map((t) => [
        t.name,
        // State segments hold flags (AdaLoRA's rank mask: all kept); the rest small distinct values.
        Float32Array.from({ length: t.length }, (_, i) => (t.state ? 1 : Math.sin(i + 1) / 10)),
      ]),
    );
    const files = method.exportAdapter({ tensors, modules, targetModules, config: c, model: llama, baseModel: 't' });
    const adapter = await importAnyAdapter(memoryFolder({ ...files }), llama);
    expect(adapterMethod(adapter)).toBe(id);
    // Only P-tuning's adapter lacks what its method trains (the prompt encoder): it continues as prompt tuning.
    expect(continuationMethod(id)).toBe(id === 'p-tuning' ? 'prompt-tuning' : id);
  });
});
