// The worker's 'generate' and 'evaluate' handlers on the bundled demo model (its real tokenizer and ChatML template),
// with adapters read from a runs store over a Map: the streamed chunks add up to the final text, which equals
// generate() run directly; a run's adapter is on the model for its request only (afterwards every linear holds
// exactly what it held before, a training run's LoRA included) and changes the text as attaching it by hand does;
// stop strings cut the text; the base model's eval loss equals the CLI's packed evaluation on the same rows.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadJsonlDataset, splitEval } from '../../data/index.ts';
import type { Engine } from '../../gpu/engine.ts';
import { testEngine } from '../../gpu/testing-gpu.ts';
import { ChatTemplate } from '../../model/chat-template.ts';
import { generate } from '../../model/runtime/generate.ts';
import { kernelChoiceFor, type LoraPair } from '../../model/runtime/linear.ts';
import { loadTransformer, readModelConfig } from '../../model/runtime/load.ts';
import { nodeFolder } from '../../model/sources/node-file.ts';
import { HfTokenizer } from '../../model/tokenizer.ts';
import { Rng } from '../../data/rng.ts';
import { evaluateRows } from '../../cli/eval.ts';
import { RunsDb, type RunRecord } from '../../store/runs-db.ts';
import { attachAdapter } from '../attach-adapter.ts';
import { DEFAULT_CONFIG } from '../config.ts';
import { buildAdapterConfig, exportAdapter, importAdapter, importAnyAdapter } from '../peft.ts';
import { METHODS } from '../methods/registry.ts';
import { resolveTargets } from '../methods/targets.ts';
import type { EngineEvent } from '../protocol.ts';
import { memoryFolder } from '../../model/sources/memory.ts';
import { setWorkerRunsDb } from './adapters.ts';
import { handleEvaluate } from './evaluation.ts';
import { abortGeneration, handleGenerate } from './generation.ts';
import { state, type LoadedModel } from './state.ts';
import { truncateRows } from './run-rows.ts';
import { MemoryKeyValue } from '../../store/testing-kv.ts';

const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');
const DATA = join(process.cwd(), 'public', 'datasets', 'chat-pirate.jsonl');


let e: Engine;
let model: LoadedModel;
let runs: RunsDb;
const events: EngineEvent[] = [];
const post = (ev: EngineEvent) => void events.push(ev);

/** A run with a random adapter on q_proj and v_proj, large enough to change what the model writes. */
async function saveRandomRun(id: string, rank: number, seed: number): Promise<RunRecord> {
  const cfg = model.config;
  const rng = new Rng(seed);
  const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale);
  const modules = model.transformer.model.modules
    .filter((m) => /\.(q_proj|v_proj)$/.test(m.module.peftPath))
    .map(({ module: m }) => ({ peftPath: m.peftPath, inFeatures: m.inFeatures, outFeatures: m.outFeatures, A: rand(rank * m.inFeatures, 0.5), B: rand(m.outFeatures * rank, 0.5) }));
  const files = exportAdapter(
    modules,
    buildAdapterConfig({ baseModel: 'demo-llama', rank, alpha: 2 * rank, dropout: 0, targetModules: ['q_proj', 'v_proj'], fanInFanOut: false, rslora: false, model: cfg }),
  );
  const record: RunRecord = {
    id, name: `random r${rank}`, created: 0, updated: 0,
    model: { name: 'demo-llama', modelType: 'llama', quant: 'none', dtype: 'f32', parameters: 0 },
    dataset: { fileName: 'chat-pirate.jsonl', rows: 0, format: null, evalRows: 0 },
    config: { ...DEFAULT_CONFIG, rank, alpha: 2 * rank }, status: 'finished', message: '', totalSteps: 1, trainableParams: 0,
    curves: [], samples: [], final: null, checkpoint: null, adapter: null,
  };
  await runs.create(record);
  await runs.saveAdapter(id, files, 1);
  return record;
}

