import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { randomArray } from '../gpu/ref/testing.ts';
import type { ModelConfig } from '../model/config.ts';
import { f32ArrayToF16, f16ArrayToF32 } from '../gpu/half.ts';
import { readModelConfig } from '../model/load.ts';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { memoryFolder, MemorySource } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { selectTargetModules } from '../model/weights.ts';
import { loraScale } from './methods/lora-scale.ts';
import {
  AdapterError,
  buildAdapterConfig,
  exportAdapter,
  importAdapter,
  loraTensorName,
  zipAdapter,
  type AdapterSettings,
  type LoraModuleWeights,
  type PeftAdapterConfig,
} from './peft.ts';

const ROOT = join(__dirname, '..', '..');
const fixture = (name: string) => join(ROOT, 'tests', 'fixtures', 'models', name);
const config = (name: string): Promise<ModelConfig> => readModelConfig(nodeFolder(fixture(name)));

/** Random A and B (B nonzero, unlike a fresh adapter) for the modules `targets` selects. */
function randomModules(model: ModelConfig, targets: string | string[] | undefined, r: number, seed: number): LoraModuleWeights[] {
  return selectTargetModules(model, targets).map((m, i) => ({
    peftPath: m.peftPath,
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    A: randomArray(r * m.inFeatures, seed + 2 * i, 0.5),
    B: randomArray(m.outFeatures * r, seed + 2 * i + 1, 0.5),
  }));
}

