// The worker's side of full fine-tuning on the bundled demo model, with runs in a store over a Map:
//   - a model loaded in f16 (where the adapter has shader-f16) is loaded again in f32 in place before a full run
//     (full-weights.ts), and a model whose f32 weights exceed the GPU's binding is refused before anything loads;
//   - while a full run holds the weights, generation refuses with the reason instead of answering as the "base";
//   - a finished run's saved weights (full-run.ts) generate in the Playground's handler exactly as attaching them by
//     hand does, and the base model answers as before afterwards;
//   - 'merge-model' of the run writes the model folder (model.safetensors in the checkpoint's dtype with the trained
//     values, config.json, the tokenizer and generation files) as a .zip; its cluster export is train.py without PEFT
//     (run.json's method full); GGUF of it is refused, naming why;
//   - continuing the run starts a full run from its weights; continuing it with LoRA is refused by name.
import { unzipSync } from 'fflate';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../gpu/engine.ts';
import { f16ArrayToF32 } from '../../gpu/half.ts';
import { testEngine } from '../../gpu/testing-gpu.ts';
import { ChatTemplate } from '../../model/chat-template.ts';
import { generate } from '../../model/runtime/generate.ts';
import { kernelChoiceFor } from '../../model/runtime/linear.ts';
import { loadTransformer, readModelConfig } from '../../model/runtime/load.ts';
import { nodeFolder } from '../../model/sources/node-file.ts';
import { HfTokenizer } from '../../model/tokenizer.ts';
import { rawSafetensorsHeader } from '../../model/testing-safetensors.ts';
import { RunsDb, type RunRecord } from '../../store/runs-db.ts';
import { DEFAULT_CONFIG, type TrainConfig } from '../config.ts';
import { fullRunFiles } from '../full-run.ts';
import { attachTrainedModel } from '../methods/full/inference.ts';
import type { EngineEvent } from '../protocol.ts';
import { Trainer } from '../trainer.ts';
import { setWorkerRunsDb } from './adapters.ts';
import { continuationFor } from './continue.ts';
import { prepareWeightsFor } from './full-weights.ts';
import { handleGenerate } from './generation.ts';
import { handleMerge } from './merge.ts';
import { state, type LoadedModel } from './state.ts';
import { modelSummary } from './summary.ts';
import { MemoryKeyValue } from '../../store/testing-kv.ts';

const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');


let e: Engine;
let model: LoadedModel;
let runs: RunsDb;
const events: EngineEvent[] = [];
const post = (ev: EngineEvent) => void events.push(ev);
const FULL: TrainConfig = { ...DEFAULT_CONFIG, method: 'full', targets: [], lr: 3e-3, schedule: 'constant', warmupRatio: 0, maxSteps: 3, batchSize: 2, maxLength: 64 };

beforeAll(async () => {
  e = await testEngine();
  const files = nodeFolder(DEMO);
  const config = await readModelConfig(files);
  const tokenizer = HfTokenizer.fromJson(readFileSync(join(DEMO, 'tokenizer.json'), 'utf8'), readFileSync(join(DEMO, 'tokenizer_config.json'), 'utf8'));
  // As the studio loads it: f16 where the adapter can.
  const dtype = e.gpu.hasF16 ? 'f16' : 'f32';
  const transformer = await loadTransformer(e, files, kernelChoiceFor('naive'), { dtype, quant: 'none' });
  model = {
    id: 'model-test', config, files, transformer, tokenizer, template: ChatTemplate.forTokenizer(tokenizer), quant: 'none',
    summary: modelSummary('demo-llama', config, { dtype, hasChatTemplate: true, weightBytes: transformer.model.weightBytes }),
    source: { kind: 'bundled', path: 'models/demo-llama' },
  };
  state.engine = e;
  state.model = model;
  runs = new RunsDb(new MemoryKeyValue(), { estimate: async () => null });
  setWorkerRunsDb(runs);
});

afterAll(() => {
  state.model = null;
  state.engine = null;
  setWorkerRunsDb(null);
});

