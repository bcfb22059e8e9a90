// Playground and Compare on the bundled demo model: the Playground streams an answer from the base model (the model
// issue's "the bundled model loads and generates in the browser"); then "compare ranks" with a tiny sweep (r = 2 and
// 4, 2 steps each, on the pirate sample) trains two runs one after the other, and Compare shows their two curves,
// the table with the base model first (its eval loss measured by the worker), and the base model's and both
// adapters' answers to one prompt; the Playground answers with an adapter beside the base model. Screenshots of both
// screens; no console error, no request to another host.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStudio, type Studio } from './harness.ts';

let studio: Studio;
beforeAll(async () => {
  studio = await openStudio();
});
afterAll(async () => {
  await studio?.close();
});

const nav = (name: string) => studio.page.getByRole('button', { name, exact: true }).click();

describe('playground and compare', () => {
  it('generates text with the bundled model in the Playground', async () => {
    const { page } = studio;
    await studio.openWithDemoModel();

    await nav('Playground');
    await page.getByTestId('screen-playground').waitFor();
    await page.getByLabel('Prompt').fill('What colour is the sky?');
    await page.getByLabel('Max new tokens').fill('24');
    await page.getByLabel('Max new tokens').press('Enter');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const column = page.getByTestId('playground-column');
    await expect.poll(() => column.count()).toBe(1);
    await expect.poll(() => column.first().getAttribute('data-status'), { timeout: 60_000 }).toBe('done');
    expect(await column.first().locator('.gen-label').textContent()).toBe('Base model');
    const text = (await column.first().getByTestId('playground-column-text').textContent()) ?? '';
    expect(text.trim().length).toBeGreaterThan(0);
    expect(text).not.toContain('<|im_end|>'); // special tokens are not shown
    expect(await column.first().getByTestId('playground-column-status').textContent()).toMatch(/^\d+ tokens, [\d.]+ tokens\/s; (stopped at end of sequence|reached max new tokens)$/);
    expect(studio.problems).toEqual([]);
  });

  it('compares two ranks: two curves, the table with the base model first, and generations side by side', async () => {
    const { page } = studio;
    await nav('Data');
    await page.getByRole('button', { name: 'Use the sample Pirate voice (chat)' }).click();
    await expect.poll(() => page.getByTestId('dataset-counts').textContent(), { timeout: 60_000 }).toBe('240 rows: 240 usable, 0 skipped');

    // The sweep takes the Train screen's config: a tiny one.
    await nav('Train');
    await page.getByTestId('screen-train').waitFor();
    await page.getByRole('button', { name: /^Quick/ }).click();
    await studio.fillRun({ steps: 2, batch: 2, maxLength: 64, evalSplit: '0.02', evalEvery: 0 });

    await nav('Compare');
    await page.getByTestId('screen-compare').waitFor();
    await page.getByLabel('Ranks', { exact: true }).fill('2, 4');
    await page.getByRole('button', { name: 'Compare ranks' }).click();
    const sweep = page.getByTestId('sweep-progress');
    await expect.poll(() => page.getByTestId('sweep-item').count()).toBe(2);
    await expect.poll(() => sweep.getAttribute('data-status'), { timeout: 240_000 }).toBe('done');
    expect(await page.getByTestId('sweep-item').evaluateAll((els) => els.map((e) => e.getAttribute('data-status')))).toEqual(['finished', 'finished']);
    expect(await sweep.textContent()).toContain('2 of 2 runs trained');

    // The sweep's runs are chosen for the comparison: one train curve and one eval curve each.
    const chart = page.getByTestId('compare-chart');
    await expect.poll(() => chart.getAttribute('data-runs'), { timeout: 30_000 }).toBe('2');
    await expect.poll(() => chart.locator('.recharts-line.compare-train path.recharts-curve').count()).toBe(2);
    expect(await chart.locator('.recharts-line.compare-eval').count()).toBe(2);

    const rows = page.getByTestId('compare-row');
    expect(await rows.count()).toBe(3);
    expect(await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-key')))).toHaveLength(3);
    expect(await rows.first().getAttribute('data-key')).toBe('base');
    // The base model's eval loss, measured once by the worker on the same held-out rows.
    await expect.poll(() => rows.first().locator('td').nth(6).textContent(), { timeout: 60_000 }).toMatch(/^\d+\.\d{4}$/);
    // The cells after the method column.
    const cells = async (i: number) => (await rows.nth(i).locator('td').allTextContents()).slice(1);
    const [r2, r4] = [await cells(1), await cells(2)];
    expect((await rows.nth(1).locator('td').first().textContent())).toBe('r = 2, α = 4');
    expect([r2[0], r2[1], r4[0], r4[1]]).toEqual(['2', '4', '4', '8']); // α = 2r
    expect(Number(r4[2].replace(/,/g, ''))).toBe(2 * Number(r2[2].replace(/,/g, ''))); // trainable parameters ∝ r
    for (const r of [r2, r4]) {
      expect(r[3]).toMatch(/KiB|MiB/); // adapter size
      expect(r[4]).toMatch(/^\d+\.\d{4}$/); // final train loss
      expect(r[5]).toMatch(/^\d+\.\d{4}$/); // final eval loss
      expect(r[6]).toBe('2');
    }

    await page.getByLabel('Prompt', { exact: true }).fill('What colour is the grass?');
    await page.getByRole('button', { name: 'Generate with each' }).click();
    const generations = page.getByTestId('compare-generation');
    await expect.poll(() => generations.count()).toBe(3);
    await expect
      .poll(() => generations.evaluateAll((els) => els.map((e) => e.getAttribute('data-status'))), { timeout: 90_000 })
      .toEqual(['done', 'done', 'done']);
    const labels = await generations.locator('.gen-label').allTextContents();
    expect(labels[0]).toBe('Base model');
    expect(labels.slice(1)).toEqual([expect.stringContaining('r2'), expect.stringContaining('r4')]);
    for (const t of await generations.getByTestId('compare-generation-text').allTextContents()) expect(t.trim().length).toBeGreaterThan(0);
    await studio.screenshot('compare');
    expect(studio.problems).toEqual([]);
  }, 420_000); // two training runs: about a minute alone on SwiftShader, much longer on a busy machine

  it('answers with an adapter beside the base model in the Playground', async () => {
    const { page } = studio;
    await nav('Playground');
    await page.getByLabel(/rank sweep · r4/).check();
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const columns = page.getByTestId('playground-column');
    await expect.poll(() => columns.count()).toBe(2);
    await expect
      .poll(() => columns.evaluateAll((els) => els.map((e) => e.getAttribute('data-status'))), { timeout: 60_000 })
      .toEqual(['done', 'done']);
    expect(await columns.locator('.gen-label').allTextContents()).toEqual(['Base model', expect.stringContaining('r4')]);
    await studio.screenshot('playground');
    expect(studio.problems).toEqual([]);
  });
});
