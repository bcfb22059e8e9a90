// The article's method comparison in the studio (headless Chrome's WebGPU), on the demo model and the pirate sample:
// Compare → "Compare methods" queues the rows that fit the loaded model (full precision: full fine-tuning, LoRA r8
// and r64, DoRA r8, AdaLoRA r12→8, IA³, prompt tuning, prefix tuning, Houlsby and Pfeiffer adapters; QLoRA named as needing an NF4 load) with the Train screen's data, seed, steps and eval split,
// runs them one after another to the end, then compares them: one table row per method (the base model first) with
// its method, trainable parameters and losses, the curves overlaid, and the table as a CSV download.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, openStudio, type Studio } from './harness.ts';

let studio: Studio;
beforeAll(async () => {
  studio = await openStudio();
});
afterAll(async () => {
  await studio?.close();
});

describe('Compare methods', () => {
  it('trains every method that fits on the same data and compares them in one table', async () => {
    const { page } = studio;
    await studio.openWithDemoModel();
    await studio.loadPirateSample();
    await page.getByRole('button', { name: 'Train', exact: true }).click();
    await page.getByTestId('screen-train').waitFor();
    await page.getByRole('button', { name: /^Quick/ }).click();
    await studio.fillRun({ steps: 2, batch: 2, maxLength: 48 });

    await page.getByRole('button', { name: 'Compare', exact: true }).click();
    const panel = page.getByTestId('method-sweep');
    await panel.waitFor();
    expect(await page.getByTestId('method-sweep-plan').textContent()).toMatch(/Runs: Full FT, LoRA r8, LoRA r64, DoRA r8, AdaLoRA r12→8, IA³, Prompt tuning, Prefix tuning, Houlsby adapters, Pfeiffer adapters\. Not on this model: QLoRA r8 \(.*NF4.*\)/);
    await panel.getByRole('button', { name: 'Compare methods' }).click();
    const progress = panel.getByTestId('sweep-progress');
    await expect.poll(() => progress.getAttribute('data-status'), { timeout: 600_000, interval: 1000 }).toBe('done');
    expect(await progress.textContent()).toContain('10 of 10 runs trained');

    const table = page.getByTestId('compare-table');
    await expect.poll(() => table.getByTestId('compare-row').count(), { timeout: 30_000 }).toBe(11);
    const text = await table.textContent();
    for (const m of ['Full fine-tuning', 'r = 8, α = 16', 'r = 64, α = 128', 'DoRA r = 8, α = 16', 'AdaLoRA r = 12 → 8, α = 16', 'IA³', 'Prompt tuning', 'Prefix tuning', 'Houlsby', 'Pfeiffer']) expect(text).toContain(m);
    expect(await page.getByTestId('compare-chart').getAttribute('data-runs')).toBe('10');

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('compare-csv').click()]);
    const path = join(ARTIFACTS, 'comparison.csv');
    await download.saveAs(path);
    const csv = readFileSync(path, 'utf8').trim().split('\n');
    expect(csv[0]).toMatch(/^run,method,rank,alpha,trainable params/);
    expect(csv).toHaveLength(12);
    for (const line of csv.slice(2)) expect(line).toMatch(/^methods · /);
    await studio.screenshot('compare-methods');
    expect(studio.problems).toEqual([]);
  }, 900_000);
});
