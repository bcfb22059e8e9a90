// GGUF exports checked in the real llama.cpp (node-llama-cpp's prebuilt CPU build): for every fixture architecture
// and the demo model, each with a LoRA adapter, the merged GGUF (f32, f16, q8_0) and the base GGUF with the adapter
// GGUF give, at every position of a fixed prompt, the next-token log-probabilities of our engine running the base
// model with the adapter attached, and the same argmax; llama.cpp's tokenizer gives our token ids for the prompt.
//
// Tolerances (max |Δ log p| over every position and every vocabulary entry), with llama.cpp's KV cache kept in F32:
//   f32 GGUF        1e-4: f32 rounding in two different summation orders (measured ~1e-5).
//   GPT-2 (f32)     5e-3: ggml's CPU GELU reads a table of f16 values (GGML_GELU_FP16), about 1e-3 per activation.
//   f16 GGUF        3e-2: llama.cpp rounds the activations to f16 for every f16 matmul (and the weights are f16).
//   q8_0 GGUF       mean 0.1, max 1.5: llama.cpp quantizes the activations to 8 bits too (blocks of 32).
// The argmax must agree wherever our engine's two most likely tokens are further apart than the tolerance.
// The llama.cpp side runs on the CPU whatever the WebGPU driver, so the file runs once: skipped on SwiftShader when
// lavapipe is installed (the engine's f32 forward is checked on SwiftShader against transformers by forward.gpu.test.ts).
// With llama.cpp's default F16 KV cache the f32 errors grow to ~1e-2 on these fixtures (measured), hence F32 here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { getLlama, type Llama, type Token } from 'node-llama-cpp';
import { readF32 } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import { recordLogits } from '../gpu/kernels/xent.ts';
import { randomArray } from '../gpu/ref/testing.ts';
import { driverName, testEngine } from '../gpu/testing-gpu.ts';
import { attachAdapter } from '../train/attach-adapter.ts';
import type { ModelConfig } from '../model/config.ts';
import { readModelConfig } from '../model/load.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer } from '../model/runtime/load.ts';
import { FIXTURES, packRows } from '../model/runtime/testing.ts';
import { recordForward, releaseActs, releaseBatch, uploadBatch, type Transformer } from '../model/runtime/transformer.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import type { ModelFiles } from '../model/checkpoint.ts';
import { HfTokenizer } from '../model/tokenizer.ts';
import { selectTargetModules } from '../model/weights.ts';
import { buildAdapterConfig, exportAdapter, importAdapter, type LoraAdapter } from '../train/peft.ts';
import { exportAdapterGguf, exportGguf, tokenizerMetadata, type GgufExportType } from './gguf-model.ts';
import { llamaCppSpmTokenize } from './gguf-spm.ts';
import type { GgufFile } from './gguf.ts';

const PROMPT = 'The cat sat on the mat. Hello, world! 42 apples';

const SKIP = driverName === 'swiftshader' && existsSync(join(process.cwd(), '.webgpu', 'lavapipe', 'env.json'));

