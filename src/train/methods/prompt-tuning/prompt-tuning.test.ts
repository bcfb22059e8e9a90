// Prompt tuning's page-side module: the virtual tokens ahead of each row (labels, packing), its settings, the export
// as PEFT saves it (adapter_config.json from tests/fixtures/golden/train_prompt_*_adapter, written by the real PEFT),
// the import's checks, and PEFT's init rules (TEXT cycles or cuts the text's ids; RANDOM is N(0, 1)).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packRows } from '../../../data/packing.ts';
import { parseModelConfig, type ModelConfig } from '../../../model/config.ts';
import { memoryFolder } from '../../../model/sources/memory.ts';
import { writeSafetensors } from '../../../model/safetensors.ts';
import { withVirtualTokens } from '../../../model/runtime/virtual-tokens.ts';
import { DEFAULT_CONFIG, normalizeConfig, resolveConfig, validateConfig } from '../../config.ts';
import { AdapterError, importPeftAdapter, zipAdapter } from '../../peft.ts';
import { resolveTargets } from '../targets.ts';
import { PROMPT_EMBEDDINGS, promptTuningMethod } from './config.ts';
import { standardNormal, textInitIds } from './runtime.ts';
import { rankSweepConfigs } from '../../../store/slices/compare.ts';

const ROOT = join(import.meta.dirname, '../../../..');
const fixture = (name: string): ModelConfig =>
  parseModelConfig(JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/models', name, 'config.json'), 'utf8')), name);
const c = { ...DEFAULT_CONFIG, method: 'prompt-tuning' as const, numVirtualTokens: 4 };

function exportFor(model: ModelConfig, config = c) {
  const values = Float32Array.from({ length: config.numVirtualTokens * model.hiddenSize }, (_, i) => i / 7);
  return promptTuningMethod.exportAdapter({ tensors: new Map([[PROMPT_EMBEDDINGS, values]]), modules: [], targetModules: [], config, model, baseModel: `tests/fixtures/models/${model.modelType}` });
}

describe('prompt tuning', () => {
  it('puts the virtual ids ahead of each row with ignored labels, so the first real token is trained; packing keeps them per row', () => {
    const rows = [
      { input_ids: Int32Array.from([7, 8, 9]), labels: Int32Array.from([7, 8, 9]) },
      { input_ids: Int32Array.from([4, 5]), labels: Int32Array.from([-100, 5]) },
    ];
    const v = withVirtualTokens(rows, 100, 2);
    expect(Array.from(v[0].input_ids)).toEqual([100, 101, 7, 8, 9]);
    expect(Array.from(v[0].labels)).toEqual([-100, -100, 7, 8, 9]);
    expect(Array.from(v[1].labels)).toEqual([-100, -100, -100, 5]);
    const [packed] = packRows(v, 9);
    expect(Array.from(packed.input_ids)).toEqual([100, 101, 7, 8, 9, 100, 101, 4, 5]);
    expect(Array.from(packed.positions)).toEqual([0, 1, 2, 3, 4, 0, 1, 2, 3]);
    expect(Array.from(packed.segment_ids)).toEqual([1, 1, 1, 1, 1, 2, 2, 2, 2]);
    // The first real token of each segment keeps its label (predicted from the last virtual token).
    expect(Array.from(packed.labels)).toEqual([-100, -100, 7, 8, 9, -100, -100, -100, 5]);
  });

  it('wraps no layer, trains virtual tokens × hidden, and validates its settings', () => {
    const llama = fixture('llama');
    const { modules, targetModules } = resolveTargets(llama, [], promptTuningMethod.defaultTargets);
    expect(modules).toEqual([]);
    expect(targetModules).toEqual([]);
    expect(promptTuningMethod.footprint([], c, llama).params).toBe(4 * llama.hiddenSize);
    expect(promptTuningMethod.validate(c)).toEqual([]);
    expect(resolveTargets(llama, ['all-linear'], promptTuningMethod.defaultTargets).modules, 'a preset\'s targets are ignored').toEqual([]);
    expect(promptTuningMethod.validate({ ...c, quant: 'nf4' }), 'the frozen base may be NF4').toEqual([]);
    expect(promptTuningMethod.validate({ ...c, promptInit: 'text', promptInitText: ' ' })[0].message).toMatch(/TEXT init needs a text/);
    expect(() => rankSweepConfigs(c), 'Compare\'s rank sweep has no rank to sweep').toThrow(/Prompt tuning has no rank to sweep/);
    expect(() => resolveConfig({ method: 'prompt-tuning', numVirtualTokens: 0 })).toThrow(/numVirtualTokens = 0: must be an integer ≥ 1/);
    expect(() => resolveConfig({ method: 'prompt-tuning', promptInit: 'vocab' as never })).toThrow(/promptInit = "vocab": must be random or text/);
  });

  it.each(['gpt2', 'llama', 'qwen3'])('%s: exports adapter_config.json as PEFT saves PromptTuningConfig, and imports it back', async (name) => {
    const model = fixture(name);
    const files = exportFor(model);
    const peft = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/golden', `train_prompt_${name}_adapter`, 'adapter_config.json'), 'utf8'));
    expect(JSON.parse(new TextDecoder().decode(files['adapter_config.json']))).toEqual(peft);
    const back = await importPeftAdapter(memoryFolder({ ...files }), model, 'ours');
    if (back.kind !== 'prompt') throw new Error(back.kind);
    expect(back.peftType).toBe('PROMPT_TUNING');
    expect(back.warnings).toEqual([]);
    expect(Array.from(back.embeddings.subarray(0, 3))).toEqual([0, 1 / 7, 2 / 7].map(Math.fround));
  });

  it('imports from a .zip (the studio\'s download and upload), its weights bounded by n × hidden', async () => {
    const model = fixture('llama');
    const files = exportFor(model);
    const back = await importPeftAdapter(zipAdapter(files), model, 'ours.zip');
    expect(back.kind).toBe('prompt');
    const cfg = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    const bad = zipAdapter({ ...files, 'adapter_config.json': new TextEncoder().encode(JSON.stringify({ ...cfg, num_virtual_tokens: 0 })) });
    await expect(importPeftAdapter(bad, model, 'bad.zip')).rejects.toThrow(/num_virtual_tokens" must be a positive integer, got 0/);
  });

  it('imports PEFT\'s own P-tuning file as virtual embeddings, saying its encoder is not there', async () => {
    const dir = join(ROOT, 'tests/fixtures/golden/train_ptuning_llama_adapter');
    const files = { 'adapter_config.json': readFileSync(join(dir, 'adapter_config.json')), 'adapter_model.safetensors': readFileSync(join(dir, 'adapter_model.safetensors')) };
    const a = await importPeftAdapter(memoryFolder(files), fixture('llama'), 'ptuning');
    if (a.kind !== 'prompt') throw new Error(a.kind);
    expect(a.peftType).toBe('P_TUNING');
    expect(a.numVirtualTokens).toBe(4);
    expect(a.warnings.join(' ')).toMatch(/continues as plain virtual embeddings/);
  });

  it('refuses a table of the wrong shape, another tensor, or NaN, naming each', async () => {
    const model = fixture('llama');
    const good = exportFor(model);
    const bad = (tensors: Parameters<typeof writeSafetensors>[0]) => importPeftAdapter(memoryFolder({ ...good, 'adapter_model.safetensors': writeSafetensors(tensors) }), model, 'bad');
    await expect(bad(new Map([[PROMPT_EMBEDDINGS, { dtype: 'F32', shape: [4, 3], data: new Float32Array(12) }]]))).rejects.toThrow(/has shape \[4, 3\], expected \[4, 32\]/);
    await expect(bad(new Map([['x', { dtype: 'F32', shape: [1], data: new Float32Array(1) }]]))).rejects.toThrow(AdapterError);
    await expect(bad(new Map([[PROMPT_EMBEDDINGS, { dtype: 'F32', shape: [4, 32], data: new Float32Array(128).fill(NaN) }]]))).rejects.toThrow(/holds NaN at 0/);
    const cfg = JSON.parse(new TextDecoder().decode(good['adapter_config.json']));
    await expect(importPeftAdapter(memoryFolder({ ...good, 'adapter_config.json': new TextEncoder().encode(JSON.stringify({ ...cfg, token_dim: 64 })) }), model, 'bad')).rejects.toThrow(/token_dim is 64/);
    expect(() => promptTuningMethod.exportAdapter({ tensors: new Map([[PROMPT_EMBEDDINGS, new Float32Array(128).fill(Infinity)]]), modules: [], targetModules: [], config: c, model, baseModel: 'b' })).toThrow(/refusing to save a diverged adapter/);
  });

  it('a run saved before the prompt fields existed takes their defaults; a partial override is left alone', () => {
    const { numVirtualTokens: _n, promptInit: _i, promptInitText: _t, encoderHiddenSize: _h, ...old } = DEFAULT_CONFIG;
    const normalized = normalizeConfig(old as typeof DEFAULT_CONFIG);
    expect(validateConfig(normalized)).toEqual([]);
    expect(normalized).toEqual(DEFAULT_CONFIG);
    expect(normalizeConfig({ method: 'prompt-tuning', lr: 0.03 })).toEqual({ method: 'prompt-tuning', lr: 0.03, quant: 'none' });
    expect(resolveConfig({ method: 'prompt-tuning' }, { ...DEFAULT_CONFIG, numVirtualTokens: 7 }).numVirtualTokens).toBe(7);
  });

  it('TEXT init cycles or cuts the ids to n (PEFT\'s rule); RANDOM is N(0, 1), reproducible from the seed', () => {
    expect(textInitIds([1, 2, 3], 7)).toEqual([1, 2, 3, 1, 2, 3, 1]);
    expect(textInitIds([1, 2, 3, 4, 5], 2)).toEqual([1, 2]);
    expect(() => textInitIds([], 2)).toThrow(/no tokens/);
    const x = standardNormal(20001, 42);
    expect(standardNormal(20001, 42)).toEqual(x);
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const sd = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(sd - 1)).toBeLessThan(0.03);
  });
});
