import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseModelConfig, type ModelConfig } from '../../model/config.ts';
import { selectTargetModules } from '../../model/weights.ts';
import { FakeHub } from '../../model/sources/testing-hub-server.ts';
import { RunsDb } from '../../store/runs-db.ts';
import { DEFAULT_CONFIG } from '../config.ts';
import { deflated, rawZip, zeroBomb } from '../testing-archive.ts';
import { buildAdapterConfig, exportAdapter, importAdapter, importAnyAdapter, zipAdapter, type AdapterFiles } from '../peft.ts';
import { METHODS } from '../methods/registry.ts';
import { resolveTargets } from '../methods/targets.ts';
import type { EngineEvent } from '../protocol.ts';
import { loadRunAdapter, setWorkerRunsDb } from './adapters.ts';
import { continuationFor, continuationProblems } from './continue.ts';
import { defaultImportName, describeAdapterSource, handleImportAdapter, importedRunConfig } from './import.ts';
import { state, UserError, type LoadedModel } from './state.ts';
import { MemoryKeyValue } from '../../store/testing-kv.ts';

const FIXTURE = join(process.cwd(), 'tests', 'fixtures', 'models');
const fixtureConfig = (name: string): ModelConfig => parseModelConfig(JSON.parse(readFileSync(join(FIXTURE, name, 'config.json'), 'utf8')), name);


/** A PEFT adapter for `config` with deterministic small A and B. */
function makeAdapter(config: ModelConfig, targets: string[] | 'all-linear', rank: number, alpha: number, rslora = false): AdapterFiles {
  const modules = selectTargetModules(config, targets).map((m, i) => ({
    peftPath: m.peftPath,
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    A: Float32Array.from({ length: rank * m.inFeatures }, (_, j) => Math.sin(i + j) / 10),
    B: Float32Array.from({ length: m.outFeatures * rank }, (_, j) => Math.cos(i * 7 + j) / 10),
  }));
  return exportAdapter(modules, buildAdapterConfig({
    baseModel: 'someone/base', rank, alpha, dropout: 0.05, targetModules: targets, fanInFanOut: config.linearLayout === 'conv1d', rslora, model: config,
  }));
}

const llama = fixtureConfig('llama');
let kv: MemoryKeyValue;
let events: EngineEvent[];
const post = (e: EngineEvent) => events.push(e);

beforeEach(() => {
  kv = new MemoryKeyValue({ clone: true });
  events = [];
  setWorkerRunsDb(new RunsDb(kv, { estimate: async () => ({ usage: 0, quota: 1e9 }) }));
  state.model = {
    id: 'model-1', config: llama, quant: 'none',
    summary: { name: 'llama', modelType: 'llama', dtype: 'f32', parameters: 12345 },
  } as unknown as LoadedModel;
});
afterEach(() => {
  setWorkerRunsDb(null);
  state.model = null;
});

