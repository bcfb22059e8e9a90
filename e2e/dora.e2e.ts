// DoRA in the studio (headless Chrome's SwiftShader WebGPU): the Train screen offers it with its explanation and
// LoRA's settings (rank, alpha), counts A, B and a magnitude per output row, trains the demo model to the end, and
// the Runs screen's PEFT .zip is a DoRA adapter as PEFT saves one (use_dora, lora_A, lora_B, lora_magnitude_vector).
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

describe('DoRA in the studio', () => {
  it('trains the demo model with DoRA and downloads a PEFT DoRA adapter', async () => {
    const { page } = studio;
    await studio.openWithDemoModel();
    await studio.loadPirateSample();
    await page.getByRole('button', { name: 'Train', exact: true }).click();
    await page.getByTestId('screen-train').waitFor();
    await page.getByRole('button', { name: /^Quick/ }).click();
    await page.getByLabel('Method').selectOption('dora');
    expect(await page.getByTestId('method-explanation').textContent()).toMatch(/magnitude/);
    await page.getByLabel('Rank r').fill('4');
    await page.getByRole('radio', { name: 'PEFT default (q_proj, v_proj)' }).check();

    const config = JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'));
    const q = config.num_attention_heads * config.head_dim;
    const kv = config.num_key_value_heads * config.head_dim;
    const h = config.hidden_size;
    const expected = config.num_hidden_layers * (4 * (h + q) + q + 4 * (h + kv) + kv);
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(expected.toLocaleString('en'));
    await page.getByRole('radio', { name: 'max steps' }).check();
    await page.getByLabel('Max steps', { exact: true }).fill('2');
    await page.getByLabel('Batch size').fill('2');
    await page.getByLabel('Max length (tokens)').fill('64');
    await page.getByLabel('Run name').fill('pirate dora');
    await page.getByTestId('start-training').click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 120_000 }).toBe('Finished');

    await page.getByRole('button', { name: 'Runs', exact: true }).click();
    const card = page.getByTestId('run-card').filter({ hasText: 'pirate dora' });
    await expect.poll(() => card.count(), { timeout: 30_000 }).toBe(1);
    expect(await card.textContent()).toContain('DoRA');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      card.getByRole('button', { name: 'Download the adapter of pirate dora as a PEFT .zip' }).click(),
    ]);
    const path = join(ARTIFACTS, 'pirate-dora-adapter.zip');
    await download.saveAs(path);
    const files = unzipSync(new Uint8Array(readFileSync(path)));
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(adapterConfig).toMatchObject({ peft_type: 'LORA', use_dora: true, r: 4, target_modules: ['q_proj', 'v_proj'] });
    const header = rawSafetensorsHeader(files['adapter_model.safetensors']);
    expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']).toMatchObject({ dtype: 'F32', shape: [4, h] });
    expect(header['base_model.model.model.layers.0.self_attn.v_proj.lora_magnitude_vector']).toMatchObject({ dtype: 'F32', shape: [kv] });
    expect(studio.problems).toEqual([]);
  });
});
