import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStudio, type Studio } from './harness.ts';

let studio: Studio;
beforeAll(async () => {
  studio = await openStudio();
});
afterAll(async () => {
  await studio?.close();
});

describe('the studio shell', () => {
  it('finds a WebGPU adapter and shows its name', async () => {
    const { page } = studio;
    await page.goto(studio.url);
    const name = page.getByTestId('adapter-name');
    await name.waitFor({ timeout: 60_000 });
    const text = (await name.textContent())?.trim() ?? '';
    expect(text.length).toBeGreaterThan(0);
    // The adapter's name is what the engine worker read from navigator.gpu: in headless Chrome without a GPU
    // that is SwiftShader, on a machine with a GPU its own name.
    const badge = await page.getByTestId('gpu-badge').textContent();
    expect(badge).toContain(text);
    await studio.screenshot('shell-models');
    expect(studio.problems).toEqual([]);
  });

  it('navigates every section with the keyboard', async () => {
    const { page } = studio;
    for (const [label, id] of [
      ['Data', 'data'],
      ['Train', 'train'],
      ['Runs', 'runs'],
      ['Compare', 'compare'],
      ['Playground', 'playground'],
      ['Models', 'models'],
    ]) {
      const button = page.getByRole('button', { name: label, exact: true });
      await button.focus();
      await page.keyboard.press('Enter');
      await page.getByTestId(`screen-${id}`).waitFor();
      expect(await button.getAttribute('aria-current')).toBe('page');
    }
    await studio.screenshot('shell-navigation');
    expect(studio.problems).toEqual([]);
  });
});
