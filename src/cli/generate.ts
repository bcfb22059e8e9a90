// `lora-studio generate`: text from a model folder (optionally with a PEFT LoRA adapter), streamed to stdout as the
// tokens come.
//
//   --prompt → [--chat: one user message through the chat template, with the generation prompt] → token ids
//   → src/model/runtime/generate.ts (KV cache, greedy or sampled) → each token through the tokenizer's streaming
//   decoder (special tokens skipped) → stdout. The settings used and why it stopped go to stderr.
//
// Defaults follow the model's generation_config.json as transformers does: its eos_token_id stops generation too, and
// when it says do_sample its temperature / top_k / top_p are the defaults; otherwise greedy. Flags override both.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { createEngine } from '../gpu/engine.ts';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { openNodeGpu } from '../gpu/node.ts';
import { checkGenerateRequest, generate, type GenerateOptions } from '../model/runtime/generate.ts';
import { loadTransformer, readModelConfig } from '../model/runtime/load.ts';
import type { SamplingOptions } from '../model/runtime/sampling.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import type { HfTokenizer } from '../model/tokenizer.ts';
import { optionalInt, optionalString, oneOf, parseFlags, requiredString, UsageError, type FlagValues } from './args.ts';
import { attachAdapter, readAnyAdapter, readChatTemplate, readTokenizer, requireFolder } from './eval.ts';
import { cliKernelChoice } from './tuning-cache.ts';

export const GENERATE_USAGE =
  'lora-studio generate --model DIR --prompt TEXT [--adapter DIR|FILE.zip] [--chat] [--max-new-tokens N] [--temperature T] ' +
  '[--top-k K] [--top-p P] [--seed S] [--dtype f32|f16] [--quant none|nf4]';

/** New tokens when neither --max-new-tokens nor generation_config.json's max_new_tokens says. */
export const DEFAULT_MAX_NEW_TOKENS = 128;

/** Where the command writes: the generated text as it comes, and whole report lines. */
export interface GenerateIo {
  write(text: string): void;
  stderr(line: string): void;
}

const processIo: GenerateIo = {
  write: (text) => void process.stdout.write(text),
  stderr: (line) => void process.stderr.write(`${line}\n`),
};

export interface GenerateDeps {
  io?: GenerateIo;
  /** An engine to run on (tests share one); by default the command opens the GPU and closes it when done. */
  engine?: Engine;
  tuningCache?: TuningCache;
  /** A matmul variant to force (default: $LORA_STUDIO_MATMUL). */
  matmulOverride?: string;
}

const FLAGS = {
  model: { type: 'string' },
  prompt: { type: 'string' },
  adapter: { type: 'string' },
  chat: { type: 'boolean' },
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  dtype: { type: 'string' },
  quant: { type: 'string' },
  help: { type: 'boolean' },
} as const;

/** A number flag within [min, max] (max inclusive unless `below`), or undefined when absent. */
function optionalNumber(values: FlagValues, name: string, min: number, max: number, what: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!(Number.isFinite(n) && n >= min && n <= max)) throw new UsageError(`generate: --${name} must be ${what}, got "${String(v)}"`);
  return n;
}

/** The parts of generation_config.json generate reads; absent or unreadable means transformers' defaults. */
interface GenerationConfig {
  eos: number[];
  doSample: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  maxNewTokens?: number;
}

