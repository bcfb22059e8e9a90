// The other methods of the registry in the studio (headless Chrome's SwiftShader WebGPU), on the demo model and the
// pirate sample. IA³: the Train screen shows
// the method's explanation and advice and only its settings (no rank or alpha), counts its parameters as PEFT does
// (one vector per layer: k_proj and v_proj outputs, down_proj's input), trains to the end, and the Runs screen names
// the method, offers the PEFT .zip (peft_type IA3, ia3_l tensors) and merging; the .zip imports back as a run, and a run
// continues from it. DoRA: the Train screen offers it with LoRA's settings (rank, alpha), counts A, B and a magnitude
// per output row, trains to the end, and the Runs screen's PEFT .zip is a DoRA adapter as PEFT saves one (use_dora,
// lora_A, lora_B, lora_magnitude_vector). AdaLoRA: the Train screen shows its settings (init_r, target_r, the schedule)
// and counts A, E and B, trains to the end, and its PEFT .zip is ADALORA with the rank pattern of the final budget and
// tensors cut to it. Full fine-tuning: the Train screen offers it without rank, alpha or targets
// and counts every weight of the model, trains a few steps to the end, the Runs screen calls it a whole model and
// downloads it as a model folder (.zip: model.safetensors in the checkpoint's dtype, config.json, the tokenizer files)
// instead of an adapter or a merge, and the Playground answers with it beside the base model. It is stopped once and
// resumed from the Runs screen on the way (its IndexedDB checkpoint holds the whole model).
// Prompt tuning: the Train screen shows its settings (virtual tokens, TEXT init) and no targets, counts virtual tokens
// × hidden, trains to the end; the Runs screen names it, refuses merging, and its PEFT .zip is PROMPT_TUNING with
// prompt_embeddings; the .zip imports back, and the Playground answers with it. P-tuning: the same path with the prompt
// encoder's width as its setting, counted as PEFT counts the encoder (the MLP, and the LSTM when selected); its .zip is P_TUNING holding only the encoder's
// output (prompt_embeddings). Houlsby adapters: reduction factor and activation on the Train screen, the bottleneck
// MLPs counted per wrapped module (o_proj and down_proj); the Runs screen offers the studio's own layout (not PEFT's)
// and no merge; the .zip (lora-studio-bottleneck/1) imports back, and the Playground answers with it.
import { unzipSync } from 'fflate';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openStudio, type Studio } from './harness.ts';
import { rawSafetensorsHeader, rawSafetensorsHeaderOfFile } from '../src/model/testing-safetensors.ts';

const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');
const config = JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'));

let studio: Studio;
beforeAll(async () => {
  studio = await openStudio();
});
afterAll(async () => {
  await studio?.close();
});

