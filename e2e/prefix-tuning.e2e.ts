// Prefix tuning (P-tuning v2) in the studio (headless Chrome's SwiftShader WebGPU), on the demo model (Llama, GQA: 2
// key/value heads of 48) and the pirate sample: the Train screen shows its explanation, the article's advice and its
// settings (virtual tokens, prefix projection and, with it, the encoder's width), no targets, and counts PEFT's
// parameters with the projection; it trains to the end; the Runs screen names it and refuses merging; its PEFT .zip is
// PREFIX_TUNING with one prompt_embeddings [n, layers · 2 · Hkv·D] (after the projection); the .zip imports back as a
// run with a warning that the MLP is not in the file, and the Playground answers with it beside the base model.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStudio, type Studio } from './harness.ts';
import { rawSafetensorsHeader } from '../src/model/testing-safetensors.ts';

const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');

let studio: Studio;
beforeAll(async () => {
  studio = await openStudio();
});
afterAll(async () => {
  await studio?.close();
});

describe('prefix tuning in the studio', () => {
  it('trains the demo model through the projection, downloads PEFT\'s PREFIX_TUNING adapter, imports it, answers with it', async () => {
    const { page } = studio;
    await studio.openTrainScreen('prefix-tuning');
    expect(await page.getByTestId('method-explanation').textContent()).toMatch(/every attention layer attends to/);
    expect(await page.getByTestId('method-advice').textContent()).toMatch(/multi-task/);
    expect(await page.getByLabel('Rank r').count()).toBe(0);
    expect(await page.getByTestId('no-targets').textContent()).toMatch(/trained keys and values/);
    expect(await page.getByLabel('Encoder hidden size').count()).toBe(0); // only with the projection
    await page.getByLabel('Virtual tokens', { exact: true }).fill('6');
    await page.getByLabel('Prefix projection').check();
    await page.getByLabel('Encoder hidden size').fill('32');
    const config = JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'));
    const K = config.num_key_value_heads * config.head_dim;
    const width = config.num_hidden_layers * 2 * K;
    // PEFT's PrefixEncoder: the embedding (6, token_dim), Linear(token_dim, 32), tanh, Linear(32, layers · 2 · token_dim).
    const params = 6 * K + (32 * K + 32) + (width * 32 + width);
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(params.toLocaleString('en'));
    await studio.fillRun({ steps: 2, batch: 2, maxLength: 64, learningRate: '0.01', name: 'pirate prefix' });
    await studio.trainToEnd();

    const card = await studio.runCard('pirate prefix');
    expect(await card.textContent()).toContain('Prefix tuning · lr');
    const merged = card.getByRole('button', { name: 'Download pirate prefix merged into its base model' });
    expect(await merged.isDisabled()).toBe(true);
    expect(await merged.getAttribute('title')).toMatch(/nothing to merge/);
    const { path, files } = await studio.download(card, 'Download the adapter of pirate prefix as a PEFT .zip', 'pirate-prefix-adapter.zip');
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(adapterConfig).toMatchObject({
      peft_type: 'PREFIX_TUNING', num_virtual_tokens: 6, token_dim: K, num_attention_heads: config.num_key_value_heads,
      num_layers: config.num_hidden_layers, prefix_projection: true, encoder_hidden_size: 32,
    });
    // PEFT saves the prefix the projection produces, not the projection.
    expect(Object.keys(rawSafetensorsHeader(files['adapter_model.safetensors'])).filter((k) => k !== '__metadata__')).toEqual(['prompt_embeddings']);
    expect(rawSafetensorsHeader(files['adapter_model.safetensors'])['prompt_embeddings']).toMatchObject({ dtype: 'F32', shape: [6, width] });

    await page.getByTestId('import-zip-input').setInputFiles(path);
    await expect.poll(() => page.getByTestId('import-done').textContent(), { timeout: 60_000 }).toMatch(/6 virtual tokens[\s\S]*continues as a plain prefix table/);
    const imported = page.getByTestId('run-card').filter({ hasText: 'imported from pirate-prefix-adapter.zip' });
    await expect.poll(() => imported.count()).toBe(1);
    expect(await imported.getByTestId('run-imported').textContent()).toContain('Prefix tuning, 6 virtual tokens');

    await studio.generateBesideBase(/pirate prefix/, 'Where does a snake live?');
    expect(studio.problems).toEqual([]);
  }, 300_000);
});