async function readGenerationConfig(dir: string): Promise<GenerationConfig> {
  const text = await readFile(join(dir, 'generation_config.json'), 'utf8').catch(() => null);
  if (text === null) return { eos: [], doSample: false };
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${dir}/generation_config.json: invalid JSON (${(e as Error).message})`);
  }
  const num = (k: string) => (typeof json[k] === 'number' ? (json[k] as number) : undefined);
  const eos = json.eos_token_id;
  return {
    eos: (Array.isArray(eos) ? eos : [eos]).filter((x): x is number => Number.isInteger(x)),
    doSample: json.do_sample === true,
    temperature: num('temperature'),
    // transformers' GenerationConfig default top_k is 50 (applied only when sampling).
    topK: num('top_k') ?? 50,
    topP: num('top_p'),
    maxNewTokens: num('max_new_tokens'),
  };
}

/** The prompt's token ids: the text as is (with the tokenizer's own special tokens, e.g. BOS), or with --chat one user
 *  message rendered by the chat template (which writes its own special tokens, so none are added). */
async function promptIds(dir: string, tokenizer: HfTokenizer, prompt: string, chat: boolean, io: GenerateIo) {
  if (!chat) return { ids: tokenizer.encode(prompt), endOfTurn: [] as number[] };
  const template = await readChatTemplate(dir, tokenizer);
  if (template.isFallback) io.stderr('generate: the model has no chat template; --chat uses the ChatML fallback');
  const text = template.render([{ role: 'user', content: prompt }], { addGenerationPrompt: true });
  // The fallback's end of turn stops generation when the tokenizer knows it as one token.
  const imEnd = template.isFallback ? tokenizer.tokenToId('<|im_end|>') : undefined;
  return { ids: tokenizer.encode(text, { addSpecialTokens: false }), endOfTurn: imEnd === undefined ? [] : [imEnd] };
}

function describeSampling(s: SamplingOptions, seed: number): string {
  if (s.temperature === 0) return 'greedy';
  const parts = [`temperature ${s.temperature}`];
  if (s.topK > 0) parts.push(`top-k ${s.topK}`);
  if (s.topP < 1) parts.push(`top-p ${s.topP}`);
  return `sampled with ${parts.join(', ')}, seed ${seed}`;
}

export async function generateCommand(args: string[], deps: GenerateDeps = {}): Promise<void> {
  const io = deps.io ?? processIo;
  const flags = parseFlags('generate', args, FLAGS);
  if (flags.help) {
    io.write(`usage: ${GENERATE_USAGE}\n`);
    return;
  }
  const modelDir = requiredString('generate', flags, 'model');
  const prompt = flags.prompt;
  if (typeof prompt !== 'string') throw new UsageError('generate: --prompt is required');
  const adapterPath = optionalString(flags, 'adapter');
  const maxNewFlag = optionalInt('generate', flags, 'max-new-tokens', 1);
  const temperatureFlag = optionalNumber(flags, 'temperature', 0, Number.MAX_VALUE, 'a number ≥ 0 (0 = greedy)');
  const topKFlag = optionalInt('generate', flags, 'top-k', 0);
  const topPFlag = optionalNumber(flags, 'top-p', Number.MIN_VALUE, 1, 'a number in (0, 1]');
  const seedFlag = optionalInt('generate', flags, 'seed', 0);
  if (seedFlag !== undefined && seedFlag > 0xffffffff) throw new UsageError(`generate: --seed must be below 2^32, got ${seedFlag}`);
  const dtype = oneOf('generate', flags, 'dtype', ['f32', 'f16'] as const, 'f32');
  const quant = oneOf('generate', flags, 'quant', ['none', 'nf4'] as const, 'none');

  // Everything that can be wrong with the inputs (the context length included) is checked before the GPU is opened.
  await requireFolder(modelDir);
  const files = nodeFolder(modelDir);
  const config = await readModelConfig(files);
  const tokenizer = await readTokenizer(files, modelDir);
  if (!tokenizer) throw new UsageError(`${modelDir}: no tokenizer.json, which generate needs to encode --prompt and decode the output`);
  const genConfig = await readGenerationConfig(modelDir);
  const { ids, endOfTurn } = await promptIds(modelDir, tokenizer, prompt, !!flags.chat, io);
  if (ids.length === 0) throw new UsageError('generate: --prompt encodes to no tokens; give some text');
  const adapter = adapterPath === undefined ? null : await readAnyAdapter(adapterPath, config);
  // A prompt adapter's virtual tokens take positions ahead of the prompt.
  const room = config.maxPositions - ids.length - (adapter?.kind === 'prompt' ? adapter.numVirtualTokens : 0);
  if (room < 1) {
    throw new UsageError(`generate: the prompt is ${ids.length} tokens, which leaves no room in ${modelDir}'s ${config.maxPositions} positions`);
  }
  // An explicit --max-new-tokens past the context is refused (by generate()); a default is clipped to fit.
  const maxNewTokens = maxNewFlag ?? Math.min(genConfig.maxNewTokens ?? DEFAULT_MAX_NEW_TOKENS, room);
  const sampleDefaults = genConfig.doSample;
  const sampling: SamplingOptions = {
    temperature: temperatureFlag ?? (sampleDefaults ? (genConfig.temperature ?? 1) : 0),
    topK: topKFlag ?? (sampleDefaults ? (genConfig.topK ?? 0) : 0),
    topP: topPFlag ?? (sampleDefaults ? (genConfig.topP ?? 1) : 1),
  };
  const stops = [...genConfig.eos, ...endOfTurn, ...(tokenizer.eosId === null ? [] : [tokenizer.eosId])];
  const options: GenerateOptions = { ...sampling, maxNewTokens, seed: seedFlag, stopTokenIds: stops, vocabLimit: tokenizer.vocabSize };
  checkGenerateRequest(config, ids, options);
  for (const w of adapter?.warnings ?? []) io.stderr(`generate: ${adapterPath}: ${w}`);

  const owned = deps.engine ? null : createEngine(await openNodeGpu());
  const e = deps.engine ?? owned!;
  let detach: (() => void) | null = null;
  try {
    const { kernels } = await cliKernelChoice(e, deps.tuningCache, deps.matmulOverride);
    const tf = await loadTransformer(e, files, kernels, { dtype, quant });
    if (adapter) detach = attachAdapter(e, tf.model, adapter);
    const decoder = tokenizer.streamingDecoder({ skipSpecialTokens: true });
    const t0 = performance.now();
    const result = await generate(e, tf, ids, options, (id) => {
      const text = decoder.push(id);
      if (text) io.write(text);
    });
    const rest = decoder.flush();
    io.write(`${rest}\n`);
    const seconds = (performance.now() - t0) / 1000;
    const why = result.stopReason === 'eos' ? 'stopped at an end-of-sequence token' : `reached ${maxNewTokens} new tokens`;
    io.stderr(
      `generate: ${ids.length} prompt tokens, ${result.tokens.length} new, ${describeSampling(sampling, result.seed)}; ${why}; ` +
        `${seconds.toFixed(2)} s, ${(result.tokens.length / seconds).toFixed(1)} tokens/s`,
    );
  } finally {
    detach?.();
    owned?.gpu.destroy();
  }
}