describe('importing an adapter', () => {
  it('stores a .zip as an imported run with its config, listed and loadable like a trained run', async () => {
    const files = makeAdapter(llama, ['q_proj', 'v_proj'], 4, 8);
    const file = new File([zipAdapter(files) as Uint8Array<ArrayBuffer>], 'pirate-lora.zip');
    await handleImportAdapter({ type: 'import-adapter', id: 'imp-1', runId: 'run-a', source: { kind: 'zip', file } }, post);

    expect(events).toEqual([{ type: 'adapter-imported', id: 'imp-1', runId: 'run-a', name: 'pirate-lora', modules: 4, warnings: [], method: 'LoRA' }]);
    const runs = new RunsDb(kv);
    const [record] = await runs.list();
    expect(record).toMatchObject({
      id: 'run-a', name: 'pirate-lora', status: 'imported', importedFrom: 'pirate-lora.zip', totalSteps: 0, curves: [], checkpoint: null,
      model: { name: 'llama', modelType: 'llama', quant: 'none', dtype: 'f32', parameters: 12345 },
    });
    expect(record.config).toEqual({ ...DEFAULT_CONFIG, rank: 4, alpha: 8, dropout: 0.05, rslora: false, targets: ['q_proj', 'v_proj'] });
    const m = selectTargetModules(llama, ['q_proj', 'v_proj']);
    expect(record.trainableParams).toBe(m.reduce((s, x) => s + 4 * (x.inFeatures + x.outFeatures), 0));
    // The files as they came, under the run's adapter pointer.
    expect(await runs.loadAdapter('run-a')).toEqual({ ...files });
    const { adapter } = await loadRunAdapter('run-a');
    expect(adapter.modules.map((x) => x.peftPath)).toEqual(m.map((x) => x.peftPath));
  });

  it("stores PEFT's DoRA adapter as a DoRA run (method dora, the magnitudes counted)", async () => {
    const dir = join(process.cwd(), 'tests', 'fixtures', 'golden', 'train_dora_llama_adapter');
    const picked = ['adapter_config.json', 'adapter_model.safetensors'].map((name) => new File([readFileSync(join(dir, name))], name));
    await handleImportAdapter({ type: 'import-adapter', id: 'imp-d', runId: 'run-d', source: { kind: 'folder', files: picked, name: 'dora' } }, post);
    expect(events).toEqual([{ type: 'adapter-imported', id: 'imp-d', runId: 'run-d', name: 'dora', modules: 4, warnings: [], method: 'DoRA' }]);
    const [record] = await new RunsDb(kv).list();
    expect(record.config).toMatchObject({ method: 'dora', rank: 4, alpha: 8, targets: ['q_proj', 'v_proj'] });
    const m = selectTargetModules(llama, ['q_proj', 'v_proj']);
    expect(record.trainableParams).toBe(m.reduce((s, x) => s + 4 * (x.inFeatures + x.outFeatures) + x.outFeatures, 0));
    // Continued as DoRA: A, B and the magnitudes start where the adapter is; another method is refused by name.
    const { initial } = await continuationFor('run-d', record.config, state.model!);
    expect([...initial.keys()].filter((k) => k.endsWith('.lora_magnitude_vector'))).toEqual(m.map((x) => `${x.peftPath}.lora_magnitude_vector`));
    expect(initial.size).toBe(3 * m.length);
    for (const x of m) expect(initial.get(`${x.peftPath}.lora_magnitude_vector`)!.length).toBe(x.outFeatures);
    await expect(continuationFor('run-d', { ...record.config, method: 'lora' }, state.model!)).rejects.toThrow('cannot continue "dora": it is a DoRA adapter and this run trains lora');
  });

  it("stores PEFT's AdaLoRA adapter as an AdaLoRA run (its schedule; continued from its SVD tensors and rank mask)", async () => {
    const dir = join(process.cwd(), 'tests', 'fixtures', 'golden', 'train_adalora_llama_adapter');
    const picked = ['adapter_config.json', 'adapter_model.safetensors'].map((name) => new File([readFileSync(join(dir, name))], name));
    await handleImportAdapter({ type: 'import-adapter', id: 'imp-e', runId: 'run-e', source: { kind: 'folder', files: picked, name: 'ada' } }, post);
    expect(events).toEqual([{ type: 'adapter-imported', id: 'imp-e', runId: 'run-e', name: 'ada', modules: 4, warnings: [], method: 'AdaLoRA' }]);
    const [record] = await new RunsDb(kv).list();
    expect(record.config).toMatchObject({ method: 'adalora', alpha: 8, initR: 6, targetR: 2, tinit: 2, tfinal: 3, deltaT: 2, totalStep: null, targets: ['q_proj', 'v_proj'] });
    const m = selectTargetModules(llama, ['q_proj', 'v_proj']);
    expect(record.trainableParams).toBe(m.reduce((s, x) => s + 6 * (x.inFeatures + x.outFeatures + 1), 0));
    const { initial } = await continuationFor('run-e', record.config, state.model!);
    expect(initial.size).toBe(4 * m.length);
    // layers.1.q_proj kept no triplet (rank 0 in PEFT's file): all masked.
    expect([...initial.get('model.layers.1.self_attn.q_proj.adalora_mask')!]).toEqual([0, 0, 0, 0, 0, 0]);
    await expect(continuationFor('run-e', { ...record.config, initR: 8 }, state.model!)).rejects.toThrow('cannot continue "ada": it has init_r 6 and this run asks for 8');
    await expect(continuationFor('run-e', { ...record.config, method: 'lora' }, state.model!)).rejects.toThrow('cannot continue "ada": it is an AdaLoRA adapter and this run trains lora');
  });

  it('takes a folder, and a name', async () => {
    const files = makeAdapter(llama, 'all-linear', 2, 2, true);
    const picked = Object.entries(files).map(([name, bytes]) => new File([bytes as Uint8Array<ArrayBuffer>], name));
    await handleImportAdapter({ type: 'import-adapter', id: 'imp-2', runId: 'run-b', source: { kind: 'folder', files: picked, name: 'checkpoint-100' }, name: ' mine ' }, post);
    const record = (await new RunsDb(kv).get('run-b'))!;
    expect(record.name).toBe('mine');
    expect(record.importedFrom).toBe('checkpoint-100');
    expect(record.config).toMatchObject({ rank: 2, alpha: 2, rslora: true });
    expect(record.config.targets).toEqual(['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  });

  it("refuses another model's adapter, naming the tensors, and stores nothing", async () => {
    const gpt2 = fixtureConfig('gpt2');
    const file = new File([zipAdapter(makeAdapter(gpt2, ['c_attn'], 4, 8)) as Uint8Array<ArrayBuffer>], 'gpt2-lora.zip');
    const failure = handleImportAdapter({ type: 'import-adapter', id: 'imp-3', runId: 'run-c', source: { kind: 'zip', file } }, post);
    await expect(failure).rejects.toBeInstanceOf(UserError);
    await expect(failure).rejects.toThrow(/tensor "base_model\.model\.transformer\.h\.0\.attn\.c_attn\.lora_A\.weight": the llama model has no linear layer "transformer\.h\.0\.attn\.c_attn"/);
    await expect(failure).rejects.toThrow(/checked against llama/);
    expect(kv.map.size).toBe(0);
    expect(events).toEqual([]);
  });

  it('refuses a wrong shape with both shapes, and a file that is no zip', async () => {
    const other = { ...llama, hiddenSize: 16 } as ModelConfig; // the same module names, other shapes
    const file = new File([zipAdapter(makeAdapter(other, ['q_proj'], 4, 8)) as Uint8Array<ArrayBuffer>], 'small.zip');
    await expect(handleImportAdapter({ type: 'import-adapter', id: 'i', runId: 'r', source: { kind: 'zip', file } }, post))
      .rejects.toThrow(/lora_A\.weight" has shape \[4, 16\], expected \[4, 32\]/);
    const junk = new File([new Uint8Array([1, 2, 3])], 'junk.zip');
    await expect(handleImportAdapter({ type: 'import-adapter', id: 'j', runId: 'r', source: { kind: 'zip', file: junk } }, post))
      .rejects.toThrow(/junk\.zip: not a readable \.zip/);
    expect(kv.map.size).toBe(0);
  });

  it('refuses a zip bomb (1 GiB of zeros in ~1 MiB) as a UserError naming the entry, inflating at most its limit, storing nothing (issue 14)', async () => {
    const config = makeAdapter(llama, ['q_proj'], 4, 8)['adapter_config.json'];
    const bytes = rawZip([deflated('adapter_config.json', config), { name: 'adapter_model.safetensors', data: zeroBomb(1024), size: 1_000_000, crc: 0 }]);
    const file = new File([bytes as Uint8Array<ArrayBuffer>], 'bomb.zip');
    const err = await handleImportAdapter({ type: 'import-adapter', id: 'b', runId: 'r', source: { kind: 'zip', file } }, post).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe('bomb.zip: entry "adapter_model.safetensors": inflates past its declared 1000000 bytes (a lying or damaged archive); stopped there\n(checked against llama)');
    expect(kv.map.size).toBe(0);
  });

  it('downloads a Hub repo (a gated one, with its token) with progress, and names a repo that is no adapter', async () => {
    const hub = await new FakeHub().start();
    try {
      const files = makeAdapter(llama, ['q_proj'], 4, 8);
      hub.addRepo('org/llama-lora', { files: { ...files, 'README.md': '# an adapter' }, token: 'hf_gated' });
      hub.addRepo('org/not-an-adapter', { files: { 'config.json': '{}' } });
      await handleImportAdapter({ type: 'import-adapter', id: 'h1', runId: 'run-h', source: { kind: 'hub', repo: 'org/llama-lora', token: 'hf_gated', baseUrl: hub.baseUrl } }, post);
      expect(events.at(-1)).toMatchObject({ type: 'adapter-imported', name: 'llama-lora', modules: 2 });
      expect(events.some((e) => e.type === 'progress' && e.id === 'h1' && e.stage === 'download')).toBe(true);
      const record = (await new RunsDb(kv).get('run-h'))!;
      expect(record.importedFrom).toBe(`org/llama-lora on the Hub (${hub.baseUrl})`);
      expect(JSON.stringify(record)).not.toContain('hf_gated');
      expect(hub.requests.every((r) => r.authorization === 'Bearer hf_gated' || r.repo !== 'org/llama-lora')).toBe(true);
      await expect(handleImportAdapter({ type: 'import-adapter', id: 'h2', runId: 'run-x', source: { kind: 'hub', repo: 'org/not-an-adapter', baseUrl: hub.baseUrl } }, post))
        .rejects.toThrow('org/not-an-adapter: no adapter_config.json');
    } finally {
      await hub.stop();
    }
  });

  it('needs a loaded model', async () => {
    state.model = null;
    const file = new File([zipAdapter(makeAdapter(llama, ['q_proj'], 4, 8)) as Uint8Array<ArrayBuffer>], 'a.zip');
    await expect(handleImportAdapter({ type: 'import-adapter', id: 'i', runId: 'r', source: { kind: 'zip', file } }, post)).rejects.toThrow(/no model is loaded/);
  });

  it('names sources without their token', () => {
    const hub = { kind: 'hub' as const, repo: 'org/pirate-lora', token: 'hf_secret', baseUrl: 'http://127.0.0.1:9/' };
    expect(describeAdapterSource(hub)).toBe('org/pirate-lora on the Hub (http://127.0.0.1:9/)');
    expect(describeAdapterSource(hub)).not.toContain('hf_secret');
    expect(defaultImportName(hub)).toBe('pirate-lora');
    expect(defaultImportName({ kind: 'zip', file: new File([], 'x.ZIP') })).toBe('x');
  });

  it("derives targets that select exactly the adapter's modules (GPT-2's attention c_proj by path)", async () => {
    const gpt2 = fixtureConfig('gpt2');
    const files = makeAdapter(gpt2, ['attn.c_proj'], 2, 4);
    const adapter = await importAdapter(zipAdapter(files), gpt2);
    const config = importedRunConfig(adapter, gpt2);
    expect(config.targets).toEqual(selectTargetModules(gpt2, ['attn.c_proj']).map((m) => m.peftPath));
    expect(selectTargetModules(gpt2, config.targets).map((m) => m.peftPath)).toEqual(adapter.modules.map((m) => m.peftPath));
  });
});

describe('importing a bottleneck adapter (the studio\'s own layout)', () => {
  it('becomes a run of its method with its reduction factor, activation, modules and parameter count', async () => {
    const c = { ...DEFAULT_CONFIG, method: 'pfeiffer' as const, reductionFactor: 4, adapterActivation: 'silu' as const };
    const { modules, targetModules } = resolveTargets(llama, [], METHODS.pfeiffer.defaultTargets);
    const tensors = new Map(modules.flatMap((m) => METHODS.pfeiffer.tensors(m, c)).map((t) => [t.name, new Float32Array(t.length).fill(0.5)]));
    const files = METHODS.pfeiffer.exportAdapter({ tensors, modules, targetModules, config: c, model: llama, baseModel: 'llama' });
    const adapter = await importAnyAdapter(zipAdapter(files), llama);
    const config = importedRunConfig(adapter, llama);
    expect(config).toMatchObject({ method: 'pfeiffer', reductionFactor: 4, adapterActivation: 'silu' });
    expect(selectTargetModules(llama, config.targets).map((m) => m.peftPath)).toEqual(modules.map((m) => m.peftPath));
  });
});

describe('importing a prompt-learning adapter', () => {
  // P-tuning's file holds the prompt encoder's output only: it is named P-tuning but continues as prompt tuning.
  it.each([
    ['prompt-tuning', 'prompt-tuning'],
    ['p-tuning', 'prompt-tuning'],
    ['prefix-tuning', 'prefix-tuning'],
  ] as const)('a %s adapter is named by its method and stored as a %s run, continued from its table with its virtual tokens', async (id, continuedAs) => {
    const method = METHODS[id];
    const c = { ...DEFAULT_CONFIG, method: id, targets: [], numVirtualTokens: 3 };
    const tensors = new Map(method.ownTensors!(llama, c).map((t) => [t.name, Float32Array.from({ length: t.length }, (_, i) => Math.sin(i + 1) / 10)]));
    const files = method.exportAdapter({ tensors, modules: [], targetModules: [], config: c, model: llama, baseModel: 'llama' });
    const picked = Object.entries(files).map(([name, bytes]) => new File([bytes as Uint8Array<ArrayBuffer>], name));
    await handleImportAdapter({ type: 'import-adapter', id: 'imp-p', runId: 'run-p', source: { kind: 'folder', files: picked, name: id } }, post);
    expect(events).toMatchObject([{ type: 'adapter-imported', id: 'imp-p', runId: 'run-p', name: id, modules: 3, method: method.label }]);
    const [record] = await new RunsDb(kv).list();
    expect(record.config).toEqual({ ...DEFAULT_CONFIG, method: continuedAs, targets: [], numVirtualTokens: 3, ...(id === 'prefix-tuning' && { prefixProjection: false }) });

    const { initial } = await continuationFor('run-p', record.config, state.model!);
    expect([...initial.keys()]).toEqual(['prompt_embeddings']);
    await expect(continuationFor('run-p', { ...record.config, numVirtualTokens: 4 }, state.model!)).rejects.toThrow(`cannot continue "${id}": it has 3 virtual tokens and this run asks for 4`);
    await expect(continuationFor('run-p', { ...record.config, method: 'lora' }, state.model!)).rejects.toThrow(`cannot continue "${id}": it is a ${METHODS[continuedAs].label} adapter and this run trains lora`);
    if (id === 'prefix-tuning') await expect(continuationFor('run-p', { ...record.config, prefixProjection: true }, state.model!)).rejects.toThrow(/with prefix projection: the adapter holds the prefix only/);
  });
});

describe('continuing an adapter', () => {
  const adapter = { rank: 8, alpha: 16, rslora: false, scale: 2 };
  it('accepts the same rank and scale', () => {
    expect(continuationProblems(adapter, { rank: 8, alpha: 16, rslora: false })).toEqual([]);
    // rsLoRA with alpha·√r/r gives the same scale: the same function, accepted.
    expect(continuationProblems({ rank: 4, alpha: 4, rslora: true, scale: 2 }, { rank: 4, alpha: 8, rslora: false })).toEqual([]);
  });
  it('names a rank or scale that differs', () => {
    expect(continuationProblems(adapter, { rank: 4, alpha: 8, rslora: false })).toEqual(["rank 4 differs from the adapter's r = 8"]);
    expect(continuationProblems(adapter, { rank: 8, alpha: 8, rslora: false })).toEqual([
      "alpha 8 scales the update by 1.000, the adapter's lora_alpha 16 by 2.000",
    ]);
  });
});
