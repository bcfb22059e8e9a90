// Import, continue, merge on the bundled demo model. A PEFT adapter for it is made here in Node (random small A and
// B, through peft.ts exportAdapter/zipAdapter, as PEFT lays it out), uploaded as a .zip on the Runs screen: listed as
// an imported run; the Playground answers with it beside the base model; "Continue training" trains one step from it
// (rank, alpha and targets locked to the adapter's); "Download merged model" builds the .zip fallback (headless
// Chrome has no folder picker a test can answer) holding model.safetensors (f16), config.json and the tokenizer
// files; and the folder path is driven with the picker answered by the origin-private file system, so the worker's
// chunk-by-chunk createWritable writes are checked too; "Download for llama.cpp / Ollama" gives model.gguf and a
// Modelfile (llama.cpp itself loads GGUF files in src/export/gguf-llamacpp.gpu.test.ts). No console error, no request to another host.
import { unzipSync } from 'fflate';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseModelConfig } from '../src/model/config.ts';
import { selectTargetModules } from '../src/model/weights.ts';
import { buildAdapterConfig, exportAdapter, zipAdapter } from '../src/train/peft.ts';
import { ARTIFACTS, openStudio, type Studio } from './harness.ts';
import { rawSafetensorsHeader } from '../src/model/testing-safetensors.ts';
import { parseGguf } from '../src/export/gguf.ts';

const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');
const RANK = 4;
const ALPHA = 8;

