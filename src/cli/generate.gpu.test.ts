// `lora-studio generate` on the fixtures: what it prints is the tokenizer's decoding of what generate() gives for the
// same prompt ids (greedy, seeded sampling, --chat, --adapter), and through main() it exits 0 with the text on stdout,
// or 1 with one `error: …` line.
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { testEngine } from '../gpu/testing-gpu.ts';
import { ChatTemplate } from '../model/chat-template.ts';
import { generate, type GenerateOptions } from '../model/runtime/generate.ts';
import { kernelChoiceFor } from '../model/runtime/linear.ts';
import { loadTransformer, readModelConfig } from '../model/runtime/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { HfTokenizer } from '../model/tokenizer.ts';
import { importAdapter } from '../train/peft.ts';
import { attachAdapter } from './eval.ts';
import { generateCommand } from './generate.ts';
import { main } from './main.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});
afterEach(() => {
  vi.restoreAllMocks();
});

const LLAMA = join(FIXTURES, 'models', 'llama');
const ADAPTER = join(FIXTURES, 'golden', 'train_llama_adapter');
const PROMPT = 'the cat sat on';

const memoryCache = (): TuningCache => {
  const m = new Map<string, string>();
  return { get: (k) => m.get(k), set: (k, v) => void m.set(k, v) };
};

function tokenizer(dir = LLAMA): HfTokenizer {
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  return HfTokenizer.fromJson(read('tokenizer.json'), read('tokenizer_config.json'));
}

