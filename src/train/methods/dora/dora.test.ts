// DoRA's page-side module against the files the real PEFT wrote (tests/fixtures/golden/train_dora_*, by
// scripts/golden_dora.py): PEFT's saved adapter imports (use_dora, every lora_magnitude_vector) and exports back as
// the same files; the merge rule gives PEFT's merge_and_unload weight (GPT-2's Conv1D and Llama's nn.Linear); what
// cannot be applied is refused by name; the parameter count.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mismatches } from '../../../gpu/ref/testing.ts';
import { parseModelConfig, type ModelConfig } from '../../../model/config.ts';
import { SafetensorsFile, writeSafetensors } from '../../../model/safetensors.ts';
import { MemorySource, memoryFolder } from '../../../model/sources/memory.ts';
import { nodeFolder } from '../../../model/sources/node-file.ts';
import { DEFAULT_CONFIG } from '../../config.ts';
import { loraSegmentName } from '../../lora-names.ts';
import { adapterMerges } from '../../merge.ts';
import { AdapterError, importAdapter, importPeftAdapter, type LoraAdapter } from '../../peft.ts';
import { countTrainable } from '../method.ts';
import { resolveTargets } from '../targets.ts';
import { doraMagnitudeSegmentName, doraMagnitudeTensorName, doraMethod, mergeDoraWeight } from './config.ts';

const ROOT = join(import.meta.dirname, '../../../..');
const FIX = join(ROOT, 'tests/fixtures');
const fixture = (name: string): ModelConfig => parseModelConfig(JSON.parse(readFileSync(join(FIX, 'models', name, 'config.json'), 'utf8')), name);
const golden = (name: string) => JSON.parse(readFileSync(join(FIX, 'golden', `train_dora_${name}.json`), 'utf8'));

async function peftAdapter(name: string): Promise<LoraAdapter> {
  const a = await importPeftAdapter(nodeFolder(join(FIX, 'golden', `train_dora_${name}_adapter`)), fixture(name), name);
  if (a.kind !== 'lora') throw new Error('not LoRA');
  return a;
}

