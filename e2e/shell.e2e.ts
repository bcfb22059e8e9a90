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

  it('runs under a strict Content-Security-Policy (issue 14): no eval, and a violation is a problem the test sees', async () => {
    const { page } = studio;
    const meta = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
    expect(meta).toContain("script-src 'self';");
    expect(meta).toContain("connect-src 'self' https://huggingface.co https://*.huggingface.co https://*.hf.co http://127.0.0.1:*;");
    expect(meta).not.toMatch(/unsafe-(eval|inline)/);
    // The page ran with it (the tests above load the studio with zero problems); now break it on purpose.
    // (Not eval inside page.evaluate: DevTools' own evaluation is exempt.) An inline script and a string timer, as
    // injected markup or a template engine using eval would run them:
    await page.evaluate(() => {
      const w = window as unknown as Record<string, unknown>;
      const script = document.createElement('script');
      script.textContent = 'window.__inline = 1';
      document.head.append(script);
      (setTimeout as unknown as (code: string, ms: number) => number)('window.__timer = 1', 0);
      w.__checked = true;
    });
    await page.waitForTimeout(200);
    expect(await page.evaluate(() => [(window as unknown as Record<string, unknown>).__inline ?? null, (window as unknown as Record<string, unknown>).__timer ?? null])).toEqual([null, null]);
    await expect.poll(() => studio.problems.some((p) => p.startsWith('console error: CSP violation: script-src'))).toBe(true);
    await expect.poll(() => studio.problems.some((p) => p.startsWith('CSP violation (report): script-src'))).toBe(true);
    studio.problems.splice(0);
  });
});
