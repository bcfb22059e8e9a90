// Every model fixture (scripts/make_fixtures.py) loads through the TypeScript reader, config mapper and weight naming;
// the names, shapes and PEFT module paths agree with what transformers and peft themselves report (recorded in the
// golden files by scripts/golden_models.py); the golden files are consistent with the loss contract.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openModelWeights } from './load.ts';
import { nodeFolder } from './sources/node-file.ts';
import { expectedTensors, selectTargetModules } from './weights.ts';

const MODELS = fileURLToPath(new URL('../../tests/fixtures/models/', import.meta.url));
const GOLDEN = new URL('../../tests/fixtures/golden/', import.meta.url);
/** Fixtures made for one purpose elsewhere, with no transformers golden of their own: llama-sentencepiece
 *  (scripts/make_spm_fixture.py) exists for its SentencePiece tokenizer in the GGUF tests (src/export/gguf-spm.test.ts). */
const OTHER_PURPOSE = ['llama-sentencepiece'];
const FIXTURES = readdirSync(MODELS).filter((name) => !OTHER_PURPOSE.includes(name)).sort();

interface GoldenRow {
  input_ids: number[];
  labels: number[];
  logits: number[][];
  loss: number;
  tokens: number;
}
interface Golden {
  fixture: string;
  vocab_size: number;
  rows: GoldenRow[];
  loss: number;
  tokens: number;
  parameters: Record<string, number[]>;
  peft: { default: string[]; 'all-linear': string[] };
}
const golden = (name: string): Golden => JSON.parse(readFileSync(new URL(`${name}.json`, GOLDEN), 'utf8'));

const STORAGE: Record<string, string> = { 'gpt2-f16': 'F16', qwen2: 'F16', 'llama-rope-scaling': 'BF16' };

it('the fixture set is the one the issue asks for', () => {
  expect(FIXTURES).toEqual(['gpt2', 'gpt2-f16', 'llama', 'llama-rope-scaling', 'llama-sharded', 'mistral', 'qwen2', 'qwen3']);
});

describe.each(FIXTURES)('fixture %s', (name) => {
  it('loads: config, every expected tensor with its shape, nothing unexpected', async () => {
    const model = await openModelWeights(nodeFolder(`${MODELS}${name}`));
    try {
      expect(model.report.problems).toEqual([]);
      expect(model.report.warnings).toEqual([]);
      const c = model.config;
      expect(c.numLayers).toBeLessThanOrEqual(2);
      expect(c.hiddenSize).toBeLessThanOrEqual(64);
      expect(c.vocabSize).toBeLessThanOrEqual(512);
      expect(c.maxPositions).toBeGreaterThanOrEqual(64);
      expect(c.maxPositions).toBeLessThanOrEqual(128);
      for (const canonical of model.names()) {
        const info = model.info(canonical);
        expect(info.shape).toEqual(model.resolved(canonical).expected.shape);
        expect(info.dtype).toBe(STORAGE[name] ?? 'F32');
        const f32 = await model.read(canonical, 'f32');
        const f16 = await model.read(canonical, 'f16');
        expect(f32.length).toBe(info.numel);
        expect(f16.length).toBe(info.numel);
        expect(f32.every(Number.isFinite)).toBe(true);
      }
      expect(model.names()).toContain('lm_head.weight');
      if (c.tieWordEmbeddings) expect(model.resolved('lm_head.weight').source).toBe(model.resolved('embed.weight').source);
    } finally {
      await model.close();
    }
  });

  it('expected names and shapes are exactly transformers’ parameters; PEFT paths are peft’s', async () => {
    const model = await openModelWeights(nodeFolder(`${MODELS}${name}`));
    await model.close();
    const g = golden(name);
    const ours = Object.fromEntries(expectedTensors(model.config).map((e) => [e.hfName, e.shape]));
    expect(ours).toEqual(g.parameters);
    expect(selectTargetModules(model.config).map((m) => m.peftPath).sort()).toEqual(g.peft.default);
    expect(selectTargetModules(model.config, 'all-linear').map((m) => m.peftPath).sort()).toEqual(g.peft['all-linear']);
  });

  it('the golden file follows the loss contract', () => {
    const g = golden(name);
    expect(g.vocab_size).toBe(JSON.parse(readFileSync(`${MODELS}${name}/config.json`, 'utf8')).vocab_size);
    let ceSum = 0;
    let count = 0;
    for (const row of g.rows) {
      expect(row.logits).toHaveLength(row.input_ids.length);
      expect(row.logits.every((l) => l.length === g.vocab_size)).toBe(true);
      // logits at t predict labels[t+1]; positions whose label is −100 are skipped.
      let rowSum = 0;
      let rowCount = 0;
      for (let t = 0; t + 1 < row.labels.length; t++) {
        const target = row.labels[t + 1];
        if (target === -100) continue;
        const logits = row.logits[t];
        const max = Math.max(...logits);
        const lse = max + Math.log(logits.reduce((s, v) => s + Math.exp(v - max), 0));
        rowSum += lse - logits[target];
        rowCount++;
      }
      expect(rowCount).toBe(row.tokens);
      expect(Math.abs(rowSum / rowCount - row.loss)).toBeLessThan(1e-5 * row.loss);
      ceSum += rowSum;
      count += rowCount;
    }
    expect(count).toBe(g.tokens);
    // Token-weighted over the batch, not the mean of the row means.
    expect(Math.abs(ceSum / count - g.loss)).toBeLessThan(1e-5 * g.loss);
  });
});

