// IA³'s page-side module: PEFT's mappings, which modules scale their input, the parameter count, and the export as
// PEFT saves it (adapter_config.json from tests/fixtures/golden/train_ia3_*_adapter, written by the real PEFT).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseModelConfig, SUPPORTED_MODEL_TYPES, type ModelConfig } from '../../../model/config.ts';
import { SafetensorsFile } from '../../../model/safetensors.ts';
import { MemorySource } from '../../../model/sources/memory.ts';
import { linearModules } from '../../../model/weights.ts';
import { DEFAULT_CONFIG } from '../../config.ts';
import { resolveTargets } from '../targets.ts';
import { IA3_FEEDFORWARD_MODULES, ia3Method, ia3SegmentName, isIa3Feedforward } from './config.ts';

const ROOT = join(import.meta.dirname, '../../../..');
const fixture = (name: string): ModelConfig =>
  parseModelConfig(JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/models', name, 'config.json'), 'utf8')), name);
const c = { ...DEFAULT_CONFIG, method: 'ia3' as const };

function exportFor(model: ModelConfig, targets: string[], fill = (i: number) => 1 + i / 100) {
  const { modules, targetModules } = resolveTargets(model, targets, ia3Method.defaultTargets);
  const tensors = new Map(modules.flatMap((m) => ia3Method.tensors(m, c)).map((t) => [t.name, Float32Array.from({ length: t.length }, (_, i) => fill(i))]));
  return { modules, files: ia3Method.exportAdapter({ tensors, modules, targetModules, config: c, model, baseModel: `tests/fixtures/models/${model.modelType}` }) };
}
const configOf = (files: ReturnType<typeof exportFor>['files']) => JSON.parse(new TextDecoder().decode(files['adapter_config.json']));

describe('IA³', () => {
  it("scales the input of exactly PEFT's feed-forward modules, for every architecture", () => {
    for (const type of SUPPORTED_MODEL_TYPES) {
      const name = type === 'mistral' ? 'mistral' : type === 'qwen2' ? 'qwen2' : type;
      const model = fixture(name);
      const byPeft = linearModules(model).filter((m) => IA3_FEEDFORWARD_MODULES[type].some((f) => m.peftPath.endsWith(`.${f}`)));
      expect(linearModules(model).filter(isIa3Feedforward), type).toEqual(byPeft);
    }
  });

  it('has one vector per module: in_features long on a feed-forward layer, out_features elsewhere', () => {
    const model = fixture('llama');
    const { modules } = resolveTargets(model, [], ia3Method.defaultTargets);
    expect(modules.map((m) => m.targetName)).toEqual(['k_proj', 'v_proj', 'down_proj', 'k_proj', 'v_proj', 'down_proj']);
    const lengths = modules.map((m) => ia3Method.tensors(m, c)[0].length);
    expect(lengths).toEqual(modules.map((m) => (m.targetName === 'down_proj' ? m.inFeatures : m.outFeatures)));
    expect(ia3Method.footprint(modules, c)).toEqual({
      params: lengths.reduce((s, n) => s + n, 0),
      activationsPerToken: modules.filter((m) => m.targetName !== 'down_proj').reduce((s, m) => s + m.outFeatures, 0),
    });
  });

  it.each(['gpt2', 'llama', 'qwen3'])("%s: exports PEFT's adapter_config.json for the default targets, tensors [out, 1] or [1, in]", async (name) => {
    const model = fixture(name);
    const { modules, files } = exportFor(model, []);
    const theirs = JSON.parse(readFileSync(join(ROOT, `tests/fixtures/golden/train_ia3_${name}_adapter/adapter_config.json`), 'utf8'));
    expect(configOf(files)).toEqual(theirs);
    const st = await SafetensorsFile.open(new MemorySource('x', files['adapter_model.safetensors']));
    for (const m of modules) {
      const key = `base_model.model.${m.peftPath}.ia3_l`;
      expect(st.info(key).shape, key).toEqual(isIa3Feedforward(m) ? [1, m.inFeatures] : [m.outFeatures, 1]);
    }
    expect(ia3SegmentName(modules[0].peftPath)).toBe(`${modules[0].peftPath}.ia3_l`);
  });

  it('keeps feedforward_modules a subset of target_modules (PEFT refuses the file otherwise)', () => {
    const llama = fixture('llama');
    expect(configOf(exportFor(llama, ['q_proj', 'v_proj']).files)).toMatchObject({ target_modules: ['q_proj', 'v_proj'], feedforward_modules: [] });
    const all = configOf(exportFor(llama, ['all-linear']).files);
    expect(all.target_modules).toHaveLength(14);
    expect(all.feedforward_modules).toEqual(['model.layers.0.mlp.down_proj', 'model.layers.1.mlp.down_proj']);
    // GPT-2's "c_proj" takes the attention's and the MLP's: only paths can say which one scales its input.
    const gpt2 = configOf(exportFor(fixture('gpt2'), ['c_proj']).files);
    expect(gpt2.feedforward_modules).toEqual(['transformer.h.0.mlp.c_proj', 'transformer.h.1.mlp.c_proj']);
    expect(gpt2.target_modules).toEqual(['transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
    for (const cfg of [all, gpt2]) for (const f of cfg.feedforward_modules) expect(cfg.target_modules).toContain(f);
  });

  it('refuses to save a diverged vector, naming it', () => {
    expect(() => exportFor(fixture('llama'), [], (i) => (i === 3 ? Number.NaN : 1))).toThrow(/base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.ia3_l holds NaN at 3/);
  });
});