describe.each(['gpt2', 'llama', 'qwen3'])('DoRA and PEFT\'s files: %s', (name) => {
  it('imports PEFT\'s adapter and exports it back as the same files', async () => {
    const model = fixture(name);
    const adapter = await peftAdapter(name);
    expect(adapter.dora).toBe(true);
    const g = golden(name);
    expect(adapter.modules.map((m) => m.peftPath)).toEqual(g.modules.map((m: { path: string }) => m.path));
    for (const m of adapter.modules) expect(m.magnitude?.length, m.peftPath).toBe(m.outFeatures);
    const config = { ...DEFAULT_CONFIG, method: 'dora' as const, rank: adapter.rank, alpha: adapter.alpha, dropout: adapter.dropout };
    const { modules, targetModules } = resolveTargets(model, [], doraMethod.defaultTargets);
    const tensors = new Map(
      adapter.modules.flatMap((m) => [
        [loraSegmentName(m.peftPath, 'A'), m.A],
        [loraSegmentName(m.peftPath, 'B'), m.B],
        [doraMagnitudeSegmentName(m.peftPath), m.magnitude!],
      ]),
    );
    const files = doraMethod.exportAdapter({ tensors, modules, targetModules, config, model, baseModel: `tests/fixtures/models/${name}` });
    const dir = join(FIX, 'golden', `train_dora_${name}_adapter`);
    expect(JSON.parse(new TextDecoder().decode(files['adapter_config.json']))).toEqual(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')));
    const ours = await SafetensorsFile.open(new MemorySource('ours', files['adapter_model.safetensors']));
    const theirs = await SafetensorsFile.open((await nodeFolder(dir).open('adapter_model.safetensors'))!);
    expect(ours.names().sort()).toEqual(theirs.names().sort());
    expect(ours.names()).toContain(doraMagnitudeTensorName(modules[0].peftPath));
    for (const key of theirs.names()) {
      expect(ours.info(key).shape, key).toEqual(theirs.info(key).shape);
      expect(await ours.readTensor(key, 'f32'), key).toEqual(await theirs.readTensor(key, 'f32'));
    }
    // A, B and a magnitude per module, all counted.
    expect(countTrainable(doraMethod, modules, config)).toBe(modules.reduce((s, m) => s + config.rank * (m.inFeatures + m.outFeatures) + m.outFeatures, 0));
  });

  it('merges as PEFT\'s merge_and_unload: (m / ‖W + s·B·A‖) ⊙ (W + s·B·A) per output row', async () => {
    const g = golden(name);
    const adapter = await peftAdapter(name);
    const m = adapter.modules.find((x) => x.peftPath === g.merged.path)!;
    const base = await SafetensorsFile.open((await nodeFolder(join(FIX, 'models', name)).open('model.safetensors'))!);
    const key = base.names().find((k) => `transformer.${k}` === `${m.peftPath}.weight` || k === `${m.peftPath}.weight`)!;
    const W = await base.readTensor(key, 'f32');
    const merged = adapterMerges(adapter).get(`${m.module.canonical}.weight`)!(W);
    // f32 weights merged in float64 against PEFT's f32 arithmetic.
    expect(mismatches(merged, g.merged.weight, { abs: 1e-6, rel: 1e-6 })).toEqual([]);
    // Not the plain LoRA merge: the magnitudes moved, so rows are rescaled.
    const plain = W.slice();
    const direct = mergeDoraWeight(W, { out: m.outFeatures, in: m.inFeatures, r: adapter.rank, scale: 0, conv1d: m.module.fanInFanOut, A: m.A, B: m.B, m: m.magnitude!, where: 'x' });
    expect(mismatches(direct, plain, { abs: 1e-9, rel: 0 }).length).toBeGreaterThan(0);
  });
});

describe('DoRA import and export refusals', () => {
  it('names a wrong magnitude shape, a missing magnitude, and a NaN magnitude on export', async () => {
    const model = fixture('llama');
    const dir = join(FIX, 'golden', 'train_dora_llama_adapter');
    const config = readFileSync(join(dir, 'adapter_config.json'), 'utf8');
    const theirs = await SafetensorsFile.open((await nodeFolder(dir).open('adapter_model.safetensors'))!);
    const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
    for (const k of theirs.names()) tensors.set(k, { dtype: 'F32', shape: theirs.info(k).shape, data: await theirs.readTensor(k, 'f32') });
    const mag = [...tensors.keys()].find((k) => k.endsWith('lora_magnitude_vector'))!;
    const bad = new Map(tensors);
    bad.set(mag, { dtype: 'F32', shape: [3], data: new Float32Array(3) });
    const err = await importPeftAdapter(memoryFolder({ 'adapter_config.json': config, 'adapter_model.safetensors': writeSafetensors(bad) }), model).catch((x) => x);
    expect(err).toBeInstanceOf(AdapterError);
    expect(err.problems[0]).toMatch(/lora_magnitude_vector" has shape \[3\], expected \[\d+\]/);
    const missing = new Map(tensors);
    missing.delete(mag);
    const err2 = await importPeftAdapter(memoryFolder({ 'adapter_config.json': config, 'adapter_model.safetensors': writeSafetensors(missing) }), model).catch((x) => x);
    expect(err2.problems).toEqual([expect.stringMatching(/has lora_A and lora_B but no lora_magnitude_vector, which use_dora true needs$/)]);
    // The plain-LoRA reader (TRL export, LoRA GGUF) says why it cannot take one.
    const err3 = await importAdapter(nodeFolder(dir), model, 'dora').catch((x) => x);
    expect(err3.message).toMatch(/use_dora is true: this needs a plain LoRA adapter/);

    const c = { ...DEFAULT_CONFIG, method: 'dora' as const };
    const { modules, targetModules } = resolveTargets(model, [], doraMethod.defaultTargets);
    const values = new Map(modules.flatMap((m) => doraMethod.tensors(m, c)).map((t) => [t.name, new Float32Array(t.length).fill(0.5)]));
    values.get(doraMagnitudeSegmentName(modules[1].peftPath))![2] = Number.NaN;
    expect(() => doraMethod.exportAdapter({ tensors: values, modules, targetModules, config: c, model, baseModel: 'x' })).toThrow(
      `${doraMagnitudeTensorName(modules[1].peftPath)} holds NaN at 2: refusing to save a diverged adapter`,
    );
  });
});
