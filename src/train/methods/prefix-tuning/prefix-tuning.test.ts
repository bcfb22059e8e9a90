// Prefix tuning's page-side module: its tensors (PEFT's PrefixEncoder shapes, sized by the key/value heads for GQA
// models), the export as PEFT saves PrefixTuningConfig — adapter_config.json and the table after the projection, held
// to the files the real PEFT saved after its ten golden steps (tests/fixtures/golden/train_prefix_*, from
// scripts/golden_prefix.py: the export of PEFT's own trained tensors must be PEFT's file) — its import back (the
// table, a warning for a projection, clear refusals of a wrong shape), and PEFT's initialisation ranges.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mismatches } from '../../../gpu/ref/testing.ts';
import { parseModelConfig, type ModelConfig } from '../../../model/config.ts';
import { SafetensorsFile, writeSafetensors } from '../../../model/safetensors.ts';
import { MemorySource, memoryFolder } from '../../../model/sources/memory.ts';
import { nodeFolder } from '../../../model/sources/node-file.ts';
import { DEFAULT_CONFIG, type TrainConfig } from '../../config.ts';
import { AdapterError, importPeftAdapter } from '../../peft.ts';
import { PROMPT_EMBEDDINGS } from '../prompt-tuning/config.ts';
import { PREFIX_PROJECTION_TENSORS, prefixDims, prefixProjectionShapes, prefixSegmentName, prefixTuningMethod } from './config.ts';
import { prefixProjectionInit } from './runtime.ts';

