// The first five minutes (issue 16): the bundled demo model, fine-tuned with the Quick preset (what the studio
// picks first; here `lora-studio train --preset quick`) on each sample dataset, visibly learns it. Greedy answers to
// the sample's held-out prompts (public/datasets/index.json's heldOut, which no training row contains), from the base
// model and then with the adapter:
//   chat-pirate      answers begin "Arr!", end "matey!" and still say the right colour / sound / number
//   alpaca-reverse   the held-out list of three words reversed exactly (the answer trimmed: the sample writes its
//                    lists with a leading space, " tomato, black, rock", so each word is one token wherever it stands)
//   text-robot-pip   the story's continuation mentions Pip and a "beep" or "boop"
// The base model passes none; the adapter passes at least the share the issue asks for. Each sample's line (base,
// adapter, steps, seconds) is printed: the README's "first five minutes" table comes from it.
// scripts/check_demo_samples.py runs the same check in transformers + PEFT.
//
// Lavapipe only: the two runs (60 + 100 steps, all-linear) took 7.6 min there on a shared 2-core machine under heavy
// load (pirate 93 s of training, Pip 273 s; Pip now has 75 steps: 313 s at load average 11); the reverse sample (100
// short steps) adds 95 s (85 s of training) at load average 6-9. SwiftShader (no shader-f16, several times slower on these shapes) would add
// well over ten minutes to every test run, and its f32-only kernels are already covered by the trainer and generation
// tests at small sizes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAdapter, readChatTemplate, readTokenizer } from '../cli/load.ts';
import type { CliIo } from '../cli/load.ts';
import { trainCommand } from '../cli/train.ts';
import { cliKernelChoice } from '../cli/tuning-cache.ts';
import type { Engine } from '../gpu/engine.ts';
import type { TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { driverName, testEngine } from '../gpu/testing-gpu.ts';
import type { ChatTemplate } from '../model/chat-template.ts';
import type { ModelConfig } from '../model/config.ts';
import { generate } from '../model/runtime/generate.ts';
import { loadTransformer, readModelConfig } from '../model/runtime/load.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import type { HfTokenizer } from '../model/tokenizer.ts';
import { attachAdapter } from './attach-adapter.ts';

const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');
const DATASETS = join(process.cwd(), 'public', 'datasets');

interface HeldOut {
  prompt: string;
  expect: string[];
}
interface SampleDataset {
  file: string;
  format: 'messages' | 'alpaca' | 'text';
  heldOut: HeldOut[];
}
const index = JSON.parse(readFileSync(join(DATASETS, 'index.json'), 'utf8')) as { datasets: SampleDataset[] };

/** The share of held-out prompts the adapter must pass: issue 16's bars. */
const REQUIRED: Record<SampleDataset['format'], number> = { messages: 0.8, alpaca: 0.6, text: 0.8 };
/** The training matmul: on lavapipe blocked4 trains the pirate sample (all-linear) in 102 s where naive takes 183 s;
 *  generation (one row at a time) keeps naive, faster there for one row (18 s against 54 s for the 20 answers). */
const TRAIN_MATMUL = 'blocked4';
const MAX_NEW_TOKENS: Record<SampleDataset['format'], number> = { messages: 32, alpaca: 32, text: 48 };

/** Whether one greedy answer shows the sample learned (scripts/check_demo_samples.py's `passes`). */
export function passes(format: SampleDataset['format'], answer: string, expect: string[]): boolean {
  const a = answer.trim();
  if (format === 'messages') {
    return a.startsWith('Arr!') && a.endsWith('matey!') && expect.every((w) => a.toLowerCase().includes(w.toLowerCase()));
  }
  if (format === 'alpaca') return a === expect[0];
  const low = a.toLowerCase();
  return low.includes('pip') && (low.includes('beep') || low.includes('boop'));
}

const memoryCache = (): TuningCache => {
  const m = new Map<string, string>();
  return { get: (k) => m.get(k), set: (k, v) => void m.set(k, v) };
};

describe.skipIf(driverName === 'swiftshader')('the demo model learns each sample dataset with --preset quick (issue 16)', () => {
  let e: Engine;
  let dir: string;
  let config: ModelConfig;
  let tokenizer: HfTokenizer;
  let template: ChatTemplate;
  let tf: Awaited<ReturnType<typeof loadTransformer>>;

  beforeAll(async () => {
    e = await testEngine();
    dir = mkdtempSync(join(tmpdir(), 'demo-samples-'));
    const files = nodeFolder(DEMO);
    config = await readModelConfig(files);
    tokenizer = (await readTokenizer(files, DEMO))!;
    template = await readChatTemplate(DEMO, tokenizer);
    const { kernels } = await cliKernelChoice(e, memoryCache(), 'naive');
    tf = await loadTransformer(e, files, kernels, { dtype: 'f32', quant: 'none' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Greedy answers to the held-out prompts, with whatever adapter is attached. */
  async function answers(d: SampleDataset): Promise<string[]> {
    const out: string[] = [];
    for (const h of d.heldOut) {
      const ids =
        d.format === 'text'
          ? tokenizer.encode(h.prompt)
          : tokenizer.encode(template.render([{ role: 'user', content: h.prompt }], { addGenerationPrompt: true }), { addSpecialTokens: false });
      const result = await generate(e, tf, ids, {
        temperature: 0,
        maxNewTokens: MAX_NEW_TOKENS[d.format],
        stopTokenIds: [tokenizer.tokenToId('<|im_end|>')!, tokenizer.tokenToId('<|endoftext|>')!],
        vocabLimit: tokenizer.vocabSize,
      });
      out.push(tokenizer.decode(result.tokens, { skipSpecialTokens: true }));
    }
    return out;
  }

  for (const d of index.datasets) {
    it(`${d.file}: base none, adapter ≥ ${REQUIRED[d.format] * 100}% of ${d.heldOut.length} held-out prompts`, async () => {
      const t0 = performance.now();
      const base = await answers(d);
      const out = join(dir, d.file.replace('.jsonl', ''));
      const lines: string[] = [];
      const io: CliIo = { stdout: (l) => void lines.push(l), stderr: () => {}, progress: () => {}, tty: false };
      const t1 = performance.now();
      await trainCommand(['--model', DEMO, '--data', join(DATASETS, d.file), '--out', out, '--preset', 'quick'], {
        io,
        engine: e,
        tuningCache: memoryCache(),
        matmulOverride: TRAIN_MATMUL,
      });
      const trainSeconds = (performance.now() - t1) / 1000;
      const summary = JSON.parse(lines.at(-1)!) as { steps: number; final_loss: number };
      const firstLoss = (JSON.parse(lines[0]) as { loss: number }).loss;
      const detach = attachAdapter(e, tf.model, await readAdapter(out, config));
      let tuned: string[];
      try {
        tuned = await answers(d);
      } finally {
        detach();
      }
      const ok = (list: string[]) => list.filter((a, i) => passes(d.format, a, d.heldOut[i].expect)).length;
      const n = d.heldOut.length;
      console.log(
        `${d.file} (${driverName}): base ${ok(base)}/${n}, adapter ${ok(tuned)}/${n}; ${summary.steps} steps, loss ` +
          `${firstLoss.toFixed(2)} → ${summary.final_loss.toFixed(2)}, training ${trainSeconds.toFixed(0)} s, all ${((performance.now() - t0) / 1000).toFixed(0)} s\n` +
          d.heldOut
            .slice(0, 3)
            .map((h, i) => `  ${JSON.stringify(h.prompt)}\n    base:    ${JSON.stringify(base[i])}\n    adapter: ${JSON.stringify(tuned[i])}`)
            .join('\n'),
      );
      expect(ok(base), `base answers: ${JSON.stringify(base)}`).toBe(0);
      expect(ok(tuned), `adapter answers: ${JSON.stringify(tuned)}`).toBeGreaterThanOrEqual(Math.ceil(REQUIRED[d.format] * n));
    }, 600_000);
  }
});