describe('IA³ and DoRA in the studio', () => {
  it('trains the demo model with IA³ and downloads a PEFT IA³ adapter', async () => {
    const { page } = studio;
    await studio.openTrainScreen('ia3');
    expect(await page.getByTestId('method-explanation').textContent()).toMatch(/scaling vector/);
    expect(await page.getByLabel('Rank r').count()).toBe(0);
    // The Quick preset picks all-linear; IA³'s own PEFT default is k_proj, v_proj and down_proj.
    await page.getByRole('radio', { name: 'PEFT default (k_proj, v_proj, down_proj)' }).check();

    const kv = (config.hidden_size / config.num_attention_heads) * (config.num_key_value_heads ?? config.num_attention_heads);
    const expected = config.num_hidden_layers * (kv + kv + config.intermediate_size);
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(expected.toLocaleString('en'));
    await studio.fillRun({ steps: 3, batch: 2, maxLength: 64, name: 'pirate ia3' });
    await studio.trainToEnd();

    const card = await studio.runCard('pirate ia3');
    expect(await card.textContent()).toContain('IA³ · lr');
    expect(await card.getByRole('button', { name: 'Export pirate ia3 for a GPU cluster (TRL + accelerate)' }).getAttribute('title')).toMatch(/takes LoRA, DoRA and full fine-tuning runs only/);
    expect(await card.getByRole('button', { name: 'Download pirate ia3 merged into its base model' }).isDisabled()).toBe(false);
    const { path, files } = await studio.download(card, 'Download the adapter of pirate ia3 as a PEFT .zip', 'pirate-ia3-adapter.zip');
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(adapterConfig).toMatchObject({ peft_type: 'IA3', target_modules: ['down_proj', 'k_proj', 'v_proj'], feedforward_modules: ['down_proj'] });
    const header = rawSafetensorsHeader(files['adapter_model.safetensors']);
    expect(header['base_model.model.model.layers.0.self_attn.k_proj.ia3_l']).toMatchObject({ dtype: 'F32', shape: [kv, 1] });
    expect(header['base_model.model.model.layers.0.mlp.down_proj.ia3_l']).toMatchObject({ dtype: 'F32', shape: [1, config.intermediate_size] });
    expect(studio.problems).toEqual([]);

    // Imported back as a run (PEFT's IA³ layout read), then continued from for one step, the method locked.
    await page.getByTestId('import-zip-input').setInputFiles(path);
    await expect.poll(() => page.getByTestId('import-done').textContent(), { timeout: 60_000 }).toContain(`IA³ module`);
    const imported = page.getByTestId('run-card').filter({ hasText: 'imported from pirate-ia3-adapter.zip' });
    await expect.poll(() => imported.count()).toBe(1);
    expect(await imported.getByTestId('run-imported').textContent()).toContain('· IA³ on');
    await imported.getByRole('button', { name: /^Continue training from the adapter of/ }).click();
    await page.getByTestId('screen-train').waitFor();
    expect(await page.getByTestId('train-from').textContent()).toContain('Continues from the IA³ adapter');
    expect(await page.getByLabel('Method').isDisabled()).toBe(true);
    await page.getByLabel('Max steps', { exact: true }).fill('1');
    await studio.trainToEnd();
    expect(studio.problems).toEqual([]);
  });

  it('trains the demo model with DoRA and downloads a PEFT DoRA adapter', async () => {
    const { page } = studio;
    await studio.openTrainScreen('dora');
    expect(await page.getByTestId('method-explanation').textContent()).toMatch(/magnitude/);
    await page.getByLabel('Rank r').fill('4');
    await page.getByRole('radio', { name: 'PEFT default (q_proj, v_proj)' }).check();

    const q = config.num_attention_heads * config.head_dim;
    const kv = config.num_key_value_heads * config.head_dim;
    const h = config.hidden_size;
    const expected = config.num_hidden_layers * (4 * (h + q) + q + 4 * (h + kv) + kv);
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(expected.toLocaleString('en'));
    await studio.fillRun({ steps: 2, batch: 2, maxLength: 64, name: 'pirate dora' });
    await studio.trainToEnd();

    const card = await studio.runCard('pirate dora');
    expect(await card.textContent()).toContain('DoRA');
    const { path, files } = await studio.download(card, 'Download the adapter of pirate dora as a PEFT .zip', 'pirate-dora-adapter.zip');
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(adapterConfig).toMatchObject({ peft_type: 'LORA', use_dora: true, r: 4, target_modules: ['q_proj', 'v_proj'] });
    const header = rawSafetensorsHeader(files['adapter_model.safetensors']);
    expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']).toMatchObject({ dtype: 'F32', shape: [4, h] });
    expect(header['base_model.model.model.layers.0.self_attn.v_proj.lora_magnitude_vector']).toMatchObject({ dtype: 'F32', shape: [kv] });
    expect(studio.problems).toEqual([]);
  });

  it('trains the demo model with AdaLoRA and downloads a PEFT AdaLoRA adapter at its rank pattern', async () => {
    const { page } = studio;
    await studio.openTrainScreen('adalora');
    expect(await page.getByTestId('method-explanation').textContent()).toMatch(/SVD form/);
    expect(await page.getByTestId('method-advice').textContent()).toMatch(/pruning the unimportant ones/);
    expect(await page.getByLabel('Rank r').count()).toBe(0);
    await page.getByLabel('Initial rank init_r').fill('4');
    await page.getByLabel('Target rank target_r').fill('2');
    await page.getByRole('radio', { name: 'PEFT default (q_proj, v_proj)' }).check();
    const q = config.num_attention_heads * config.head_dim;
    const kv = config.num_key_value_heads * config.head_dim;
    const h = config.hidden_size;
    const L = config.num_hidden_layers;
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain((L * (4 * (h + q + 1) + 4 * (h + kv + 1))).toLocaleString('en'));
    await studio.fillRun({ steps: 2, batch: 2, maxLength: 64, name: 'pirate adalora' });
    await studio.trainToEnd();

    const card = await studio.runCard('pirate adalora');
    expect(await card.textContent()).toContain('AdaLoRA r4 → 2 α');
    const { files } = await studio.download(card, 'Download the adapter of pirate adalora as a PEFT .zip', 'pirate-adalora-adapter.zip');
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    // total_step: the run's 2 steps; the budget ends at target_r per module on average.
    expect(adapterConfig).toMatchObject({ peft_type: 'ADALORA', init_r: 4, target_r: 2, total_step: 2, target_modules: ['q_proj', 'v_proj'] });
    const pattern = adapterConfig.rank_pattern as Record<string, boolean[]>;
    expect(Object.keys(pattern)).toHaveLength(2 * L);
    expect(Object.values(pattern).flat().filter(Boolean)).toHaveLength(2 * 2 * L);
    const header = rawSafetensorsHeader(files['adapter_model.safetensors']);
    const kept = pattern['model.layers.0.self_attn.q_proj.lora_E'].filter(Boolean).length;
    expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_A']).toMatchObject({ dtype: 'F32', shape: [kept, h] });
    expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_E']).toMatchObject({ dtype: 'F32', shape: [kept, 1] });
    expect(studio.problems).toEqual([]);
  });

  it('fully fine-tunes the demo model, downloads it as a model folder and answers with it in the Playground', async () => {
    const { page } = studio;
    await studio.openTrainScreen('full');
    expect(await page.getByTestId('method-explanation').textContent()).toMatch(/every weight/);
    expect(await page.getByTestId('method-advice').textContent()).toMatch(/learning rate/);
    expect(await page.getByLabel('Rank r').count()).toBe(0);
    expect(await page.getByTestId('targets').count()).toBe(0);
    expect(await page.getByTestId('whole-model').textContent()).toMatch(/not as an adapter/);
    // Every weight of the checkpoint (the head is tied: the embedding, once).
    const { header } = rawSafetensorsHeaderOfFile(join(DEMO, 'model.safetensors'));
    const weights = Object.entries(header).filter(([k]) => k !== '__metadata__').reduce((n, [, t]) => n + (t as { shape: number[] }).shape.reduce((a, b) => a * b, 1), 0);
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(weights.toLocaleString('en'));
    expect(await page.getByTestId('trainable-params').textContent()).toContain('every weight of the model');
    expect(await page.getByTestId('memory-estimate').textContent()).toMatch(/trained copy/);
    await studio.screenshot('train-full');
    await studio.fillRun({ steps: 3, batch: 2, maxLength: 64, learningRate: '0.0003', checkpointEvery: 1, name: 'pirate full' });
    expect(await page.getByTestId('start-blocker').count()).toBe(0);
    await page.getByTestId('start-training').click();
    // Stopped early, then resumed from the Runs screen: the checkpoint in IndexedDB holds the whole model.
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 120_000 }).toBe('Training');
    await page.getByRole('button', { name: 'Stop and save' }).click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 120_000 }).toBe('Stopped');
    const card = await studio.runCard('pirate full');
    await card.getByRole('button', { name: /^Resume from step \d+$/ }).click();
    await page.getByTestId('screen-train').waitFor();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 120_000 }).toBe('Finished');
    expect(await page.getByTestId('run-view').textContent()).toMatch(/resumed from step \d+/);
    await page.getByRole('button', { name: 'Runs', exact: true }).click();
    await expect.poll(() => card.getByTestId('run-status').textContent(), { timeout: 30_000 }).toBe('finished');
    expect(await card.textContent()).toContain('Full fine-tuning · lr');
    expect(await card.getByTestId('run-whole-model').textContent()).toMatch(/A whole model, not an adapter/);
    expect(await card.getByRole('button', { name: 'Download pirate full merged into its base model' }).count()).toBe(0);
    expect(await card.getByRole('button', { name: 'Download the adapter of pirate full as a PEFT .zip' }).count()).toBe(0);
    expect(await card.getByRole('button', { name: 'Export pirate full for a GPU cluster (TRL + accelerate)' }).isDisabled()).toBe(false);
    await card.getByRole('button', { name: 'Download pirate full as a model folder' }).click();
    const panel = card.getByTestId('full-model-panel');
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 60_000 }),
      panel.getByRole('button', { name: /^Download \.zip/ }).click(),
    ]);
    const path = join(ARTIFACTS, 'pirate-full-model.zip');
    await download.saveAs(path);
    const files = unzipSync(new Uint8Array(readFileSync(path)));
    expect(Object.keys(files).sort()).toEqual(expect.arrayContaining([
      'pirate-full-model/config.json', 'pirate-full-model/model.safetensors', 'pirate-full-model/tokenizer.json', 'pirate-full-model/tokenizer_config.json',
    ]));
    const model = rawSafetensorsHeader(files['pirate-full-model/model.safetensors']);
    expect(model['model.embed_tokens.weight']).toMatchObject({ dtype: 'F16', shape: [config.vocab_size, config.hidden_size] });
    expect(model['model.layers.0.mlp.down_proj.weight']).toMatchObject({ dtype: 'F16', shape: [config.hidden_size, config.intermediate_size] });
    expect(Object.keys(model).filter((k) => k !== '__metadata__').sort()).toEqual(Object.keys(header).filter((k) => k !== '__metadata__').sort());
    expect(JSON.parse(new TextDecoder().decode(files['pirate-full-model/config.json']))).toMatchObject({ model_type: 'llama', hidden_size: config.hidden_size });
    await expect.poll(() => panel.getByTestId('merge-message').textContent()).toMatch(/Saved the fully fine-tuned model: pirate-full-model\.zip/);

    await page.getByRole('button', { name: 'Playground', exact: true }).click();
    await page.getByTestId('screen-playground').waitFor();
    await page.getByLabel(/^pirate full/).check();
    await page.getByLabel('Prompt').fill('What colour is the sky?');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const columns = page.getByTestId('playground-column');
    await expect.poll(() => columns.count()).toBe(2);
    await expect
      .poll(() => columns.evaluateAll((els) => els.map((e) => e.getAttribute('data-status'))), { timeout: 60_000 })
      .toEqual(['done', 'done']);
    expect(await columns.locator('.gen-label').allTextContents()).toEqual(['Base model', expect.stringContaining('pirate full')]);
    for (const status of await columns.getByTestId('playground-column-status').allTextContents()) expect(status).toMatch(/^\d+ tokens/);
    expect(studio.problems).toEqual([]);
  });

  it('trains the demo model with prompt tuning (TEXT init), downloads PEFT\'s PROMPT_TUNING adapter, imports it, answers with it', async () => {
    const { page } = studio;
    await studio.openTrainScreen('prompt-tuning');
    expect(await page.getByTestId('method-explanation').textContent()).toMatch(/virtual tokens/);
    expect(await page.getByTestId('method-advice').textContent()).toMatch(/large models/);
    expect(await page.getByLabel('Rank r').count()).toBe(0);
    expect(await page.getByTestId('no-targets').textContent()).toMatch(/Wraps no layer/);
    await page.getByLabel('Virtual tokens', { exact: true }).fill('8');
    await page.getByLabel('Virtual tokens start as').selectOption('text');
    await page.getByLabel('Init text').fill('Answer like a pirate:');
    const h = config.hidden_size;
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain((8 * h).toLocaleString('en'));
    await studio.fillRun({ steps: 2, batch: 2, maxLength: 64, learningRate: '0.03', name: 'pirate prompt' });
    await studio.trainToEnd();

    const card = await studio.runCard('pirate prompt');
    expect(await card.textContent()).toContain('Prompt tuning · lr');
    const merged = card.getByRole('button', { name: 'Download pirate prompt merged into its base model' });
    expect(await merged.isDisabled()).toBe(true);
    expect(await merged.getAttribute('title')).toMatch(/nothing to merge/);
    const { path, files } = await studio.download(card, 'Download the adapter of pirate prompt as a PEFT .zip', 'pirate-prompt-adapter.zip');
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(adapterConfig).toMatchObject({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: 8, token_dim: h, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'Answer like a pirate:' });
    expect(rawSafetensorsHeader(files['adapter_model.safetensors'])['prompt_embeddings']).toMatchObject({ dtype: 'F32', shape: [8, h] });

    await page.getByTestId('import-zip-input').setInputFiles(path);
    await expect.poll(() => page.getByTestId('import-done').textContent(), { timeout: 60_000 }).toContain('8 virtual tokens');
    const imported = page.getByTestId('run-card').filter({ hasText: 'imported from pirate-prompt-adapter.zip' });
    await expect.poll(() => imported.count()).toBe(1);
    expect(await imported.getByTestId('run-imported').textContent()).toContain('Prompt tuning, 8 virtual tokens');

    await studio.generateBesideBase(/pirate prompt/, 'Where does a snake live?');
    expect(studio.problems).toEqual([]);
  }, 300_000);

  it('trains the demo model with P-tuning and downloads PEFT\'s P_TUNING adapter (the encoder\'s output only)', async () => {
    const { page } = studio;
    await studio.openTrainScreen('p-tuning');
    expect(await page.getByTestId('method-explanation').textContent()).toMatch(/prompt encoder/);
    expect(await page.getByLabel('Rank r').count()).toBe(0);
    await page.getByLabel('Virtual tokens', { exact: true }).fill('6');
    await page.getByLabel('Encoder hidden size').fill('16');
    const h = config.hidden_size;
    // PEFT's MLP encoder: the token table (6, h), then Linear(h, 16), ReLU, Linear(16, 16), ReLU, Linear(16, h).
    const params = 6 * h + (16 * h + 16) + (16 * 16 + 16) + (h * 16 + h);
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(params.toLocaleString('en'));
    // The LSTM encoder (PEFT's other reparameterisation) shows its own fields and is counted as PEFT counts it: one
    // bidirectional layer of width 16 (each direction W_ih (64, h), W_hh (64, 16), b_ih, b_hh), then the 32-wide head.
    expect(await page.getByLabel('LSTM layers').count()).toBe(0);
    await page.getByLabel('Prompt encoder').selectOption('lstm');
    await page.getByLabel('LSTM layers').fill('1');
    expect(await page.getByLabel('LSTM dropout').count()).toBe(1);
    const lstmParams = 6 * h + 2 * (64 * h + 64 * 16 + 64 + 64) + (32 * 32 + 32) + (h * 32 + h);
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(lstmParams.toLocaleString('en'));
    await page.getByLabel('Prompt encoder').selectOption('mlp');
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(params.toLocaleString('en'));
    await studio.fillRun({ steps: 2, batch: 2, maxLength: 64, learningRate: '0.01', name: 'pirate ptuning' });
    await studio.trainToEnd();

    const card = await studio.runCard('pirate ptuning');
    expect(await card.textContent()).toContain('P-tuning · lr');
    expect(await card.getByRole('button', { name: 'Download pirate ptuning merged into its base model' }).isDisabled()).toBe(true);
    const { path, files } = await studio.download(card, 'Download the adapter of pirate ptuning as a PEFT .zip', 'pirate-ptuning-adapter.zip');
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(adapterConfig).toMatchObject({ peft_type: 'P_TUNING', num_virtual_tokens: 6, token_dim: h, encoder_hidden_size: 16, encoder_reparameterization_type: 'MLP' });
    // PEFT saves the soft prompt the encoder produces, not the encoder.
    expect(Object.keys(rawSafetensorsHeader(files['adapter_model.safetensors'])).filter((k) => k !== '__metadata__')).toEqual(['prompt_embeddings']);
    expect(rawSafetensorsHeader(files['adapter_model.safetensors'])['prompt_embeddings']).toMatchObject({ dtype: 'F32', shape: [6, h] });
    expect(studio.problems).toEqual([]);
  }, 300_000);

  it('trains Houlsby adapters, downloads them in the studio\'s layout (not PEFT\'s), imports them back, answers with them', async () => {
    const { page } = studio;
    await studio.openTrainScreen('houlsby');
    expect(await page.getByTestId('method-explanation').textContent()).toMatch(/after each attention block and each MLP/);
    await page.getByRole('radio', { name: 'PEFT default (o_proj, down_proj)' }).check();
    await page.getByLabel('Reduction factor').fill('8');
    await page.getByLabel('Adapter activation').selectOption('silu');
    const h = config.hidden_size;
    const m = Math.floor(h / 8);
    // Per wrapped module (both output h): D (m, h) + b_d (m) + U (h, m) + b_u (h); two modules per layer.
    const params = config.num_hidden_layers * 2 * (m * h + m + h * m + h);
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).toContain(params.toLocaleString('en'));
    await studio.fillRun({ steps: 2, batch: 2, maxLength: 64, name: 'pirate houlsby' });
    await studio.trainToEnd();

    const card = await studio.runCard('pirate houlsby');
    expect(await card.textContent()).toContain('Houlsby adapters · lr');
    const merged = card.getByRole('button', { name: 'Download pirate houlsby merged into its base model' });
    expect(await merged.isDisabled()).toBe(true);
    expect(await merged.getAttribute('title')).toMatch(/cannot be folded into the weights/);
    expect(await card.getByRole('button', { name: /as a PEFT \.zip$/ }).count()).toBe(0);
    const { path, files } = await studio.download(card, "Download the adapter of pirate houlsby as a .zip in the studio's documented layout", 'pirate-houlsby-adapter.zip');
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(adapterConfig).toMatchObject({ format: 'lora-studio-bottleneck/1', adapter_type: 'bottleneck', config: 'houlsby', reduction_factor: 8, bottleneck_size: m, non_linearity: 'silu' });
    const header = rawSafetensorsHeader(files['adapter_model.safetensors']);
    expect(header['model.layers.0.mlp.down_proj.adapter_down.weight']).toMatchObject({ dtype: 'F32', shape: [m, h] });
    expect(header['model.layers.0.self_attn.o_proj.adapter_up.weight']).toMatchObject({ dtype: 'F32', shape: [h, m] });

    await page.getByTestId('import-zip-input').setInputFiles(path);
    await expect.poll(() => page.getByTestId('import-done').textContent(), { timeout: 60_000 }).toContain(`Houlsby adapters on ${config.num_hidden_layers * 2} modules`);
    const imported = page.getByTestId('run-card').filter({ hasText: 'imported from pirate-houlsby-adapter.zip' });
    await expect.poll(() => imported.count()).toBe(1);

    await studio.generateBesideBase(/pirate houlsby/, 'Where does a snake live?');
    expect(studio.problems).toEqual([]);
  }, 300_000);
});