/** A seeded PEFT adapter for the demo model on its default targets (q_proj, v_proj). */
function demoAdapterZip(): { path: string; modules: number } {
  const config = parseModelConfig(JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8')), 'demo-llama');
  let s = 12345;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.1;
  const modules = selectTargetModules(config).map((m) => ({
    peftPath: m.peftPath,
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    A: Float32Array.from({ length: RANK * m.inFeatures }, rnd),
    B: Float32Array.from({ length: m.outFeatures * RANK }, rnd),
  }));
  const files = exportAdapter(modules, buildAdapterConfig({
    baseModel: 'demo-llama', rank: RANK, alpha: ALPHA, dropout: 0, targetModules: ['q_proj', 'v_proj'], fanInFanOut: false, rslora: false,
  }));
  const path = join(mkdtempSync(join(tmpdir(), 'lora-import-')), 'demo-pirate-lora.zip');
  writeFileSync(path, zipAdapter(files));
  return { path, modules: modules.length };
}

let studio: Studio;
beforeAll(async () => {
  studio = await openStudio();
  // The folder picker, answered by the origin-private file system (a real FileSystemDirectoryHandle): the merge
  // then writes through the same createWritable calls as into a folder on disk.
  await studio.page.addInitScript(() => {
    (window as unknown as { showDirectoryPicker: () => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker = () => navigator.storage.getDirectory();
  });
});
afterAll(async () => {
  await studio?.close();
});

const nav = (name: string) => studio.page.getByRole('button', { name, exact: true }).click();
const card = (name: string) => studio.page.getByTestId('run-card').filter({ has: studio.page.getByTestId('run-name').getByText(name, { exact: true }) });

describe('import, continue, merge', () => {
  it('imports a PEFT adapter .zip as a run and generates with it in the Playground', async () => {
    const { page } = studio;
    const adapter = demoAdapterZip();
    await studio.openWithDemoModel();

    await nav('Runs');
    await page.getByTestId('import-zip-input').setInputFiles(adapter.path);
    await expect.poll(() => page.getByTestId('import-done').textContent(), { timeout: 60_000 }).toContain(`Imported "demo-pirate-lora": ${adapter.modules} LoRA modules`);
    const imported = card('demo-pirate-lora');
    await expect.poll(() => imported.count()).toBe(1);
    expect(await imported.getByTestId('run-status').textContent()).toBe('imported');
    expect(await imported.getByTestId('run-imported').textContent()).toContain(`imported from demo-pirate-lora.zip · r${RANK} α${ALPHA} on q_proj, v_proj`);

    await nav('Playground');
    await page.getByLabel(/demo-pirate-lora/).check();
    await page.getByLabel('Prompt').fill('What colour is the sky?');
    await page.getByLabel('Max new tokens').fill('16');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const columns = page.getByTestId('playground-column');
    await expect.poll(() => columns.count()).toBe(2);
    await expect
      .poll(() => columns.evaluateAll((els) => els.map((e) => e.getAttribute('data-status'))), { timeout: 90_000 })
      .toEqual(['done', 'done']);
    expect(await columns.locator('.gen-label').allTextContents()).toEqual(['Base model', 'demo-pirate-lora']);
    expect(((await columns.nth(1).getByTestId('playground-column-text').textContent()) ?? '').trim().length).toBeGreaterThan(0);
    expect(studio.problems).toEqual([]);
  });

  it('continues training from the imported adapter for one step, its LoRA shape locked', async () => {
    const { page } = studio;
    await nav('Data');
    await page.getByRole('button', { name: 'Use the sample Pirate voice (chat)' }).click();
    await expect.poll(() => page.getByTestId('dataset-counts').textContent(), { timeout: 60_000 }).toBe('240 rows: 240 usable, 0 skipped');

    await nav('Runs');
    await card('demo-pirate-lora').getByRole('button', { name: 'Continue training from the adapter of demo-pirate-lora' }).click();
    await page.getByTestId('screen-train').waitFor();
    expect(await page.getByTestId('train-from').textContent()).toContain('Continues from the adapter of demo-pirate-lora');
    expect(await page.getByLabel('Rank r').isDisabled()).toBe(true);
    expect(await page.getByLabel('Rank r').inputValue()).toBe(String(RANK));
    expect(await page.getByLabel('Alpha α').inputValue()).toBe(String(ALPHA));
    expect(await page.getByTestId('locked-targets').textContent()).toContain('q_proj, v_proj');
    await studio.fillRun({ steps: 1, batch: 2, maxLength: 64, evalSplit: '0' });
    await studio.trainToEnd();
    expect(await page.getByTestId('run-progress').textContent()).toContain('Step 1 of 1');

    await nav('Runs');
    const continued = card('demo-pirate-lora (continued)');
    await expect.poll(() => continued.getByTestId('run-status').textContent(), { timeout: 30_000 }).toBe('finished');
    expect(await continued.textContent()).toContain('continued from "demo-pirate-lora" (its adapter at step 0)');
    expect(studio.problems).toEqual([]);
  });

  it('downloads the merged model as a .zip: model.safetensors (f16), config.json and the tokenizer files', async () => {
    const { page } = studio;
    const imported = card('demo-pirate-lora');
    await imported.getByRole('button', { name: 'Download demo-pirate-lora merged into its base model' }).click();
    const panel = imported.getByTestId('merge-panel');
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 120_000 }),
      panel.getByRole('button', { name: 'Download .zip (up to 200 MiB)' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('demo-pirate-lora-merged.zip');
    const path = join(ARTIFACTS, 'demo-pirate-lora-merged.zip');
    await download.saveAs(path);
    const entries = unzipSync(new Uint8Array(readFileSync(path)));
    const names = Object.keys(entries).sort();
    expect(names).toEqual(
      ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => `demo-pirate-lora-merged/${f}`),
    );
    const header = rawSafetensorsHeader(entries['demo-pirate-lora-merged/model.safetensors']);
    const base = rawSafetensorsHeader(new Uint8Array(readFileSync(join(DEMO, 'model.safetensors'))));
    const tensors = Object.keys(header).filter((k) => k !== '__metadata__');
    expect(tensors.sort()).toEqual(Object.keys(base).filter((k) => k !== '__metadata__').sort());
    expect(new Set(tensors.map((k) => header[k].dtype))).toEqual(new Set(['F16']));
    expect(JSON.parse(new TextDecoder().decode(entries['demo-pirate-lora-merged/config.json'])).dtype).toBe('float16');
    expect(entries['demo-pirate-lora-merged/tokenizer.json']).toEqual(new Uint8Array(readFileSync(join(DEMO, 'tokenizer.json'))));
    await expect.poll(() => panel.getAttribute('data-status')).toBe('done');
    expect(await panel.getByTestId('merge-message').textContent()).toContain('demo-pirate-lora-merged.zip (5 files');
    await studio.screenshot('runs-import-merge');
    expect(studio.problems).toEqual([]);
  });

  it('streams the merged model into a picked folder, file by file', async () => {
    const { page } = studio;
    const panel = card('demo-pirate-lora').getByTestId('merge-panel');
    await panel.getByRole('button', { name: 'Save into a folder…' }).click();
    // The panel still says 'done' from the .zip merge: wait for this merge's own message, not the status.
    await expect.poll(() => panel.getByTestId('merge-message').textContent(), { timeout: 120_000 }).toContain('Merged into demo-pirate-lora-merged/');
    expect(await panel.getAttribute('data-status')).toBe('done');
    const written = await page.evaluate(async () => {
      const root = await navigator.storage.getDirectory();
      const dir = await root.getDirectoryHandle('demo-pirate-lora-merged');
      const out: Record<string, number> = {};
      for await (const [name, handle] of (dir as unknown as AsyncIterable<[string, FileSystemFileHandle]>)) out[name] = (await handle.getFile()).size;
      return out;
    });
    const zip = unzipSync(new Uint8Array(readFileSync(join(ARTIFACTS, 'demo-pirate-lora-merged.zip'))));
    const sizes = Object.fromEntries(Object.entries(zip).map(([k, v]) => [k.split('/')[1], v.length]));
    expect(written).toEqual(sizes);
    expect(studio.problems).toEqual([]);
  });

  it('"Download for llama.cpp / Ollama": model.gguf (q8_0, the adapter merged in) and a Modelfile in a .zip', async () => {
    const { page } = studio;
    const imported = card('demo-pirate-lora');
    await imported.getByRole('button', { name: 'Download demo-pirate-lora as GGUF for llama.cpp / Ollama' }).click();
    const panel = imported.getByTestId('gguf-panel');
    await panel.getByRole('combobox').selectOption('q8_0');
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 120_000 }),
      panel.getByRole('button', { name: 'Download .zip (up to 200 MiB)' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('demo-pirate-lora-merged-gguf.zip');
    const path = join(ARTIFACTS, 'demo-pirate-lora-merged-gguf.zip');
    await download.saveAs(path);
    const entries = unzipSync(new Uint8Array(readFileSync(path)));
    expect(Object.keys(entries).sort()).toEqual(['demo-pirate-lora-merged-gguf/Modelfile', 'demo-pirate-lora-merged-gguf/model.gguf']);
    const gguf = parseGguf(entries['demo-pirate-lora-merged-gguf/model.gguf']);
    expect(gguf.metadata.get('general.architecture')).toBe('llama');
    expect(gguf.metadata.get('general.file_type')).toBe(7);
    expect(gguf.metadata.get('general.name')).toBe('demo-pirate-lora');
    expect(new TextDecoder().decode(entries['demo-pirate-lora-merged-gguf/Modelfile'])).toContain('FROM ./model.gguf\n');
    await expect.poll(() => panel.getAttribute('data-status')).toBe('done');
    expect(studio.problems).toEqual([]);
  });
});
