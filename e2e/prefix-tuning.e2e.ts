// Prefix tuning (P-tuning v2) in the studio (headless Chrome's SwiftShader WebGPU), on the demo model (Llama, GQA: 2
// key/value heads of 48) and the pirate sample: the Train screen shows its explanation, the article's advice and its
// settings (virtual tokens, prefix projection and, with it, the encoder's width), no targets, and counts PEFT's
// parameters with the projection; it trains to the end; the Runs screen names it and refuses merging; its PEFT .zip is
// PREFIX_TUNING with one prompt_embeddings [n, layers · 2 · Hkv·D] (after the projection); the .zip imports back as a
// run with a warning that the MLP is not in the file, and the Playground answers with it beside the base model.
import { unzipSync } from 'fflate';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openStudio, type Studio } from './harness.ts';
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
    await studio.openWithDemoModel();
    await studio.loadPirateSample();
    await page.getByRole('button', { name: 'Train', exact: true }).click();
    await page.getByTestId('screen-train').waitFor();
    await page.getByRole('button', { name: /^Quick/ }).click();
    await page.getByLabel('Method').selectOption('prefix-tuning');
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
    const params = 6 * K + (32 * K + 32) + (width * 32 + width);
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(params.toLocaleString('en'));
    await page.getByRole('radio', { name: 'max steps' }).check();
    await page.getByLabel('Max steps', { exact: true }).fill('2');
    await page.getByLabel('Batch size').fill('2');
    await page.getByLabel('Max length (tokens)').fill('64');
    await page.getByLabel('Learning rate').fill('0.01');
    await page.getByLabel('Run name').fill('pirate prefix');
    await page.getByTestId('start-training').click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 120_000 }).toBe('Finished');

    await page.getByRole('button', { name: 'Runs', exact: true }).click();
    const card = page.getByTestId('run-card').filter({ hasText: 'pirate prefix' });
    await expect.poll(() => card.count(), { timeout: 30_000 }).toBe(1);
    expect(await card.textContent()).toContain('Prefix tuning · lr');
    const merged = card.getByRole('button', { name: 'Download pirate prefix merged into its base model' });
    expect(await merged.isDisabled()).toBe(true);
    expect(await merged.getAttribute('title')).toMatch(/nothing to merge/);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      card.getByRole('button', { name: 'Download the adapter of pirate prefix as a PEFT .zip' }).click(),
    ]);
    const path = join(ARTIFACTS, 'pirate-prefix-adapter.zip');
    await download.saveAs(path);
    const files = unzipSync(new Uint8Array(readFileSync(path)));
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(adapterConfig).toMatchObject({
      peft_type: 'PREFIX_TUNING', num_virtual_tokens: 6, token_dim: K, num_attention_heads: config.num_key_value_heads,
      num_layers: config.num_hidden_layers, prefix_projection: true, encoder_hidden_size: 32,
    });
    expect(rawSafetensorsHeader(files['adapter_model.safetensors'])['prompt_embeddings']).toMatchObject({ dtype: 'F32', shape: [6, width] });

    await page.getByTestId('import-zip-input').setInputFiles(path);
    await expect.poll(() => page.getByTestId('import-done').textContent(), { timeout: 60_000 }).toMatch(/6 virtual tokens[\s\S]*continues as a plain prefix table/);
    const imported = page.getByTestId('run-card').filter({ hasText: 'imported from pirate-prefix-adapter.zip' });
    await expect.poll(() => imported.count()).toBe(1);
    expect(await imported.getByTestId('run-imported').textContent()).toContain('Prefix tuning, 6 virtual tokens');

    await page.getByRole('button', { name: 'Playground', exact: true }).click();
    await page.getByTestId('screen-playground').waitFor();
    await page.getByLabel('Prompt', { exact: true }).fill('Where does a snake live?');
    await page.getByLabel('Max new tokens').fill('12');
    await page.getByLabel(/pirate prefix/).first().check();
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const columns = page.getByTestId('playground-column');
    await expect.poll(() => columns.count()).toBe(2);
    await expect
      .poll(() => columns.evaluateAll((els) => els.map((e) => e.getAttribute('data-status'))), { timeout: 60_000 })
      .toEqual(['done', 'done']);
    expect(studio.problems).toEqual([]);
  }, 300_000);
});