describe('fixture layouts', () => {
  it('gpt2 is in the hub layout: unprefixed names and ignored causal-mask buffers', async () => {
    const model = await openModelWeights(nodeFolder(`${MODELS}gpt2`));
    await model.close();
    expect(model.resolved('layers.0.attn.qkv.weight').source).toBe('h.0.attn.c_attn.weight');
    expect(model.report.ignored.sort()).toEqual(['h.0.attn.bias', 'h.1.attn.bias']);
    const f16 = await openModelWeights(nodeFolder(`${MODELS}gpt2-f16`));
    await f16.close();
    expect(f16.resolved('layers.0.attn.qkv.weight').source).toBe('transformer.h.0.attn.c_attn.weight');
  });

  it('llama-sharded is the llama checkpoint in two shards, tensor for tensor', async () => {
    const single = await openModelWeights(nodeFolder(`${MODELS}llama`));
    const sharded = await openModelWeights(nodeFolder(`${MODELS}llama-sharded`));
    try {
      expect(sharded.checkpoint.files).toHaveLength(2);
      expect(sharded.names().sort()).toEqual(single.names().sort());
      for (const canonical of single.names()) {
        expect(Buffer.from(await sharded.checkpoint.readRaw(sharded.resolved(canonical).source)).equals(Buffer.from(await single.checkpoint.readRaw(single.resolved(canonical).source)))).toBe(true);
      }
      expect(golden('llama-sharded').rows).toEqual(golden('llama').rows);
    } finally {
      await Promise.all([single.close(), sharded.close()]);
    }
  });

  it('every fixture has the files of a Hugging Face model folder, chat templates where the arch has one', () => {
    for (const name of FIXTURES) {
      const files = readdirSync(`${MODELS}${name}`);
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) expect(files).toContain(f);
      const tok = JSON.parse(readFileSync(`${MODELS}${name}/tokenizer.json`, 'utf8'));
      const size = Object.keys(tok.model.vocab).length + tok.added_tokens.filter((t: { content: string }) => !(t.content in tok.model.vocab)).length;
      expect(size).toBe(JSON.parse(readFileSync(`${MODELS}${name}/config.json`, 'utf8')).vocab_size);
      const chatTemplate = JSON.parse(readFileSync(`${MODELS}${name}/tokenizer_config.json`, 'utf8')).chat_template;
      expect(typeof chatTemplate === 'string').toBe(!name.startsWith('gpt2'));
    }
  });
});
