import { createReadStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX, loadJsonlDataset } from '../../data/index.ts';
import { ChatTemplate } from '../../model/chat-template.ts';
import { parseModelConfig } from '../../model/config.ts';
import { HfTokenizer } from '../../model/tokenizer.ts';
import { datasetSummary, dimsFromConfig, modelSummary, tokenPreview } from './summary.ts';
import { parameterCount } from '../../model/memory.ts';
import { CATALOGUE } from '../../model/catalogue.ts';
import { storedParameters } from '../../model/testing-safetensors.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const DEMO = join(ROOT, 'public', 'models', 'demo-llama');
const FIXTURE = join(ROOT, 'e2e', 'fixtures', 'chat-with-bad-line.jsonl');
const read = (p: string) => readFileSync(p, 'utf8');

const demoConfig = parseModelConfig(JSON.parse(read(join(DEMO, 'config.json'))));
const tokenizer = HfTokenizer.fromJson(read(join(DEMO, 'tokenizer.json')), read(join(DEMO, 'tokenizer_config.json')));
const template = ChatTemplate.forTokenizer(tokenizer);

describe('model summary', () => {
  it('counts the demo model parameters from its config as its checkpoint stores them (tied head)', () => {
    const s = modelSummary('demo-llama', demoConfig, { dtype: 'f32', hasChatTemplate: true, weightBytes: 123 });
    expect(s.parameters).toBe(storedParameters(join(DEMO, 'model.safetensors')));
    expect(s).toMatchObject({ modelType: 'llama', layers: demoConfig.numLayers, hidden: demoConfig.hiddenSize, vocab: demoConfig.vocabSize, maxPositions: 256, weightBytes: 123 });
    expect(s.defaultTargets).toEqual(['q_proj', 'v_proj']);
    expect(s.linearModules).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  });

  it('maps GPT-2 and Qwen2 configs to the catalogue dims (the published parameter counts)', () => {
    const gpt2 = parseModelConfig({ model_type: 'gpt2', vocab_size: 50257, n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024 });
    expect(parameterCount(dimsFromConfig(gpt2))).toBe(CATALOGUE[0].params);
    const qwenEntry = CATALOGUE.find((e) => e.repo.startsWith('Qwen'))!;
    const qwen = parseModelConfig({
      model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, num_hidden_layers: 24, num_attention_heads: 14,
      num_key_value_heads: 2, intermediate_size: 4864, tie_word_embeddings: true, max_position_embeddings: 32768,
    });
    expect(dimsFromConfig(qwen)).toEqual({ ...qwenEntry.dims, learnedPositions: undefined });
  });
});

describe('dataset summary', () => {
  it('reports the fixture: 8 usable rows, line 5 rejected as invalid JSON, a preview with masked prompts', async () => {
    const data = await loadJsonlDataset(createReadStream(FIXTURE), { tokenizer, template, maxLength: 256, fileName: 'chat-with-bad-line.jsonl' });
    const s = datasetSummary(data, tokenizer);
    expect(s).toMatchObject({ fileName: 'chat-with-bad-line.jsonl', format: 'messages', rows: 8, skipped: 1 });
    expect(s.errors).toHaveLength(1);
    expect(s.errors[0].line).toBe(5);
    expect(s.errors[0].reason).toMatch(/invalid JSON/);
    expect(s.histogram.counts.reduce((a, b) => a + b, 0)).toBe(8);
    expect(s.histogram.edges).toHaveLength(s.histogram.counts.length + 1);
    expect(s.samples).toHaveLength(3);

    // The token texts join to the rendered conversation, and exactly the assistant answer (and its <|im_end|>) is trained.
    const first = s.samples[0].tokens;
    const rendered = template.render([
      { role: 'user', content: 'What colour is the sky?' },
      { role: 'assistant', content: 'Arr! The sky be blue, matey!' },
    ]);
    expect(first.map((t) => t.text).join('')).toBe(rendered);
    const trained = first.filter((t) => t.trained).map((t) => t.text).join('');
    expect(trained).toBe('Arr! The sky be blue, matey!<|im_end|>');
    expect(s.trainedTokens).toBe(data.rows.reduce((n, r) => n + r.labels.slice(1).filter((l) => l !== IGNORE_INDEX).length, 0));
  });

  it('marks position 0 untrained even when its label is set (nothing predicts it)', () => {
    const row = { line: 1, input_ids: Int32Array.from([5, 6, 7]), labels: Int32Array.from([5, 6, IGNORE_INDEX]) };
    expect(tokenPreview(row, null).map((t) => t.trained)).toEqual([false, true, false]);
    expect(tokenPreview(row, null).map((t) => t.text)).toEqual(['5 ', '6 ', '7 ']);
  });
});