let e: Engine;
let llama: Llama;
let dir: string;
beforeAll(async () => {
  if (SKIP) return;
  e = await testEngine();
  llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' as never });
  dir = await mkdtemp(join(tmpdir(), 'gguf-llamacpp-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function writeFile(file: GgufFile, path: string): Promise<string> {
  const s = createWriteStream(path);
  for await (const c of file.chunks()) if (!s.write(c)) await new Promise<void>((r) => s.once('drain', () => r()));
  s.end();
  await finished(s);
  return path;
}

/** A PEFT adapter on every linear layer with seeded random A and B, through PEFT's files and our importer. */
async function randomAdapter(config: ModelConfig, seed: number, o: { rank: number; alpha: number; rslora: boolean; scaleB: number }): Promise<LoraAdapter> {
  const modules = selectTargetModules(config, 'all-linear').map((m, i) => ({
    peftPath: m.peftPath,
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    A: randomArray(o.rank * m.inFeatures, seed + 2 * i, 1 / Math.sqrt(m.inFeatures)),
    B: randomArray(m.outFeatures * o.rank, seed + 2 * i + 1, o.scaleB),
  }));
  const peftConfig = buildAdapterConfig({
    baseModel: 'fixture',
    rank: o.rank,
    alpha: o.alpha,
    dropout: 0,
    targetModules: 'all-linear',
    fanInFanOut: config.linearLayout === 'conv1d',
    rslora: o.rslora,
    model: config,
  } as Parameters<typeof buildAdapterConfig>[0]);
  const files = exportAdapter(modules, peftConfig);
  return importAdapter(memoryFolder({ ...files }, 'adapter'), config);
}

/** Our engine's log-probabilities at every position, without and with the adapter attached (unmerged). */
async function engineLogProbs(folder: ModelFiles, adapter: LoraAdapter, ids: number[]): Promise<{ base: Float64Array[]; adapted: Float64Array[] }> {
  const tf: Transformer = await loadTransformer(e, folder, kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
  const base = await forwardLogProbs(tf, ids);
  attachAdapter(e, tf.model, adapter);
  return { base, adapted: await forwardLogProbs(tf, ids) };
}

async function forwardLogProbs(tf: Transformer, ids: number[]): Promise<Float64Array[]> {
  const batch = uploadBatch(e, packRows([{ input_ids: ids }]));
  const rec = e.record('gguf-logits');
  const acts = recordForward(rec, e, tf, batch, true);
  const V = tf.model.config.vocabSize;
  const out = e.buffers.acquire(batch.T * V * 4);
  recordLogits(rec, { T: batch.T, C: tf.model.config.hiddenSize, V }, { hs: acts.hs, Wh: tf.model.head, logits: out }, { elem: tf.model.dtype });
  await rec.submit();
  const logits = await readF32(e.device, out, batch.T * V);
  releaseActs(e, acts);
  releaseBatch(e, batch);
  e.buffers.release(out);
  return ids.map((_, t) => logSoftmax(logits.subarray(t * V, (t + 1) * V)));
}

function logSoftmax(x: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += Math.exp(x[i] - m);
  const lse = m + Math.log(s);
  return Float64Array.from(x as ArrayLike<number>, (v) => v - lse);
}

interface LlamaRun {
  logProbs: Float64Array[];
  tokens: number[];
  prependsBos: boolean;
}

/** llama.cpp's next-token log-probabilities at every position of `ids` (KV cache in F32), and its tokenization of PROMPT. */
async function llamaLogProbs(modelPath: string, ids: number[], vocab: number, loraPath?: string): Promise<LlamaRun> {
  const model = await llama.loadModel({ modelPath });
  try {
    const context = await model.createContext({
      contextSize: 128,
      flashAttention: false,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
      ...(loraPath ? { lora: { adapters: [{ filePath: loraPath }] } } : {}),
    });
    const out = await context.getSequence().controlledEvaluate(ids.map((id) => [id as Token, { generateNext: { probabilities: true } }] as [Token, { generateNext: { probabilities: boolean } }]));
    const logProbs = ids.map((_, t) => {
      const probs = out[t]?.next?.probabilities;
      if (!probs) throw new Error(`llama.cpp gave no probabilities at position ${t}`);
      return Float64Array.from({ length: vocab }, (_, v) => Math.log(probs.get(v as Token) ?? 0));
    });
    await context.dispose();
    return { logProbs, tokens: model.tokenize(PROMPT), prependsBos: model.tokens.shouldPrependBosToken };
  } finally {
    await model.dispose();
  }
}

const F16_TOL = 3e-2;
/** q8_0: mean |Δ log p| bound, and the max (measured up to 1.3 on the random fixtures: 8-bit activations). */
const Q8_TOL = 0.1;
const Q8_MAX = 1.5;

/** Max and mean |Δ log p|, and the positions whose argmax differs among those where the engine's two most likely
 *  tokens are more than `tieGap` apart (closer than the stated error, either order is within tolerance). */
function compare(got: Float64Array[], want: Float64Array[], tieGap: number): { maxAbs: number; meanAbs: number; argmaxDiffers: number[] } {
  let maxAbs = 0;
  let sum = 0;
  let n = 0;
  const argmaxDiffers: number[] = [];
  want.forEach((w, t) => {
    const g = got[t];
    let bw = 0;
    let bg = 0;
    for (let v = 0; v < w.length; v++) {
      const d = Math.abs(g[v] - w[v]);
      maxAbs = Math.max(maxAbs, Number.isNaN(d) ? Infinity : d);
      sum += d;
      n++;
      if (w[v] > w[bw]) bw = v;
      if (g[v] > g[bg]) bg = v;
    }
    let second = -Infinity;
    for (let v = 0; v < w.length; v++) if (v !== bw) second = Math.max(second, w[v]);
    if (bw !== bg && w[bw] - second > tieGap) argmaxDiffers.push(t);
  });
  return { maxAbs, meanAbs: sum / n, argmaxDiffers };
}

const CASES: { name: string; path: string; rslora: boolean }[] = [
  { name: 'gpt2', path: join(FIXTURES, 'models', 'gpt2'), rslora: false },
  { name: 'llama', path: join(FIXTURES, 'models', 'llama'), rslora: false },
  { name: 'llama-sentencepiece', path: join(FIXTURES, 'models', 'llama-sentencepiece'), rslora: false },
  { name: 'llama-rope-scaling', path: join(FIXTURES, 'models', 'llama-rope-scaling'), rslora: false },
  { name: 'mistral', path: join(FIXTURES, 'models', 'mistral'), rslora: true },
  { name: 'qwen2', path: join(FIXTURES, 'models', 'qwen2'), rslora: true },
  { name: 'qwen3', path: join(FIXTURES, 'models', 'qwen3'), rslora: false },
  { name: 'demo-llama', path: join(process.cwd(), 'public', 'models', 'demo-llama'), rslora: false },
];

describe.skipIf(SKIP).each(CASES)('GGUF in llama.cpp: $name', ({ name, path, rslora }) => {
  it('merged f32/f16/q8_0 and base + adapter GGUF match our engine with the adapter attached', async () => {
    const folder = nodeFolder(path);
    const config = await readModelConfig(folder);
    const tokenizer = HfTokenizer.fromJson(await readFile(join(path, 'tokenizer.json'), 'utf8'), await readFile(join(path, 'tokenizer_config.json'), 'utf8'));
    const adapter = await randomAdapter(config, 7, { rank: 4, alpha: 8, rslora, scaleB: 0.5 });
    const ids = tokenizer.encode(PROMPT);
    const V = config.vocabSize;
    const { base, adapted: want } = await engineLogProbs(folder, adapter, ids);
    // The adapter moves the model: a check that would pass with the adapter ignored is no check.
    expect(compare(base, want, 0).maxAbs).toBeGreaterThan(0.05);

    const files: Record<GgufExportType, string> = { f32: '', f16: '', q8_0: '' };
    for (const type of ['f32', 'f16', 'q8_0'] as const) {
      const ex = await exportGguf(folder, { adapter, type });
      try {
        files[type] = await writeFile(ex.file, join(dir, `${name}-merged-${type}.gguf`));
      } finally {
        await ex.close();
      }
    }
    const baseEx = await exportGguf(folder, { type: 'f32' });
    const basePath = await writeFile(baseEx.file, join(dir, `${name}-base-f32.gguf`));
    await baseEx.close();
    const adapterPath = await writeFile(exportAdapterGguf(config, adapter).file, join(dir, `${name}-adapter.gguf`));

    const f32Tol = config.family === 'gpt2' ? 1e-2 : 1e-4;
    const f32 = await llamaLogProbs(files.f32, ids, V);
    const r32 = compare(f32.logProbs, want, 0);
    const lora = compare((await llamaLogProbs(basePath, ids, V, adapterPath)).logProbs, want, 0);
    const r16 = compare((await llamaLogProbs(files.f16, ids, V)).logProbs, want, 2 * F16_TOL);
    const r8 = compare((await llamaLogProbs(files.q8_0, ids, V)).logProbs, want, Q8_MAX);
    const line = (r: ReturnType<typeof compare>) => `max ${r.maxAbs.toExponential(2)} mean ${r.meanAbs.toExponential(2)} argmax≠ ${JSON.stringify(r.argmaxDiffers)}`;
    console.log(`${name} (${ids.length} positions) |Δ log p|: f32 ${line(r32)}; base+adapter ${line(lora)}; f16 ${line(r16)}; q8_0 ${line(r8)}`);

    expect(r32.argmaxDiffers).toEqual([]);
    expect(r32.maxAbs).toBeLessThan(f32Tol);
    // llama.cpp's tokenizer from our metadata: the same ids, BOS prepended exactly when ours prepends it.
    expect(f32.tokens).toEqual(ids.slice(tokenizer.specialPrefix.length, ids.length - tokenizer.specialSuffix.length));
    expect(f32.prependsBos).toBe(tokenizer.specialPrefix.length > 0);
    expect(lora.argmaxDiffers).toEqual([]);
    expect(lora.maxAbs).toBeLessThan(f32Tol);
    expect(r16.argmaxDiffers).toEqual([]);
    expect(r16.maxAbs).toBeLessThan(F16_TOL);
    expect(r8.argmaxDiffers).toEqual([]);
    expect(r8.meanAbs).toBeLessThan(Q8_TOL);
    expect(r8.maxAbs).toBeLessThan(Q8_MAX);
  });
});

// SentencePiece-style tokenizers (tokenizer.ggml.model "llama": scores, token types, add_space_prefix) in llama.cpp's
// own tokenizer: the strings of tests/fixtures/golden/llama-sentencepiece-tokens.json (spaces, newlines, tabs,
// characters in the vocabulary, characters only byte fallback writes) tokenize to our ids, which are transformers'
// (gguf-spm.test.ts). Two layouts: llama-sentencepiece (transformers 5: Metaspace pre-tokenizer) and llama (legacy:
// Prepend + Replace normalizer). A Metaspace pre-tokenizer puts no "▁" before a text that already begins with a space,
// llama.cpp (as SentencePiece) always does: there llama.cpp's ids for " x" are ours for "  x" (README, GGUF section).
// Our model of llama.cpp's SPM joins (gguf-spm.ts, which vets every exported vocabulary) is checked against it here too.
// Two more cases edit a fixture: prepend_scheme "never" (add_space_prefix false in the GGUF), and no post-processor
// with tokenizer_config's add_bos_token and add_eos_token true (add_eos_token true in the GGUF).
const SPM_CASES: { name: string; fixture: string; edit: 'none' | 'never' | 'eos' }[] = [
  { name: 'llama-sentencepiece', fixture: 'llama-sentencepiece', edit: 'none' },
  { name: 'llama', fixture: 'llama', edit: 'none' },
  { name: 'llama-sentencepiece, prepend_scheme never', fixture: 'llama-sentencepiece', edit: 'never' },
  { name: 'llama, add_eos_token', fixture: 'llama', edit: 'eos' },
];
describe.skipIf(SKIP).each(SPM_CASES)('SentencePiece tokenizer in llama.cpp: $name', ({ name, fixture, edit }) => {
  it('llama.cpp tokenizes the golden strings to our ids; byte fallback included; the BOS/EOS flags', async () => {
    const path = join(FIXTURES, 'models', fixture);
    const files: Record<string, Uint8Array | string> = {};
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) files[f] = new Uint8Array(await readFile(join(path, f)));
    let tokenizerText = await readFile(join(path, 'tokenizer.json'), 'utf8');
    let tokenizerConfigText = await readFile(join(path, 'tokenizer_config.json'), 'utf8');
    if (edit === 'never') {
      const json = JSON.parse(tokenizerText) as { pre_tokenizer: { prepend_scheme: string } };
      json.pre_tokenizer.prepend_scheme = 'never';
      files['tokenizer.json'] = tokenizerText = JSON.stringify(json);
    } else if (edit === 'eos') {
      files['tokenizer.json'] = tokenizerText = JSON.stringify({ ...JSON.parse(tokenizerText), post_processor: null });
      files['tokenizer_config.json'] = tokenizerConfigText = JSON.stringify({ ...JSON.parse(tokenizerConfigText), add_bos_token: true, add_eos_token: true });
    }
    const folder = memoryFolder(files, fixture);
    const config = await readModelConfig(folder);
    const tokenizer = HfTokenizer.fromJson(tokenizerText, tokenizerConfigText);
    expect(tokenizer.specialSuffix).toEqual(edit === 'eos' ? [2] : []);
    const meta = tokenizerMetadata(config, tokenizerText, tokenizerConfigText, null);
    expect(meta.sentencePiece!.addSpacePrefix).toBe(edit !== 'never');
    const get = (k: string) => meta.kv.find((kv) => kv.key === k)?.value.value;
    const tokens = get('tokenizer.ggml.tokens') as string[];
    const scores = get('tokenizer.ggml.scores') as Float32Array;
    const ids = new Map(tokens.map((t, i) => [t, i]));
    const golden = JSON.parse(await readFile(join(FIXTURES, 'golden', 'llama-sentencepiece-tokens.json'), 'utf8')) as { strings: { text: string }[] };

    const ex = await exportGguf(folder, { type: 'f32' });
    const ggufPath = await writeFile(ex.file, join(dir, `${fixture}-${edit}-tokenizer.gguf`));
    await ex.close();
    const model = await llama.loadModel({ modelPath: ggufPath });
    try {
      expect(model.tokens.shouldPrependBosToken).toBe(true);
      expect(model.tokens.shouldAppendEosToken).toBe(edit === 'eos');
      let bytes = 0;
      for (const { text } of golden.strings) {
        const theirs = [...model.tokenize(text)].map(Number);
        const shifted = meta.sentencePiece!.metaspace && meta.sentencePiece!.addSpacePrefix && text.startsWith(' ');
        const ours = tokenizer.encode(shifted ? ' ' + text : text, { addSpecialTokens: false });
        expect(theirs, JSON.stringify(text)).toEqual(ours);
        const escaped = ((meta.sentencePiece!.addSpacePrefix ? ' ' : '') + text).replaceAll(' ', '\u2581');
        expect(llamaCppSpmTokenize(escaped, ids, scores), JSON.stringify(text)).toEqual(theirs);
        bytes += theirs.filter((id) => /^<0x[0-9A-F]{2}>$/.test(tokens[id])).length;
      }
      // ж, €, 😀 and ✓ are in neither vocabulary: byte fallback wrote them (and "日本語" too in the legacy fixture).
      expect(bytes).toBeGreaterThanOrEqual(14);
      console.log(`${name}: ${golden.strings.length} strings tokenized alike by llama.cpp and us, ${bytes} byte tokens`);
    } finally {
      await model.dispose();
    }
  });
});
