// 'generate': text from the loaded model, alone or with a saved run's adapter, streamed to the UI.
//
//   prompt → [chat: one user message through the model's chat template, with the generation prompt] → token ids
//   → model/runtime/generate.ts (KV cache, greedy or sampled; LoRA dropout off) with the run's adapter attached for
//   this request only (adapters.ts) → each token through the tokenizer's streaming decoder (special tokens skipped)
//   → TextStream (stop strings, chunks at most every 50 ms) → 'token' events → 'generated' with the whole text.
//
// Stops: config.json's and generation_config.json's eos ids, the tokenizer's eos, in chat mode the template's
// end-of-turn tokens the tokenizer knows; the user's stop strings; max new tokens; 'abort-generation'.
import { readText } from '../../model/checkpoint.ts';
import { checkGenerateRequest, generate, type GenerateOptions } from '../../model/runtime/generate.ts';
import type { EngineRequest } from '../protocol.ts';
import { withRunAdapter } from './adapters.ts';
import { requireEngine, requireModel, UserError, type LoadedModel, type Post } from './state.ts';
import { TextStream } from './text-stream.ts';

type Generate = Extract<EngineRequest, { type: 'generate' }>;

/** End-of-turn markers of common chat templates (ChatML, Llama 3, Phi, Gemma): stops in chat mode when known. */
const END_OF_TURN = ['<|im_end|>', '<|eot_id|>', '<|end|>', '<end_of_turn>'];

/** Generations in flight, by request id, for 'abort-generation'. */
const running = new Map<string, AbortController>();
/** Aborts that arrived before their request left the queue. */
const abortedEarly = new Set<string>();

export function abortGeneration(id: string): void {
  const controller = running.get(id);
  if (controller) controller.abort();
  else abortedEarly.add(id);
}

/** generation_config.json's eos ids, read once per loaded model. */
const eosCache = new WeakMap<LoadedModel, Promise<number[]>>();
function generationConfigEos(model: LoadedModel): Promise<number[]> {
  let found = eosCache.get(model);
  if (!found) {
    found = (async () => {
      const source = await model.files.open('generation_config.json');
      if (!source) return [];
      try {
        const json = JSON.parse(await readText(source)) as { eos_token_id?: unknown };
        const eos = json.eos_token_id;
        return (Array.isArray(eos) ? eos : [eos]).filter((x): x is number => Number.isInteger(x));
      } catch {
        return []; // unreadable: config.json's eos still applies
      } finally {
        await source.close?.();
      }
    })();
    eosCache.set(model, found);
  }
  return found;
}

/** The prompt's ids and the stop ids that go with how it was written. */
async function promptOf(model: LoadedModel, prompt: string, chat: boolean): Promise<{ ids: number[]; stopIds: number[] }> {
  const tokenizer = model.tokenizer;
  if (!tokenizer) throw new UserError(`${model.summary.name} has no tokenizer.json: generation needs one to read the prompt and write text`);
  const stopIds = [...(await generationConfigEos(model))];
  if (tokenizer.eosId !== null) stopIds.push(tokenizer.eosId);
  if (!chat) return { ids: tokenizer.encode(prompt), stopIds };
  if (!model.template) throw new UserError(`${model.summary.name} has no chat template: use completion mode`);
  const text = model.template.render([{ role: 'user', content: prompt }], { addGenerationPrompt: true });
  for (const marker of END_OF_TURN) {
    const id = tokenizer.tokenToId(marker);
    if (id !== undefined) stopIds.push(id);
  }
  // The template writes its own special tokens.
  return { ids: tokenizer.encode(text, { addSpecialTokens: false }), stopIds };
}

export async function handleGenerate(req: Generate, post: Post): Promise<void> {
  const e = requireEngine();
  const model = requireModel();
  const controller = new AbortController();
  if (abortedEarly.delete(req.id)) controller.abort();
  running.set(req.id, controller);
  try {
    const { ids, stopIds } = await promptOf(model, req.prompt, req.chat);
    if (ids.length === 0) throw new UserError('the prompt is empty: write something to continue');
    const tokenizer = model.tokenizer!;
    const options: GenerateOptions = {
      maxNewTokens: req.maxNewTokens,
      temperature: req.temperature,
      topK: req.topK ?? 0,
      topP: req.topP ?? 1,
      seed: req.seed,
      stopTokenIds: stopIds,
      vocabLimit: Math.min(tokenizer.vocabSize, model.config.vocabSize),
      signal: controller.signal,
    };
    checkGenerateRequest(model.config, ids, options); // a message naming the value, before anything runs
    const decoder = tokenizer.streamingDecoder({ skipSpecialTokens: true });
    const stream = new TextStream({ stops: req.stop });
    const t0 = performance.now();
    const result = await withRunAdapter(req.adapterRunId, () =>
      generate(e, model.transformer, ids, options, (id) => {
        const chunk = stream.push(decoder.push(id));
        if (chunk) post({ type: 'token', id: req.id, text: chunk });
        if (stream.stopped) controller.abort(); // generate() checks the signal right after this callback
      }),
    );
    if (!stream.stopped) stream.push(decoder.flush());
    const rest = stream.finish();
    if (rest) post({ type: 'token', id: req.id, text: rest });
    post({
      type: 'generated',
      id: req.id,
      text: stream.value,
      stopReason: stream.stopped ? 'stop' : result.stopReason,
      promptTokens: ids.length,
      newTokens: result.tokens.length,
      seconds: (performance.now() - t0) / 1000,
      seed: result.seed,
    });
  } finally {
    running.delete(req.id);
  }
}