function settings(over: Partial<AdapterSettings> & Pick<AdapterSettings, 'baseModel'>): AdapterSettings {
  return { rank: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'], fanInFanOut: false, rslora: false, ...over };
}

async function importError(files: Record<string, Uint8Array | string>, model: ModelConfig): Promise<AdapterError> {
  try {
    await importAdapter(memoryFolder(files, 'adapter'), model);
  } catch (e) {
    expect(e).toBeInstanceOf(AdapterError);
    return e as AdapterError;
  }
  throw new Error('expected the adapter to be rejected');
}

describe('buildAdapterConfig', () => {
  // The goldens are adapter_config.json files written by PEFT 0.21 itself (scripts/golden_train.py).
  const golden = (c: string) => JSON.parse(readFileSync(join(__dirname, 'golden', `adapter_config.${c}.json`), 'utf8')) as PeftAdapterConfig;
  const cases: [string, string, Omit<AdapterSettings, 'baseModel' | 'model'>][] = [
    ['gpt2-default', 'gpt2', { rank: 4, alpha: 8, dropout: 0, targetModules: ['c_attn'], fanInFanOut: true, rslora: false }],
    ['llama-default', 'llama', { rank: 8, alpha: 16, dropout: 0, targetModules: ['q_proj', 'v_proj'], fanInFanOut: false, rslora: false }],
    ['llama-all-linear-rslora', 'llama', { rank: 8, alpha: 16, dropout: 0.05, targetModules: 'all-linear', fanInFanOut: false, rslora: true }],
    ['llama-list', 'llama', { rank: 2, alpha: 3, dropout: 0.1, targetModules: ['v_proj', 'q_proj', 'o_proj'], fanInFanOut: false, rslora: false }],
  ];
  for (const [name, fixtureName, s] of cases) {
    it(`matches PEFT's adapter_config.json key for key: ${name}`, async () => {
      const expected = golden(name);
      const built = buildAdapterConfig({ ...s, baseModel: `tests/fixtures/models/${fixtureName}`, model: await config(fixtureName) });
      expect(Object.keys(built).sort()).toEqual(Object.keys(expected).sort());
      expect(built).toEqual(expected);
      // Serialised with sorted keys, as PEFT does.
      const text = new TextDecoder().decode(exportAdapter(randomModules(await config(fixtureName), s.targetModules, s.rank, 1), built)['adapter_config.json']);
      expect(Object.keys(JSON.parse(text))).toEqual(Object.keys(expected));
    });
  }

  it('validates rank, alpha, dropout and "all-linear" without a model', () => {
    expect(() => buildAdapterConfig(settings({ baseModel: 'm', rank: 0 }))).toThrow(/rank must be a positive integer, got 0/);
    expect(() => buildAdapterConfig(settings({ baseModel: 'm', alpha: -1 }))).toThrow(/alpha must be a positive number, got -1/);
    expect(() => buildAdapterConfig(settings({ baseModel: 'm', dropout: 1 }))).toThrow(/dropout must be in \[0, 1\), got 1/);
    expect(() => buildAdapterConfig(settings({ baseModel: 'm', targetModules: 'all-linear' }))).toThrow(/needs the model config/);
  });

  it('scales by alpha/r, or alpha/sqrt(r) with rsLoRA (the kernels\' loraScale(alpha, r, rslora))', () => {
    expect(loraScale(8, 4, false)).toBe(2);
    expect(loraScale(8, 16, true)).toBe(2);
  });
});

describe('exportAdapter', () => {
  it('names GPT-2 and Llama tensors as PEFT does, with {"format": "pt"} metadata and F32 [r,in]/[out,r] shapes', async () => {
    for (const [name, first, fanInFanOut] of [
      ['gpt2', 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight', true],
      ['llama', 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', false],
    ] as const) {
      const model = await config(name);
      const modules = randomModules(model, undefined, 4, 3);
      const files = exportAdapter(modules, buildAdapterConfig(settings({ baseModel: name, targetModules: name === 'gpt2' ? ['c_attn'] : ['q_proj', 'v_proj'], fanInFanOut })));
      const st = await SafetensorsFile.open(new MemorySource('a', files['adapter_model.safetensors']));
      expect(st.metadata).toEqual({ format: 'pt' });
      expect(st.names()).toContain(first);
      expect(st.names()).toHaveLength(2 * modules.length);
      for (const m of modules) {
        expect(st.info(loraTensorName(m.peftPath, 'A'))).toMatchObject({ dtype: 'F32', shape: [4, m.inFeatures] });
        expect(st.info(loraTensorName(m.peftPath, 'B'))).toMatchObject({ dtype: 'F32', shape: [m.outFeatures, 4] });
      }
    }
  });

  it('refuses NaN and infinity, naming the tensor and the element', async () => {
    const model = await config('llama');
    const cfg = buildAdapterConfig(settings({ baseModel: 'llama' }));
    const modules = randomModules(model, undefined, 4, 5);
    modules[1].B[3 * 4 + 2] = NaN;
    expect(() => exportAdapter(modules, cfg)).toThrow(
      'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight holds NaN at [3, 2]: refusing to save a diverged adapter',
    );
    const again = randomModules(model, undefined, 4, 5);
    again[0].A[33] = -Infinity;
    expect(() => exportAdapter(again, cfg)).toThrow(/q_proj\.lora_A\.weight holds -Infinity at \[1, 1\]/);
  });

  it('refuses arrays whose size disagrees with r', async () => {
    const model = await config('llama');
    const modules = randomModules(model, undefined, 2, 5);
    expect(() => exportAdapter(modules, buildAdapterConfig(settings({ baseModel: 'llama', rank: 4 })))).toThrow(
      /q_proj\.lora_A\.weight: 64 values, expected \[4, 32\] = 128/,
    );
  });
});

describe('importAdapter', () => {
  const roundTrips: [string, string | string[]][] = [
    ['gpt2', ['c_attn']],
    ['llama', ['q_proj', 'v_proj']],
    ['qwen2', 'all-linear'],
  ];
  for (const [name, targets] of roundTrips) {
    it(`round-trips export → import exactly: ${name} ${targets}, as a zip and as a folder`, async () => {
      const model = await config(name);
      const modules = randomModules(model, targets, 3, 11);
      const cfg = buildAdapterConfig({ baseModel: name, rank: 3, alpha: 5, dropout: 0.1, targetModules: targets, fanInFanOut: name === 'gpt2', rslora: true, model });
      const files = exportAdapter(modules, cfg);
      for (const source of [zipAdapter(files), memoryFolder({ ...files }, 'dir')]) {
        const adapter = await importAdapter(source, model);
        expect(adapter.warnings).toEqual([]);
        expect(adapter).toMatchObject({ rank: 3, alpha: 5, rslora: true, scale: 5 / Math.sqrt(3), dropout: 0.1 });
        expect(adapter.modules.map((m) => m.peftPath)).toEqual(modules.map((m) => m.peftPath));
        adapter.modules.forEach((m, i) => {
          expect(m.A).toEqual(modules[i].A);
          expect(m.B).toEqual(modules[i].B);
          expect(m.module.peftPath).toBe(m.peftPath);
          expect(m.module.fanInFanOut).toBe(name === 'gpt2');
        });
      }
    });
  }

  it('zips both files at the top level, and reads a zip whose files sit in one folder', async () => {
    const model = await config('llama');
    const files = exportAdapter(randomModules(model, undefined, 4, 2), buildAdapterConfig(settings({ baseModel: 'llama' })));
    expect(Object.keys(unzipSync(zipAdapter(files))).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const { zipSync } = await import('fflate');
    const nested = zipSync({ 'my-run/adapter_config.json': files['adapter_config.json'], 'my-run/adapter_model.safetensors': files['adapter_model.safetensors'], 'my-run/README.md': new Uint8Array(3) });
    expect((await importAdapter(nested, model)).modules).toHaveLength(4);
    await expect(importAdapter(new Uint8Array([1, 2, 3]), model, 'junk.zip')).rejects.toThrow(/^junk.zip: not a readable .zip/);
    await expect(importAdapter(zipSync({ 'x.txt': new Uint8Array(1) }), model, 'a.zip')).rejects.toThrow('a.zip: no adapter_config.json in the archive');
  });

  // Real adapters written by PEFT's save_pretrained after 10 training steps (scripts/golden_train.py).
  for (const name of ['gpt2', 'llama']) {
    it(`loads a real PEFT adapter (${name}) and re-exports it byte for byte`, async () => {
      const model = await config(name);
      const dir = join(ROOT, 'tests', 'fixtures', 'golden', `train_${name}_adapter`);
      const adapter = await importAdapter(nodeFolder(dir), model);
      expect(adapter.warnings).toEqual([]);
      expect(adapter).toMatchObject({ rank: 4, alpha: 8, scale: 2, rslora: false });
      expect(adapter.config.fan_in_fan_out).toBe(name === 'gpt2');
      expect(adapter.modules.map((m) => m.peftPath)).toEqual(selectTargetModules(model).map((m) => m.peftPath));
      for (const m of adapter.modules) expect(m.B.some((v) => v !== 0)).toBe(true); // trained: B moved off zero
      const again = exportAdapter(adapter.modules, adapter.config);
      expect(Buffer.from(again['adapter_model.safetensors']).equals(readFileSync(join(dir, 'adapter_model.safetensors')))).toBe(true);
      expect(JSON.parse(new TextDecoder().decode(again['adapter_config.json']))).toEqual(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')));
    });
  }

  it('reads F16 and BF16 tensors, keys with ".default" and keys without "base_model.model."', async () => {
    const model = await config('llama');
    const [q] = randomModules(model, ['q_proj'], 2, 4);
    const A16 = f32ArrayToF16(q.A);
    const Bbf = new Uint16Array(new Uint32Array(q.B.buffer.slice(0)).map((bits) => bits >>> 16)); // truncated to bf16
    const tensors: Record<string, TensorToWrite> = {
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight': { dtype: 'F16', shape: [2, 32], data: A16 },
      'model.layers.0.self_attn.q_proj.lora_B.weight': { dtype: 'BF16', shape: [32, 2], data: Bbf },
    };
    const cfg = buildAdapterConfig(settings({ baseModel: 'llama', rank: 2, targetModules: ['model.layers.0.self_attn.q_proj'] }));
    const adapter = await importAdapter(memoryFolder({ 'adapter_config.json': JSON.stringify(cfg), 'adapter_model.safetensors': writeSafetensors(tensors) }), model);
    expect(adapter.modules).toHaveLength(1);
    expect(adapter.modules[0].A).toEqual(f16ArrayToF32(A16));
    expect(adapter.modules[0].B).toEqual(new Float32Array(new Uint32Array(Array.from(Bbf, (b) => b << 16)).buffer));
  });

  it('names unknown modules, wrong shapes, unpaired and foreign tensors, all at once', async () => {
    const model = await config('llama');
    const cfg = JSON.stringify(buildAdapterConfig(settings({ baseModel: 'llama' })));
    const f = (shape: number[]): TensorToWrite => ({ dtype: 'F32', shape, data: new Float32Array(shape[0] * (shape[1] ?? 1)) });
    const err = await importError(
      {
        'adapter_config.json': cfg,
        'adapter_model.safetensors': writeSafetensors({
          'base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight': f([4, 32]),
          'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': f([4, 32]),
          'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': f([16, 4]),
          'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight': f([4, 32]),
          'base_model.model.model.layers.0.self_attn.v_proj.lora_magnitude_vector': f([16]),
        }),
      },
      model,
    );
    expect(err.problems).toEqual([
      'tensor "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight" has shape [16, 4], expected [32, 4] (r = 4, q_proj in_features 32, out_features 32)',
      'tensor "base_model.model.model.layers.0.self_attn.v_proj.lora_magnitude_vector" is a DoRA magnitude, but adapter_config.json has use_dora false',
      expect.stringContaining('tensor "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight": the llama model has no linear layer "model.layers.7.self_attn.q_proj"'),
      'model.layers.0.self_attn.v_proj has lora_A but no lora_B',
    ]);
    expect(err.message).toMatch(/^adapter:\n {2}tensor/);
  });

  it('warns about targeted modules the file has no weights for', async () => {
    const model = await config('llama');
    const only = randomModules(model, ['model.layers.0.self_attn.q_proj'], 4, 1);
    const files = exportAdapter(only, buildAdapterConfig(settings({ baseModel: 'llama' })));
    const adapter = await importAdapter(memoryFolder({ ...files }), model);
    expect(adapter.warnings).toHaveLength(3);
    expect(adapter.warnings[0]).toBe('target_modules selects model.layers.0.self_attn.v_proj, but the adapter has no weights for it (it stays at the base model)');
  });

  it('refuses what it cannot apply: other PEFT types, DoRA without magnitudes, biases, modules_to_save, patterns, pickles', async () => {
    const model = await config('llama');
    const base = buildAdapterConfig(settings({ baseModel: 'llama' }));
    const files = exportAdapter(randomModules(model, undefined, 4, 1), base);
    const withConfig = (over: Record<string, unknown>) => ({ 'adapter_config.json': JSON.stringify({ ...base, ...over }), 'adapter_model.safetensors': files['adapter_model.safetensors'] });
    expect((await importError(withConfig({ peft_type: 'LOHA' }), model)).message).toBe(
      'adapter/adapter_config.json: peft_type is "LOHA"; only "LORA", "ADALORA", "IA3", "PROMPT_TUNING", "P_TUNING" and "PREFIX_TUNING" adapters are supported',
    );
    // A prefix-tuning file with LoRA's tensors: what is missing, named.
    expect((await importError(withConfig({ peft_type: 'PREFIX_TUNING' }), model)).problems).toContain('num_virtual_tokens must be a positive integer, got undefined');
    // An IA³ file with LoRA's tensors: its vectors are what is missing, named.
    expect((await importError(withConfig({ peft_type: 'IA3' }), model)).problems[0]).toMatch(/^tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight" is not an IA³ vector/);
    expect((await importError(withConfig({ use_dora: true }), model)).problems[0]).toBe(
      'model.layers.0.self_attn.q_proj has lora_A and lora_B but no lora_magnitude_vector, which use_dora true needs',
    );
    expect((await importError(withConfig({ use_dora: true, bias: 'all', modules_to_save: ['lm_head'], rank_pattern: { q_proj: 8 } }), model)).problems).toEqual([
      'bias is "all": only "none" is supported (trained biases are not applied)',
      'modules_to_save ["lm_head"]: fully trained module copies are not supported',
      'rank_pattern {"q_proj":8}: per-module ranks or alphas are not supported',
    ]);
    expect((await importError({ 'adapter_config.json': JSON.stringify(base), 'adapter_model.bin': new Uint8Array(4) }, model)).message).toMatch(
      /adapter_model.bin is a pickled PyTorch file.*safe_serialization=True/,
    );
    expect((await importError({ 'adapter_model.safetensors': files['adapter_model.safetensors'] }, model)).message).toBe('adapter: no adapter_config.json');
  });

  it('refuses an adapter made for another model (shape mismatch names both shapes)', async () => {
    const files = exportAdapter(randomModules(await config('llama'), undefined, 4, 1), buildAdapterConfig(settings({ baseModel: 'llama' })));
    const err = await importError({ ...files }, await config('llama-rope-scaling'));
    expect(err.problems[0]).toBe(
      'tensor "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" has shape [4, 32], expected [4, 48] (r = 4, q_proj in_features 48, out_features 64)',
    );
  });
});

// The training goldens (scripts/golden_train.py) are consumed by the trainer's GPU test; here, their internal
// consistency with the model code: the modules PEFT wrapped are the ones selectTargetModules picks, sizes agree, and
// the documented invariants hold (step-1 dA is exactly 0 since B starts at 0; the token count follows the contract).
describe('training goldens', () => {
  for (const name of ['gpt2', 'llama']) {
    it(`train_${name}.json agrees with the model's PEFT modules and the loss contract`, async () => {
      const g = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'golden', `train_${name}.json`), 'utf8'));
      const model = await config(name);
      const r = g.lora.r as number;
      const expected = selectTargetModules(model, g.lora.target_modules);
      expect(g.modules.map((m: { path: string }) => m.path)).toEqual(expected.map((m) => m.peftPath));
      g.modules.forEach((m: { in: number; out: number; A0: number[] }, i: number) => {
        expect([m.in, m.out]).toEqual([expected[i].inFeatures, expected[i].outFeatures]);
        expect(m.A0).toHaveLength(r * m.in);
        // PEFT's kaiming_uniform(a=√5) on [r, in]: bound = 1/√in.
        expect(Math.max(...m.A0.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(m.in));
        for (const step of ['1', '2']) {
          expect(g.grads[step][expected[i].peftPath].dA).toHaveLength(r * m.in);
          expect(g.grads[step][expected[i].peftPath].dB).toHaveLength(m.out * r);
        }
        expect(g.grads['1'][expected[i].peftPath].dA.every((v: number) => v === 0)).toBe(true);
        expect(g.grads['2'][expected[i].peftPath].dA.some((v: number) => v !== 0)).toBe(true);
      });
      const tokens = g.rows.reduce((n: number, row: { labels: number[] }) => n + row.labels.slice(1).filter((l) => l !== -100).length, 0);
      expect(g.tokens).toBe(tokens);
      expect(g.steps).toHaveLength(10);
      const losses = g.steps.map((s: { loss: number }) => s.loss);
      losses.forEach((l: number, i: number) => i > 0 && expect(l).toBeLessThan(losses[i - 1]));
      expect(g.final_loss).toBeLessThan(losses[9]);
    });
  }
});