/** Runs the command on the shared engine, capturing what it writes. */
async function run(args: string[]) {
  let out = '';
  const err: string[] = [];
  const io = { write: (t: string) => void (out += t), stderr: (l: string) => void err.push(l) };
  await generateCommand(['--model', LLAMA, ...args], { io, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive' });
  return { out, err };
}

/** What the command should print: generate() on the same ids, decoded without special tokens. */
async function expected(ids: number[], options: GenerateOptions, adapterDir?: string): Promise<string> {
  const tok = tokenizer();
  const tf = await loadTransformer(e, nodeFolder(LLAMA), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
  const detach = adapterDir ? attachAdapter(e, tf.model, await importAdapter(nodeFolder(adapterDir), await readModelConfig(nodeFolder(LLAMA)))) : null;
  const r = await generate(e, tf, ids, { stopTokenIds: [tok.eosId!], vocabLimit: tok.vocabSize, ...options });
  detach?.();
  return tok.decode(r.tokens, { skipSpecialTokens: true }) + '\n';
}

describe('generate command', () => {
  it('greedy by default: prints the decoded tokens of generate() on the encoded prompt', async () => {
    const { out, err } = await run(['--prompt', PROMPT, '--max-new-tokens', '8']);
    const ids = tokenizer().encode(PROMPT);
    expect(out).toBe(await expected(ids, { maxNewTokens: 8, temperature: 0 }));
    expect(out.trim().length).toBeGreaterThan(0);
    expect(err.at(-1)).toMatch(new RegExp(`^generate: ${ids.length} prompt tokens, \\d+ new, greedy; `));
  });

  it('--temperature/--top-k/--top-p/--seed: seeded sampling, reproducible', async () => {
    const flags = ['--prompt', PROMPT, '--max-new-tokens', '6', '--temperature', '1.5', '--top-k', '40', '--top-p', '0.95', '--seed', '9'];
    const a = await run(flags);
    const b = await run(flags);
    expect(b.out).toBe(a.out);
    expect(a.out).toBe(await expected(tokenizer().encode(PROMPT), { maxNewTokens: 6, temperature: 1.5, topK: 40, topP: 0.95, seed: 9 }));
    expect(a.err.at(-1)).toContain(', sampled with temperature 1.5, top-k 40, top-p 0.95, seed 9; ');
  });

  it('--chat renders one user message through the chat template with the generation prompt', async () => {
    const tok = tokenizer();
    const template = ChatTemplate.forTokenizer(tok);
    expect(template.isFallback).toBe(false);
    const ids = tok.encode(template.render([{ role: 'user', content: PROMPT }], { addGenerationPrompt: true }), { addSpecialTokens: false });
    const { out, err } = await run(['--prompt', PROMPT, '--chat', '--max-new-tokens', '5']);
    expect(out).toBe(await expected(ids, { maxNewTokens: 5, temperature: 0 }));
    expect(err.at(-1)).toMatch(new RegExp(`^generate: ${ids.length} prompt tokens`));
  });

  it('generation_config.json: do_sample gives the sampling defaults, its eos_token_id stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'generate-config-'));
    for (const f of readdirSync(LLAMA)) copyFileSync(join(LLAMA, f), join(dir, f));
    const ids = tokenizer().encode(PROMPT);
    const write = (json: object) => writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(json));
    const runIn = async (args: string[]) => {
      let out = '';
      const err: string[] = [];
      const io = { write: (t: string) => void (out += t), stderr: (l: string) => void err.push(l) };
      await generateCommand(['--model', dir, '--prompt', PROMPT, ...args], { io, engine: e, tuningCache: memoryCache(), matmulOverride: 'naive' });
      return { out, err };
    };
    write({ do_sample: true, temperature: 0.7, top_k: 5, top_p: 0.9, eos_token_id: 2 });
    const sampled = await runIn(['--max-new-tokens', '4', '--seed', '5']);
    expect(sampled.err.at(-1)).toContain(', sampled with temperature 0.7, top-k 5, top-p 0.9, seed 5; ');
    expect(sampled.out).toBe(await expected(ids, { maxNewTokens: 4, temperature: 0.7, topK: 5, topP: 0.9, seed: 5 }));
    // Flags win over the file: --temperature 0 is greedy.
    expect((await runIn(['--max-new-tokens', '4', '--temperature', '0'])).err.at(-1)).toMatch(/new, greedy; /);
    // The first greedy token declared an eos id there: generation ends right after it.
    const first = (await generate(e, await loadTransformer(e, nodeFolder(LLAMA), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' }), ids, { maxNewTokens: 1 })).tokens[0];
    write({ eos_token_id: [first] });
    const stopped = await runIn(['--max-new-tokens', '6']);
    expect(stopped.err.at(-1)).toMatch(/ 1 new, greedy; stopped at an end-of-sequence token;/);
  });

  it('--adapter applies a PEFT adapter (the one the golden PEFT run trained)', async () => {
    const { out } = await run(['--prompt', PROMPT, '--adapter', ADAPTER, '--max-new-tokens', '6']);
    expect(out).toBe(await expected(tokenizer().encode(PROMPT), { maxNewTokens: 6, temperature: 0 }, ADAPTER));
  });
});

describe('generate through main()', () => {
  /** main() with stdout/stderr captured; it opens (and closes) its own GPU like the real CLI. */
  async function cli(args: string[]) {
    let out = '';
    let err = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((err += String(chunk)), true));
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void (err += a.join(' ') + '\n'));
    vi.stubEnv('LORA_STUDIO_MATMUL', 'naive');
    const code = await main(args);
    vi.unstubAllEnvs();
    return { code, out, err };
  }

  it('streams the text to stdout and exits 0', async () => {
    const { code, out, err } = await cli(['generate', '--model', LLAMA, '--prompt', PROMPT, '--max-new-tokens', '4']);
    expect(err).not.toMatch(/error:/);
    expect(code).toBe(0);
    expect(out).toBe(await expected(tokenizer().encode(PROMPT), { maxNewTokens: 4, temperature: 0 }));
  });

  it.each([
    [['--prompt', PROMPT, '--max-new-tokens', '500'], /^error: the prompt \(\d+ tokens\) \+ max new tokens \(500\) = \d+ exceeds the model's 128 positions/],
    [[], /^error: generate: --prompt is required$/],
    [['--prompt', PROMPT, '--top-p', '0'], /^error: generate: --top-p must be a number in \(0, 1\], got "0"$/],
    [['--prompt', PROMPT, '--temperature', 'hot'], /^error: generate: --temperature must be a number ≥ 0/],
    [['--prompt', PROMPT, '--adapter', '/nonexistent/adapter'], /^error: \/nonexistent\/adapter: no such file or folder/],
  ])('refuses %j with one error line and exit 1', async (args, message) => {
    const { code, out, err } = await cli(['generate', '--model', LLAMA, ...args]);
    expect(code).toBe(1);
    expect(out).toBe('');
    expect(err.trim().split('\n')).toHaveLength(1);
    expect(err.trim()).toMatch(message);
  });
});
