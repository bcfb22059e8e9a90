// The bottleneck adapters' page-side module: placements per architecture, bottleneck sizes, parameter counts, decay
// flags, settings validation, and the documented file layout written and read back (format.ts), refusing what is
// wrong with a file all at once.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configFromFlags } from '../../../cli/train.ts';
import { parseModelConfig, SUPPORTED_MODEL_TYPES, type ModelConfig } from '../../../model/config.ts';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../../model/safetensors.ts';
import { memoryFolder, MemorySource } from '../../../model/sources/memory.ts';
import { DEFAULT_CONFIG, normalizeConfig, validateConfig, type TrainConfig } from '../../config.ts';
import { bottleneckWeightsLimit } from '../../adapter-archive.ts';
import { importAnyAdapter, zipAdapter } from '../../peft.ts';
import { METHODS } from '../registry.ts';
import { resolveTargets } from '../targets.ts';
import { bottleneckInitial, bottleneckRefusal, bottleneckSize } from './format.ts';

const ROOT = join(import.meta.dirname, '../../../..');
const fixture = (name: string): ModelConfig =>
  parseModelConfig(JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/models', name, 'config.json'), 'utf8')), name);
const cfg = (method: 'houlsby' | 'pfeiffer', o: Partial<TrainConfig> = {}): TrainConfig => ({ ...DEFAULT_CONFIG, method, reductionFactor: 8, ...o });

function exportFor(method: 'houlsby' | 'pfeiffer', model: ModelConfig, c = cfg(method), fill = (i: number) => Math.sin(i + 1) / 10) {
  const { modules, targetModules } = resolveTargets(model, [], METHODS[method].defaultTargets);
  const tensors = new Map(modules.flatMap((m) => METHODS[method].tensors(m, c)).map((t) => [t.name, Float32Array.from({ length: t.length }, (_, i) => fill(i))]));
  return { modules, tensors, files: METHODS[method].exportAdapter({ tensors, modules, targetModules, config: c, model, baseModel: `tests/fixtures/models/${model.modelType}` }) };
}

describe('bottleneck adapters', () => {
  it('Houlsby wraps the attention output and the MLP output, Pfeiffer the MLP output only, on every architecture', () => {
    for (const type of SUPPORTED_MODEL_TYPES) {
      const model = fixture(type);
      const houlsby = resolveTargets(model, [], METHODS.houlsby.defaultTargets).modules.map((m) => m.canonical);
      const pfeiffer = resolveTargets(model, [], METHODS.pfeiffer.defaultTargets).modules.map((m) => m.canonical);
      const layers = model.numLayers;
      expect(houlsby, type).toEqual(Array.from({ length: layers }, (_, i) => [`layers.${i}.attn.o`, `layers.${i}.mlp.down`]).flat());
      expect(pfeiffer, type).toEqual(Array.from({ length: layers }, (_, i) => `layers.${i}.mlp.down`));
    }
    expect(resolveTargets(fixture('gpt2'), [], METHODS.houlsby.defaultTargets).modules.map((m) => m.peftPath)).toEqual([
      'transformer.h.0.attn.c_proj',
      'transformer.h.0.mlp.c_proj',
      'transformer.h.1.attn.c_proj',
      'transformer.h.1.mlp.c_proj',
    ]);
  });

  it('sizes the bottleneck as out // reduction_factor, at least 1; decays the weights, not the biases', () => {
    expect(bottleneckSize(768, 16)).toBe(48);
    expect(bottleneckSize(32, 8)).toBe(4);
    expect(bottleneckSize(32, 3)).toBe(10);
    expect(bottleneckSize(32, 64)).toBe(1);
    const model = fixture('llama');
    const { modules } = resolveTargets(model, [], METHODS.houlsby.defaultTargets);
    const t = METHODS.houlsby.tensors(modules[0], cfg('houlsby'));
    expect(t.map((x) => [x.name, x.length, x.decay])).toEqual([
      ['model.layers.0.self_attn.o_proj.adapter_down.weight', 4 * 32, true],
      ['model.layers.0.self_attn.o_proj.adapter_down.bias', 4, false],
      ['model.layers.0.self_attn.o_proj.adapter_up.weight', 32 * 4, true],
      ['model.layers.0.self_attn.o_proj.adapter_up.bias', 32, false],
    ]);
    expect(METHODS.houlsby.footprint(modules, cfg('houlsby'))).toEqual({ params: 4 * (2 * 4 * 32 + 4 + 32), activationsPerToken: 4 * (32 + 2 * 4) });
  });

  it('validates its settings with ranges, on the CLI as flags', () => {
    expect(validateConfig(cfg('houlsby'))).toEqual([]);
    expect(validateConfig(cfg('houlsby', { reductionFactor: 0.5 })).map((e) => e.field)).toEqual(['reductionFactor']);
    expect(validateConfig(cfg('pfeiffer', { adapterActivation: 'tanh' as never })).map((e) => e.field)).toEqual(['adapterActivation']);
    expect(configFromFlags({ method: 'houlsby', 'reduction-factor': '4', 'adapter-activation': 'silu' })).toMatchObject({ method: 'houlsby', reductionFactor: 4, adapterActivation: 'silu' });
    expect(() => configFromFlags({ method: 'pfeiffer', 'reduction-factor': '0' })).toThrow(/--reduction-factor "0": must be a number ≥ 1/);
    expect(() => configFromFlags({ method: 'pfeiffer', 'adapter-activation': 'tanh' })).toThrow(/--adapter-activation "tanh": must be relu, gelu_new or silu/);
    // A config saved before these settings existed takes their defaults.
    const { reductionFactor: _r, adapterActivation: _a, ...old } = DEFAULT_CONFIG;
    expect(validateConfig(normalizeConfig(old as TrainConfig))).toEqual([]);
  });

  it.each(['gpt2', 'llama', 'qwen3'])('%s: exports the documented layout and imports it back', async (name) => {
    const model = fixture(name);
    for (const method of ['houlsby', 'pfeiffer'] as const) {
      const c = cfg(method, { adapterActivation: 'gelu_new' });
      const { modules, tensors, files } = exportFor(method, model, c);
      const config = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
      expect(config).toEqual({
        adapter_type: 'bottleneck',
        config: method,
        reduction_factor: 8,
        bottleneck_size: 4,
        non_linearity: 'gelu_new',
        target_modules: modules.map((m) => m.peftPath),
        base_model_name_or_path: `tests/fixtures/models/${name}`,
        format: 'lora-studio-bottleneck/1',
      });
      const st = await SafetensorsFile.open(new MemorySource('x', files['adapter_model.safetensors']));
      for (const m of modules) {
        expect(st.info(`${m.peftPath}.adapter_down.weight`).shape).toEqual([4, m.outFeatures]);
        expect(st.info(`${m.peftPath}.adapter_down.bias`).shape).toEqual([4]);
        expect(st.info(`${m.peftPath}.adapter_up.weight`).shape).toEqual([m.outFeatures, 4]);
        expect(st.info(`${m.peftPath}.adapter_up.bias`).shape).toEqual([m.outFeatures]);
      }
      const back = await importAnyAdapter(memoryFolder({ ...files }), model, 'ours');
      if (back.kind !== 'bottleneck') throw new Error(back.kind);
      expect(back).toMatchObject({ method, reductionFactor: 8, activation: 'gelu_new', warnings: [] });
      expect(back.modules.map((m) => m.peftPath)).toEqual(modules.map((m) => m.peftPath));
      const initial = bottleneckInitial(back);
      expect([...initial.keys()].sort()).toEqual([...tensors.keys()].sort());
      for (const [k, v] of initial) expect(Array.from(v), k).toEqual(Array.from(tensors.get(k)!));
    }
  });

  it('imports from a .zip too, bounded by its reduction factor; a bottleneck that disagrees with it is refused', async () => {
    const model = fixture('gpt2');
    const { files, modules } = exportFor('houlsby', model);
    const back = await importAnyAdapter(zipAdapter(files), model, 'ours.zip');
    expect(back.kind === 'bottleneck' && back.modules.map((m) => m.peftPath)).toEqual(modules.map((m) => m.peftPath));
    const config = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    const lying = { ...files, 'adapter_config.json': new TextEncoder().encode(JSON.stringify({ ...config, reduction_factor: 16 })) };
    await expect(importAnyAdapter(memoryFolder(lying), model, 'x')).rejects.toThrow(/a bottleneck of 4, but reduction_factor 16 gives max\(1, ⌊32 \/ 16⌋\) = 2/);
    // Inflated within the bound for every linear layer at that reduction factor, then refused as the folder is.
    await expect(importAnyAdapter(zipAdapter(lying), model, 'x.zip')).rejects.toThrow(/reduction_factor 16 gives/);
    // The bound: every linear layer at the config's reduction factor (a factor below 1 counts as 1: m ≤ out).
    expect(files['adapter_model.safetensors'].length).toBeLessThanOrEqual(bottleneckWeightsLimit(model, 8));
    expect(bottleneckWeightsLimit(model, 0.001)).toBe(bottleneckWeightsLimit(model, 1));
    expect(bottleneckWeightsLimit(model, 4)).toBeGreaterThan(bottleneckWeightsLimit(model, 8));
  });

  it('refuses a diverged tensor on export, naming it', () => {
    expect(() => exportFor('pfeiffer', fixture('llama'), cfg('pfeiffer'), (i) => (i === 3 ? Number.NaN : 0))).toThrow(
      /model\.layers\.0\.mlp\.down_proj\.adapter_down\.weight holds NaN at 3/,
    );
  });

  it('reports everything wrong with a file at once', async () => {
    const model = fixture('llama');
    const { files } = exportFor('pfeiffer', model);
    const config = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    const weights: Record<string, TensorToWrite> = {
      'model.layers.0.mlp.down_proj.adapter_down.weight': { dtype: 'F32', shape: [4, 31], data: new Float32Array(124) },
      'model.layers.0.mlp.down_proj.adapter_down.bias': { dtype: 'F32', shape: [4], data: new Float32Array(4) },
      'model.layers.0.mlp.down_proj.adapter_up.weight': { dtype: 'F32', shape: [32, 4], data: new Float32Array(128) },
      'model.layers.1.mlp.down_proj.adapter_up.bias': { dtype: 'F32', shape: [32], data: new Float32Array(32) },
      'model.layers.7.mlp.down_proj.adapter_up.bias': { dtype: 'F32', shape: [32], data: new Float32Array(32) },
    };
    const bad = { 'adapter_config.json': new TextEncoder().encode(JSON.stringify({ ...config, non_linearity: 'tanh' })), 'adapter_model.safetensors': writeSafetensors(weights) };
    await expect(importAnyAdapter(memoryFolder(bad), model, 'bad')).rejects.toThrow(/non_linearity is "tanh"/);
    const wrong = { ...bad, 'adapter_config.json': files['adapter_config.json'] };
    const err = (await importAnyAdapter(memoryFolder(wrong), model, 'bad').then(
      () => new Error('imported'),
      (x: Error) => x,
    )) as Error;
    expect(err.message).toMatch(/the llama model has no linear layer "model\.layers\.7\.mlp\.down_proj"/);
    expect(err.message).toMatch(/model\.layers\.0\.mlp\.down_proj: no adapter_up\.bias/);
    expect(err.message).toMatch(/model\.layers\.1\.mlp\.down_proj: no adapter_down\.weight, adapter_down\.bias, adapter_up\.weight/);
  });

  it('says why merging and the exports refuse it', () => {
    expect(bottleneckRefusal('merging', 'houlsby', 'out/')).toMatch(/out\/ is a Houlsby bottleneck adapter \(--method houlsby\): merging does not take it — its non-linear/);
  });
});
