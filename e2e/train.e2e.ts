// Train → Run → Runs on the bundled demo model and the pirate sample dataset: a tiny config (rank 4, max length 64,
// batch 2), start, watch the loss chart grow, stop, download the adapter .zip and check PEFT's two files and keys,
// export the run (Runs) and the settings (Train) for a GPU cluster (TRL + accelerate .zip: train.py, run.json, the rows
// as trained; src/export/trl-live.gpu.test.ts runs such a train.py), reload the page and find the run in Runs with its
// whole curve. Screenshots of the three screens.
import { unzipSync } from 'fflate';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openStudio, type Studio } from './harness.ts';
import { rawSafetensorsHeader } from '../src/model/testing-safetensors.ts';

const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');

const points = (studio: Studio, testId: string) => studio.page.getByTestId(testId).first().getAttribute('data-points').then(Number);

let studio: Studio;
beforeAll(async () => {
  studio = await openStudio();
});
afterAll(async () => {
  await studio?.close();
});

describe('train, run, runs', () => {
  it('trains the demo model a few steps with live charts, and stops', async () => {
    const { page } = studio;
    await studio.openWithDemoModel();
    await studio.loadPirateSample();

    await page.getByRole('button', { name: 'Train', exact: true }).click();
    await page.getByTestId('screen-train').waitFor();
    await page.getByRole('button', { name: /^Quick/ }).click();
    // The Quick preset trains every linear layer; this run keeps PEFT's default targets (the adapter checked below).
    await page.getByRole('radio', { name: 'PEFT default (q_proj, v_proj)' }).check();
    // A field error names the valid range, and Start says why it is disabled.
    await page.getByLabel('Rank r').fill('0');
    await expect.poll(() => page.locator('[data-field="rank"] .field-error').textContent()).toContain('rank = 0: must be an integer ≥ 1 and ≤ 1024');
    expect(await page.getByTestId('start-training').isDisabled()).toBe(true);
    expect(await page.getByTestId('start-blocker').textContent()).toMatch(/Fix the field/);

    const before = await page.getByTestId('trainable-params').textContent();
    await page.getByLabel('Rank r').fill('4');
    await page.getByLabel('Alpha α').fill('8');
    await expect.poll(() => page.getByTestId('trainable-params').textContent()).not.toBe(before);
    const config = JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'));
    const kv = (config.hidden_size / config.num_attention_heads) * (config.num_key_value_heads ?? config.num_attention_heads);
    // PEFT's default for llama: q_proj and v_proj, r·(in + out) each, in every layer.
    const expected = config.num_hidden_layers * 4 * (config.hidden_size * 2 + config.hidden_size + kv);
    expect(await page.getByTestId('trainable-params').textContent()).toContain(expected.toLocaleString('en'));
    await studio.fillRun({ steps: 400, batch: 2, maxLength: 64, checkpointEvery: 5, evalSplit: '0.02', evalEvery: 3, name: 'pirate r4' });
    expect(await page.getByTestId('memory-estimate').textContent()).toMatch(/KiB|MiB/);
    await studio.screenshot('train');

    await page.getByTestId('start-training').click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 60_000 }).toBe('Training');
    await expect.poll(() => points(studio, 'loss-chart'), { timeout: 90_000 }).toBeGreaterThanOrEqual(2);
    const first = await points(studio, 'loss-chart');
    await expect.poll(() => points(studio, 'loss-chart'), { timeout: 90_000 }).toBeGreaterThan(first);
    // The eval loss shows up every 3 steps, and the lr and grad-norm charts follow the same steps.
    await expect.poll(() => page.getByTestId('run-loss').textContent(), { timeout: 60_000 }).toMatch(/^\d+\.\d{4}/);
    await expect.poll(() => points(studio, 'lr-chart')).toBeGreaterThan(first);
    await studio.screenshot('run');

    // Pause and resume get through between steps: paused, the curve stops growing; resumed, it grows again.
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 60_000 }).toBe('Paused');
    const paused = await points(studio, 'loss-chart');
    await page.waitForTimeout(1500);
    expect(await points(studio, 'loss-chart')).toBe(paused);
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 30_000 }).toBe('Training');
    await expect.poll(() => points(studio, 'loss-chart'), { timeout: 60_000 }).toBeGreaterThan(paused);

    await page.getByRole('button', { name: 'Stop and save' }).click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 90_000 }).toBe('Stopped');
    const progress = (await page.getByTestId('run-progress').textContent()) ?? '';
    const steps = Number(/Step (\d+) of 400/.exec(progress)?.[1]);
    expect(steps).toBeGreaterThan(first + 1);
    expect(steps).toBeLessThan(400);
    expect(await points(studio, 'loss-chart')).toBe(steps);
    expect(await page.getByTestId('run-message').textContent()).toContain(`stopped at step ${steps} of 400`);
    expect(studio.problems).toEqual([]);
  });

  it('downloads the adapter as a PEFT zip', async () => {
    const { page } = studio;
    await page.getByRole('button', { name: 'Runs', exact: true }).click();
    const card = page.getByTestId('run-card');
    await expect.poll(() => card.count(), { timeout: 30_000 }).toBe(1);
    expect(await card.getByTestId('run-status').textContent()).toBe('stopped');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      card.getByRole('button', { name: 'Download the adapter of pirate r4 as a PEFT .zip' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('pirate-r4-adapter.zip');
    const path = join(ARTIFACTS, 'pirate-r4-adapter.zip');
    await download.saveAs(path);
    const files = unzipSync(new Uint8Array(readFileSync(path)));
    expect(Object.keys(files).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const adapterConfig = JSON.parse(new TextDecoder().decode(files['adapter_config.json']));
    expect(adapterConfig).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: 'demo-llama' });
    const header = rawSafetensorsHeader(files['adapter_model.safetensors']);
    expect(header.__metadata__).toEqual({ format: 'pt' });
    const keys = Object.keys(header).filter((k) => k !== '__metadata__').sort();
    const config = JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'));
    expect(keys).toHaveLength(config.num_hidden_layers * 2 * 2);
    for (const k of keys) expect(k).toMatch(/^base_model\.model\.model\.layers\.\d+\.self_attn\.[qv]_proj\.lora_[AB]\.weight$/);
    expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']).toMatchObject({ dtype: 'F32', shape: [4, config.hidden_size] });
    expect(header['base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight']).toMatchObject({ dtype: 'F32', shape: [config.hidden_size, 4] });
    expect(studio.problems).toEqual([]);
  });

  it('"Export for a GPU cluster" on Runs and on Train: train.py, run.json and the rows as trained, in a .zip', async () => {
    const { page } = studio;
    const card = page.getByTestId('run-card');
    await card.getByRole('button', { name: 'Export pirate r4 for a GPU cluster (TRL + accelerate)' }).click();
    const panel = card.getByTestId('trl-panel');
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 60_000 }),
      panel.getByRole('button', { name: 'Download .zip (up to 200 MiB)' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('pirate-r4-trl.zip');
    const path = join(ARTIFACTS, 'pirate-r4-trl.zip');
    await download.saveAs(path);
    const files = unzipSync(new Uint8Array(readFileSync(path)));
    const text = (name: string) => new TextDecoder().decode(files[`pirate-r4-trl/${name}`]);
    expect(Object.keys(files).sort()).toEqual([
      'README.md', 'accelerate/ddp.yaml', 'accelerate/deepspeed_zero2.yaml', 'accelerate/deepspeed_zero3.yaml', 'accelerate/fsdp.yaml',
      'data/eval.jsonl', 'data/eval.source.jsonl', 'data/train.jsonl', 'data/train.source.jsonl', 'requirements.txt', 'run.json', 'train.py',
    ].map((f) => `pirate-r4-trl/${f}`));
    const run = JSON.parse(text('run.json'));
    expect(run.config).toMatchObject({ rank: 4, alpha: 8, maxLength: 64, batchSize: 2, evalSplit: 0.02 });
    expect(run.method.lora.target_modules).toEqual(['q_proj', 'v_proj']);
    expect(run.model).toMatchObject({ id: 'demo-llama', model_type: 'llama' });
    expect(text('README.md')).toContain('not the Hub: run train.py with --model PATH_TO_THAT_FOLDER');
    const rows = text('data/train.jsonl').trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(run.data.train_rows);
    expect(text('data/train.source.jsonl').trim().split('\n')).toHaveLength(run.data.train_rows);
    expect(rows.every((r) => r.input_ids.length <= 64 && r.labels.length === r.input_ids.length && r.labels.includes(-100))).toBe(true);
    await expect.poll(() => panel.getAttribute('data-status')).toBe('done');

    // The Train screen exports its settings before any run.
    await page.getByRole('button', { name: 'Train', exact: true }).click();
    const train = page.getByTestId('trl-export');
    await train.locator('summary').click();
    const [second] = await Promise.all([page.waitForEvent('download', { timeout: 60_000 }), train.getByRole('button', { name: 'Download .zip' }).click()]);
    const zip = unzipSync(new Uint8Array(await readFile(await second.path())));
    const name = second.suggestedFilename().replace(/\.zip$/, '');
    expect(JSON.parse(new TextDecoder().decode(zip[`${name}/run.json`])).config).toMatchObject({ rank: 4, maxLength: 64 });
    expect(zip[`${name}/train.py`]).toBeDefined();
    await page.getByRole('button', { name: 'Runs', exact: true }).click(); // where the next test starts
    await card.waitFor();
    expect(studio.problems).toEqual([]);
  });

  it('finds the run with its curve after a reload', async () => {
    const { page } = studio;
    const stepsBefore = Number(/Steps(\d+) of 400/.exec((await page.getByTestId('run-card').textContent()) ?? '')?.[1]);
    await page.reload();
    await page.getByTestId('adapter-name').waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Runs', exact: true }).click();
    const card = page.getByTestId('run-card');
    await expect.poll(() => card.count(), { timeout: 30_000 }).toBe(1);
    expect(await card.getByTestId('run-name').textContent()).toBe('pirate r4');
    expect(await card.getByTestId('run-status').textContent()).toBe('stopped');
    expect(stepsBefore).toBeGreaterThan(2);
    await expect.poll(() => card.getByTestId('run-curve').getAttribute('data-points').then(Number)).toBe(stepsBefore);
    expect(await card.getByTestId('run-final').textContent()).toMatch(/train loss \d+\.\d{4}, eval loss \d+\.\d{4}/);
    expect(await page.getByTestId('storage').textContent()).toMatch(/used of/);
    await studio.screenshot('runs');
    expect(studio.problems).toEqual([]);
  });
});