beforeAll(async () => {
  e = await testEngine();
  const files = nodeFolder(DEMO);
  const config = await readModelConfig(files);
  const tokenizer = HfTokenizer.fromJson(readFileSync(join(DEMO, 'tokenizer.json'), 'utf8'), readFileSync(join(DEMO, 'tokenizer_config.json'), 'utf8'));
  const transformer = await loadTransformer(e, files, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
  model = {
    id: 'model-test', config, files, transformer, tokenizer, template: ChatTemplate.forTokenizer(tokenizer), quant: 'none',
    summary: { name: 'demo-llama', hasChatTemplate: true } as LoadedModel['summary'],
    source: { kind: 'bundled', path: 'models/demo-llama' },
  } as LoadedModel;
  state.engine = e;
  state.model = model;
  runs = new RunsDb(new MemoryKeyValue(), { estimate: async () => null });
  setWorkerRunsDb(runs);
});

afterAll(() => {
  state.model = null;
  state.engine = null;
  state.datasets.clear();
  setWorkerRunsDb(null);
});

async function run(id: string, o: { prompt?: string; adapterRunId?: string; stop?: string[]; maxNewTokens?: number; chat?: boolean } = {}) {
  events.length = 0;
  await handleGenerate(
    { type: 'generate', id, prompt: o.prompt ?? 'What colour is the sky?', adapterRunId: o.adapterRunId, maxNewTokens: o.maxNewTokens ?? 12, temperature: 0, chat: o.chat ?? true, stop: o.stop },
    post,
  );
  const chunks = events.filter((ev): ev is Extract<EngineEvent, { type: 'token' }> => ev.type === 'token' && ev.id === id).map((ev) => ev.text);
  const done = events.find((ev): ev is Extract<EngineEvent, { type: 'generated' }> => ev.type === 'generated' && ev.id === id);
  if (!done) throw new Error(`no 'generated' event for ${id}`);
  return { chunks, done };
}

/** The text generate() gives directly for the prompt as the handler writes it (one user turn through the template;
 *  stops: config.json's, generation_config.json's and the tokenizer's eos, and ChatML's end of turn). */
async function direct(prompt: string, maxNewTokens: number): Promise<string> {
  const tok = model.tokenizer!;
  const text = model.template!.render([{ role: 'user', content: prompt }], { addGenerationPrompt: true });
  const ids = tok.encode(text, { addSpecialTokens: false });
  const genConfig = JSON.parse(readFileSync(join(DEMO, 'generation_config.json'), 'utf8')) as { eos_token_id: number[] };
  const stops = [...model.config.eosTokenIds, ...genConfig.eos_token_id, tok.eosId!, tok.tokenToId('<|im_end|>')!];
  const r = await generate(e, model.transformer, ids, { maxNewTokens, temperature: 0, stopTokenIds: stops, vocabLimit: tok.vocabSize });
  return tok.decode(r.tokens, { skipSpecialTokens: true });
}

const loraOf = () => model.transformer.model.modules.map((m) => m.linear.lora);

describe('generate handler', () => {
  it('streams the base model’s text in chunks that add up to generate()’s', async () => {
    const { chunks, done } = await run('g1');
    expect(done.text.length).toBeGreaterThan(0);
    expect(chunks.join('')).toBe(done.text);
    expect(done.text).toBe(await direct('What colour is the sky?', 12));
    expect(done.stopReason === 'eos' || done.stopReason === 'length').toBe(true);
    expect(loraOf().every((l) => l === undefined)).toBe(true);
  });

  it('puts a run’s adapter on for its request only, with the same effect as attaching it by hand', async () => {
    const record = await saveRandomRun('run-a', 4, 1);
    const base = (await run('g2', { maxNewTokens: 16 })).done.text;
    const adapted = await run('g3', { adapterRunId: record.id, maxNewTokens: 16 });
    expect(adapted.chunks.join('')).toBe(adapted.done.text);
    expect(adapted.done.text).not.toBe(base);
    expect(loraOf().every((l) => l === undefined)).toBe(true); // the base model is back

    const stored = (await runs.loadAdapter(record.id))!;
    const detach = attachAdapter(e, model.transformer.model, await importAdapter(memoryFolder({ ...stored }), model.config));
    try {
      expect(await direct('What colour is the sky?', 16)).toBe(adapted.done.text);
    } finally {
      detach();
    }
    expect((await run('g4', { maxNewTokens: 16 })).done.text).toBe(base);
  });

  it('generates with a bottleneck adapter run (the studio\'s own layout) as attaching it by hand does', async () => {
    const c = { ...DEFAULT_CONFIG, method: 'houlsby' as const, reductionFactor: 4, adapterActivation: 'silu' as const };
    const { modules, targetModules } = resolveTargets(model.config, [], METHODS.houlsby.defaultTargets);
    const rng = new Rng(7);
    const tensors = new Map(modules.flatMap((m) => METHODS.houlsby.tensors(m, c)).map((t) => [t.name, Float32Array.from({ length: t.length }, () => (rng.next() * 2 - 1) * 0.5)]));
    const files = METHODS.houlsby.exportAdapter({ tensors, modules, targetModules, config: c, model: model.config, baseModel: 'demo-llama' });
    const record: RunRecord = {
      id: 'run-houlsby', name: 'random houlsby', created: 0, updated: 0,
      model: { name: 'demo-llama', modelType: 'llama', quant: 'none', dtype: 'f32', parameters: 0 },
      dataset: { fileName: 'chat-pirate.jsonl', rows: 0, format: null, evalRows: 0 },
      config: c, status: 'finished', message: '', totalSteps: 1, trainableParams: 0,
      curves: [], samples: [], final: null, checkpoint: null, adapter: null,
    };
    await runs.create(record);
    await runs.saveAdapter(record.id, files, 1);
    const base = (await run('gb1', { maxNewTokens: 16 })).done.text;
    const adapted = (await run('gb2', { adapterRunId: record.id, maxNewTokens: 16 })).done.text;
    expect(adapted).not.toBe(base);
    expect(model.transformer.model.modules.every((m) => m.linear.bottleneck === undefined)).toBe(true); // the base model is back
    const detach = attachAdapter(e, model.transformer.model, await importAnyAdapter(memoryFolder({ ...files }), model.config));
    try {
      expect(await direct('What colour is the sky?', 16)).toBe(adapted);
    } finally {
      detach();
    }
  });

  it('leaves a training run’s LoRA pairs exactly as they were', async () => {
    const record = await saveRandomRun('run-b', 2, 2);
    const training = await importAdapter(memoryFolder({ ...(await runs.loadAdapter(record.id))! }), model.config);
    const detachTraining = attachAdapter(e, model.transformer.model, training);
    try {
      const before: (LoraPair | undefined)[] = loraOf();
      expect(before.filter(Boolean).length).toBeGreaterThan(0);
      await run('g5');
      await run('g6', { adapterRunId: 'run-a' });
      const after = loraOf();
      expect(after.length).toBe(before.length);
      after.forEach((l, i) => expect(l).toBe(before[i])); // the same objects, the same buffers
    } finally {
      detachTraining();
    }
  });

  it('cuts the text at a stop string and reports it', async () => {
    const full = (await run('g7', { maxNewTokens: 16 })).done.text;
    const words = full.trim().split(/\s+/);
    expect(words.length).toBeGreaterThan(1);
    const { chunks, done } = await run('g8', { maxNewTokens: 16, stop: [` ${words[1]}`] });
    expect(done.stopReason).toBe('stop');
    expect(done.text).toBe(full.slice(0, full.indexOf(` ${words[1]}`)));
    expect(chunks.join('')).toBe(done.text);
  });

  it('ends early when aborted, and refuses what cannot run with a message naming the value', async () => {
    abortGeneration('g9'); // before it starts: it stops after its first token
    const { done } = await run('g9', { maxNewTokens: 16 });
    expect(done.stopReason === 'aborted' || done.stopReason === 'eos').toBe(true);
    expect(done.newTokens).toBe(1);
    await expect(run('g10', { maxNewTokens: 10_000 })).rejects.toThrow(/exceeds the model's \d+ positions/);
    await expect(run('g11', { adapterRunId: 'missing' })).rejects.toThrow(/run missing does not exist/);
    expect(loraOf().every((l) => l === undefined)).toBe(true);
  });
});

describe('evaluate handler', () => {
  // Checked on lavapipe; on SwiftShader the two evaluations' pipeline compiles take over a minute on a busy machine.
  it.skipIf(process.env.LORA_STUDIO_DRIVER === 'swiftshader')('measures the base model on the held-out rows as the CLI measures them, and an adapter changes it', async () => {
    const text = readFileSync(DATA, 'utf8').split('\n').slice(0, 20).join('\n');
    const data = await loadJsonlDataset(
      (async function* () {
        yield new TextEncoder().encode(text);
      })(),
      { tokenizer: model.tokenizer, template: model.template, maxLength: 64, trainOnPrompt: false, vocabSize: model.config.vocabSize, fileName: 'pirate.jsonl' },
    );
    state.datasets.set('ds', { id: 'ds', modelId: model.id, data, summary: { fileName: 'pirate.jsonl' } as never });
    const request = { type: 'evaluate' as const, id: 'ev1', datasetId: 'ds', evalSplit: 0.2, seed: 3, batchSize: 4, maxLength: 48 };
    events.length = 0;
    await handleEvaluate(request, post);
    const base = events.find((ev) => ev.type === 'evaluated') as Extract<EngineEvent, { type: 'evaluated' }>;
    const held = splitEval(truncateRows(data.rows, 48).rows, 0.2, 3).eval;
    expect(held.length).toBe(4); // one batch each way: few pipeline shapes, quick on SwiftShader
    expect(base.rows).toBe(held.length);
    const cli = await evaluateRows(e, model.transformer, held, { batchTokens: 1024 });
    expect(base.tokens).toBe(cli.tokens);
    expect(Math.abs(base.loss - cli.loss)).toBeLessThan(1e-4 * cli.loss);

    events.length = 0;
    await handleEvaluate({ ...request, id: 'ev2', adapterRunId: 'run-a' }, post);
    const adapted = events.find((ev) => ev.type === 'evaluated') as Extract<EngineEvent, { type: 'evaluated' }>;
    expect(adapted.tokens).toBe(base.tokens);
    expect(Math.abs(adapted.loss - base.loss)).toBeGreaterThan(1e-3);
    expect(loraOf().every((l) => l === undefined)).toBe(true);
  });
});