async function answer(id: string, adapterRunId?: string): Promise<string> {
  events.length = 0;
  await handleGenerate({ type: 'generate', id, prompt: 'What colour is the sky?', adapterRunId, maxNewTokens: 12, temperature: 0, chat: true }, post);
  const done = events.find((ev): ev is Extract<EngineEvent, { type: 'generated' }> => ev.type === 'generated' && ev.id === id);
  if (!done) throw new Error(`no 'generated' event for ${id}`);
  return done.text;
}

function rows() {
  const tok = model.tokenizer!;
  return ['Arr, the sky be blue as the sea, matey.', 'Ahoy! Me ship sails at dawn with the tide.'].map((text) => {
    const ids = Int32Array.from(tok.encode(text));
    return { input_ids: ids, labels: ids.slice() };
  });
}

describe('full fine-tuning in the worker', () => {
  it('refuses a model past the binding before loading anything, then loads f16 weights again in f32 in place', async () => {
    const small = { ...e, gpu: { ...e.gpu, limits: { ...e.gpu.limits, maxStorageBufferBindingSize: 1 << 20 } } } as Engine;
    state.engine = small;
    try {
      await expect(prepareWeightsFor(FULL, model, () => {})).rejects.toThrow(/one f32 buffer of \d+ MiB, above this GPU's largest binding \(1 MiB\): fine-tune it with LoRA or QLoRA/);
    } finally {
      state.engine = e;
    }
    expect(await prepareWeightsFor({ ...FULL, method: 'lora' }, model, () => {})).toBe(false);
    const before = model.transformer;
    const liveBefore = e.buffers.stats().liveBytes;
    const progress: number[] = [];
    const reloaded = await prepareWeightsFor(FULL, model, (done) => progress.push(done));
    expect(reloaded).toBe(e.gpu.hasF16);
    expect(state.model).toBe(model);
    expect(model.transformer.model.dtype).toBe('f32');
    expect(model.summary.dtype).toBe('f32');
    if (reloaded) {
      expect(model.transformer).not.toBe(before);
      expect(progress.length).toBeGreaterThan(0);
      // The f16 weights were given back: only the difference stays in use.
      expect(e.buffers.stats().liveBytes - liveBefore).toBe(model.transformer.model.weightBytes - before.model.weightBytes);
    }
    expect(await prepareWeightsFor(FULL, model, () => {})).toBe(false); // already f32
  });

  it('generates with a finished run\'s weights as attaching them by hand does; downloads them as a model folder; continues from them', async () => {
    const base = await answer('base-1');
    const trainer = new Trainer({ engine: e, transformer: model.transformer, config: FULL, train: rows(), padId: 0 });
    let tensors: Map<string, Float32Array>;
    try {
      while (!trainer.done) await trainer.trainStep();
      // While the run holds the weights the "base model" is not there: refused with the reason.
      await expect(answer('during')).rejects.toThrow(/full fine-tuning run is training this model/);
      tensors = await trainer.trainedTensors();
    } finally {
      trainer.dispose();
    }
    expect(await answer('base-2')).toBe(base);

    const record: RunRecord = {
      id: 'full-1', name: 'demo · full', created: 0, updated: 0,
      model: { name: 'demo-llama', modelType: 'llama', quant: 'none', dtype: 'f32', parameters: 0 },
      dataset: { fileName: 'pirate.jsonl', rows: 2, format: null, evalRows: 0 },
      config: FULL, status: 'finished', message: '', totalSteps: 3, trainableParams: 0,
      curves: [], samples: [], final: null, checkpoint: null, adapter: null,
    };
    await runs.create(record);
    await runs.saveAdapter(record.id, fullRunFiles(tensors, 'demo-llama'), 3);

    const tuned = await answer('tuned', record.id);
    const detach = attachTrainedModel(e, model.transformer.model, tensors);
    let byHand: string;
    try {
      const tok = model.tokenizer!;
      const ids = tok.encode(model.template!.render([{ role: 'user', content: 'What colour is the sky?' }], { addGenerationPrompt: true }), { addSpecialTokens: false });
      const stops = [...model.config.eosTokenIds, tok.eosId!, tok.tokenToId('<|im_end|>')!, 2];
      const r = await generate(e, model.transformer, ids, { maxNewTokens: 12, temperature: 0, stopTokenIds: stops, vocabLimit: tok.vocabSize });
      byHand = tok.decode(r.tokens, { skipSpecialTokens: true });
    } finally {
      detach();
    }
    expect(tuned).toBe(byHand);
    expect(await answer('base-3')).toBe(base);

    // The model folder, as a .zip: the checkpoint's dtype (the demo model's is f16), every trained tensor.
    events.length = 0;
    await handleMerge({ type: 'merge-model', id: 'm1', runId: record.id, dtype: 'f16', to: { kind: 'zip' } }, post);
    const merged = events.find((ev): ev is Extract<EngineEvent, { type: 'merged' }> => ev.type === 'merged');
    expect(merged?.zip?.fileName).toBe('demo-full-model.zip');
    const files = unzipSync(new Uint8Array(await merged!.zip!.blob.arrayBuffer()));
    const names = Object.keys(files).map((p) => p.replace(/^demo-full-model\//, '')).sort();
    expect(names).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']));
    const st = files['demo-full-model/model.safetensors'];
    const header = rawSafetensorsHeader(st);
    const embed = header['model.embed_tokens.weight'];
    expect(embed.dtype).toBe('F16');
    const headerLength = Number(new DataView(st.buffer, st.byteOffset).getBigUint64(0, true));
    const start = 8 + headerLength + embed.data_offsets[0];
    const saved = f16ArrayToF32(new Uint16Array(st.slice(start, start + 2 * 64).buffer));
    const want = tensors.get('model.embed_tokens.weight')!.subarray(0, 64);
    saved.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(1e-3 * Math.abs(want[i]) + 1e-7));
    await expect(handleMerge({ type: 'merge-model', id: 'm2', runId: record.id, dtype: 'f16', to: { kind: 'zip' }, gguf: 'f16' }, post)).rejects.toThrow(/full fine-tuning run: download it as a model folder/);

    // The cluster export of the run: no PEFT config, the run's rows (its dataset loaded, as the Runs screen asks).
    const trainRows = rows().map((r, i) => ({ ...r, line: i + 1 }));
    state.datasets.set('d1', { id: 'd1', modelId: model.id, data: { rows: trainRows } as never, summary: { fileName: 'pirate.jsonl', rows: 2, format: null } as never });
    try {
      events.length = 0;
      await handleMerge({ type: 'merge-model', id: 'm3', runId: record.id, dtype: 'f16', to: { kind: 'zip' }, trl: true }, post);
      const trl = events.find((ev): ev is Extract<EngineEvent, { type: 'merged' }> => ev.type === 'merged');
      const out = unzipSync(new Uint8Array(await trl!.zip!.blob.arrayBuffer()));
      const runJson = Object.entries(out).find(([p]) => p.endsWith('/run.json'));
      expect(runJson, Object.keys(out).join(', ')).toBeDefined();
      expect(JSON.parse(new TextDecoder().decode(runJson![1]))).toMatchObject({ method: { method: 'full', lora: null } });
      expect(Object.keys(out).some((p) => p.endsWith('/train.py'))).toBe(true);
    } finally {
      state.datasets.clear();
    }

    const from = await continuationFor(record.id, FULL, model);
    expect([...from.initial.keys()].sort()).toEqual([...tensors.keys()].sort());
    expect(from.initial.get('model.norm.weight')).toEqual(tensors.get('model.norm.weight'));
    await expect(continuationFor(record.id, { ...FULL, method: 'lora' }, model)).rejects.toThrow(/it is a full fine-tuning run and this run trains lora/);
  }, 300_000); // training, generation, the model folder and continuing: every kernel of the demo model compiled cold in CI
});