const ROOT = join(import.meta.dirname, '../../../..');
const GOLDEN = join(ROOT, 'tests/fixtures/golden');
const fixture = (name: string): ModelConfig =>
  parseModelConfig(JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/models', name, 'config.json'), 'utf8')), name);

interface PrefixGolden {
  fixture: string;
  num_virtual_tokens: number;
  prefix_projection: boolean;
  encoder_hidden_size?: number;
  token_dim: number;
  num_layers: number;
  num_attention_heads: number;
  initial: Record<string, number[]>;
  trained?: Record<string, number[]>;
  prefix: number[];
}
const CASES = ['prefix_gpt2', 'prefix_llama_proj', 'prefix_qwen3'];
const golden = (name: string): PrefixGolden => JSON.parse(readFileSync(join(GOLDEN, `train_${name}.json`), 'utf8'));
const configOf = (g: PrefixGolden): TrainConfig => ({
  ...DEFAULT_CONFIG,
  method: 'prefix-tuning',
  numVirtualTokens: g.num_virtual_tokens,
  prefixProjection: g.prefix_projection,
  encoderHiddenSize: g.encoder_hidden_size ?? null,
});
/** Our segment names for the golden file's tensor names. */
const ourName = (g: PrefixGolden, name: string) => (!g.prefix_projection ? PROMPT_EMBEDDINGS : name === 'prompt_embeddings' ? prefixSegmentName('embedding.weight') : `prompt_encoder.${name}`);

describe('prefix tuning', () => {
  it('sizes the table by the key/value heads (PEFT\'s token_dim and num_attention_heads), with and without the projection', () => {
    for (const name of CASES) {
      const g = golden(name);
      const model = fixture(g.fixture);
      const d = prefixDims(model);
      expect(d.tokenDim, name).toBe(g.token_dim);
      expect(model.numKvHeads, name).toBe(g.num_attention_heads);
      expect(d.layers, name).toBe(g.num_layers);
      const c = configOf(g);
      const tensors = prefixTuningMethod.ownTensors!(model, c);
      const want = Object.fromEntries(Object.entries(g.initial).map(([k, v]) => [ourName(g, k), v.length]));
      expect(Object.fromEntries(tensors.map((t) => [t.name, t.length])), name).toEqual(want);
      expect(prefixTuningMethod.footprint([], c, model).params).toBe(Object.values(want).reduce((a, b) => a + b, 0));
    }
    // H defaults to token_dim (PEFT's rule): llama's is 2 × 8.
    const llama = fixture('llama');
    const t = prefixTuningMethod.ownTensors!(llama, { ...DEFAULT_CONFIG, method: 'prefix-tuning', numVirtualTokens: 3, prefixProjection: true });
    expect(t.find((x) => x.name === prefixSegmentName('transform.0.weight'))!.length).toBe(16 * 16);
    expect(() => prefixTuningMethod.ownTensors!({ hiddenSize: 32 }, { ...DEFAULT_CONFIG, method: 'prefix-tuning' })).toThrow(/layers, key\/value heads/);
  });

  it.each(CASES)('%s: the export of PEFT\'s trained tensors is the adapter PEFT saved (config key for key, the table after the projection)', async (name) => {
    const g = golden(name);
    const model = fixture(g.fixture);
    const trained = g.trained ?? { prompt_embeddings: g.prefix };
    const tensors = new Map(Object.entries(trained).map(([k, v]) => [ourName(g, k), Float32Array.from(v)]));
    const config = configOf(g);
    const files = prefixTuningMethod.exportAdapter({ tensors, modules: [], targetModules: [], config, model, baseModel: `tests/fixtures/models/${g.fixture}` });
    const dir = join(GOLDEN, `train_${name}_adapter`);
    expect(JSON.parse(new TextDecoder().decode(files['adapter_config.json']))).toEqual(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')));
    const ours = await SafetensorsFile.open(new MemorySource('ours', files['adapter_model.safetensors']));
    const theirs = await SafetensorsFile.open((await nodeFolder(dir).open('adapter_model.safetensors'))!);
    expect(ours.names()).toEqual(theirs.names());
    expect(ours.info(PROMPT_EMBEDDINGS).shape).toEqual(theirs.info(PROMPT_EMBEDDINGS).shape);
    // PEFT's projection ran in float64 then was saved as f32; ours runs the same float64 reference.
    expect(mismatches(await ours.readTensor(PROMPT_EMBEDDINGS, 'f32'), await theirs.readTensor(PROMPT_EMBEDDINGS, 'f32'), { abs: 2e-6, rel: 1e-6 })).toEqual([]);

    // Imported back: the table, to continue as plain prefix tuning (a projection's MLP is not in the file).
    const adapter = await importPeftAdapter(memoryFolder({ ...files }), model, 'ours');
    if (adapter.kind !== 'prompt') throw new Error(`imported as ${adapter.kind}`);
    expect(adapter.peftType).toBe('PREFIX_TUNING');
    expect(adapter.numVirtualTokens).toBe(g.num_virtual_tokens);
    expect(adapter.embeddings).toEqual(await ours.readTensor(PROMPT_EMBEDDINGS, 'f32'));
    expect(adapter.warnings.length).toBe(g.prefix_projection ? 1 : 0);
    expect(prefixTuningMethod.ownTensors!(model, { ...config, prefixProjection: false })).toEqual([{ name: PROMPT_EMBEDDINGS, length: adapter.embeddings.length, lrScale: 1 }]);
  });

  it('refuses a prefix adapter of another shape, naming what differs', async () => {
    const g = golden('prefix_qwen3');
    const files = prefixTuningMethod.exportAdapter({
      tensors: new Map([[PROMPT_EMBEDDINGS, Float32Array.from(g.prefix)]]),
      modules: [],
      targetModules: [],
      config: configOf(g),
      model: fixture('qwen3'),
      baseModel: 'x',
    });
    // On llama (key/value width 16, not qwen3's 32): token_dim and the table's shape are both named.
    const err = await importPeftAdapter(memoryFolder({ ...files }), fixture('llama'), 'qwen3-prefix').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect(String((err as Error).message)).toMatch(/token_dim is 32, but the llama model's key\/value width \(2 heads × 8\) is 16/);
    expect(String((err as Error).message)).toMatch(/expected \[4, 64\]/);
    const bad = writeSafetensors(new Map([[PROMPT_EMBEDDINGS, { dtype: 'F32' as const, shape: [4, 128], data: new Float32Array(512).fill(NaN) }]]), { format: 'pt' });
    await expect(importPeftAdapter(memoryFolder({ ...files, 'adapter_model.safetensors': bad }), fixture('qwen3'), 'nan')).rejects.toThrow(/holds NaN/);
    expect(() => prefixTuningMethod.exportAdapter({ tensors: new Map([[PROMPT_EMBEDDINGS, new Float32Array(512).fill(Infinity)]]), modules: [], targetModules: [], config: configOf(g), model: fixture('qwen3'), baseModel: 'x' })).toThrow(/refusing to save a diverged adapter/);
  });

  it('draws PEFT\'s ranges: the embedding N(0, 1), each Linear U(±1/√fan_in), reproducibly', () => {
    const init = prefixProjectionInit(5, 40, 24, 96, 3);
    const shapes = prefixProjectionShapes(5, 40, 24, 96);
    for (const t of PREFIX_PROJECTION_TENSORS) expect(init.get(t)!.length, t).toBe(shapes[t].reduce((a, b) => a * b, 1));
    for (const [t, fanIn] of [['transform.0.weight', 40], ['transform.0.bias', 40], ['transform.2.weight', 24]] as const) {
      const v = init.get(t)!;
      expect(Math.max(...v.map(Math.abs)), t).toBeLessThanOrEqual(1 / Math.sqrt(fanIn));
      expect(Math.max(...v.map(Math.abs)), t).toBeGreaterThan(0.8 / Math.sqrt(fanIn));
    }
    expect(prefixProjectionInit(5, 40, 24, 96, 3)).toEqual(init);
  });
});
