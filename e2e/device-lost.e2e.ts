// A lost GPU device mid-run, recovered by itself: the demo model and the pirate sample, a tiny run checkpointing every
// step; after two steps the debug hook (?debug=1) destroys the device; the banner says "GPU lost, recovering…", then
// that the run resumed from its last checkpoint, and the step count and the loss curve go on past it. Stopped; a
// screenshot; no console error (the expected "device lost" messages are warnings). Then a tab closed mid-run: after
// the reload a banner offers the interrupted run, and one click loads its model and dataset again and resumes it;
// paused, it loses its device again and comes back paused; stopped while its device is replaced, it stops and saves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStudio, type Studio } from './harness.ts';

let studio: Studio;
beforeAll(async () => {
  studio = await openStudio();
});
afterAll(async () => {
  await studio?.close();
});

const points = () => studio.page.getByTestId('loss-chart').first().getAttribute('data-points').then(Number);
const stepOf = async () => Number(/Step (\d+) of/.exec((await studio.page.getByTestId('run-progress').textContent()) ?? '')?.[1] ?? NaN);

describe('device lost', () => {
  it('recovers the device and resumes the run from its last checkpoint', async () => {
    const { page } = studio;
    await studio.openWithDemoModel('?debug=1');
    await studio.loadPirateSample();

    await page.getByRole('button', { name: 'Train', exact: true }).click();
    await page.getByTestId('screen-train').waitFor();
    await page.getByRole('button', { name: /^Quick/ }).click();
    await page.getByLabel('Rank r').fill('4');
    await page.getByLabel('Alpha α').fill('8');
    await studio.fillRun({ steps: 400, batch: 2, maxLength: 64, checkpointEvery: 1, evalSplit: '0', name: 'device lost' });
    await page.getByTestId('start-training').click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 60_000 }).toBe('Training');
    await expect.poll(points, { timeout: 90_000 }).toBeGreaterThanOrEqual(2);

    const lostAt = await stepOf();
    await page.getByRole('button', { name: 'Simulate GPU loss' }).click();
    const banner = page.getByTestId('gpu-banner');
    await expect.poll(() => banner.textContent(), { timeout: 30_000 }).toContain('GPU lost, recovering…');
    // The badge says so while the engine replaces the device.
    expect(await page.getByTestId('gpu-badge').textContent()).toBe('GPU lost');

    await expect.poll(() => banner.textContent(), { timeout: 120_000 }).toMatch(/GPU recovered on .*"device lost" resumed from step \d+/);
    const resumedFrom = Number(/resumed from step (\d+)/.exec((await banner.textContent()) ?? '')?.[1]);
    // Checkpoints every step: at most the step in flight when the device went is trained again.
    expect(resumedFrom).toBeGreaterThanOrEqual(lostAt - 1);
    expect(await page.getByTestId('gpu-badge').textContent()).not.toBe('GPU lost');
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 30_000 }).toBe('Training');
    expect(await page.getByTestId('run-message').textContent()).toContain(`GPU recovered: resumed from step ${resumedFrom}`);

    // The curve goes on from the checkpoint: it holds the steps before it, and grows past it.
    await expect.poll(stepOf, { timeout: 90_000 }).toBeGreaterThan(resumedFrom + 1);
    await expect.poll(points, { timeout: 30_000 }).toBeGreaterThan(resumedFrom + 1);
    await studio.screenshot('device-lost');

    await page.getByRole('button', { name: 'Stop and save' }).click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 90_000 }).toBe('Stopped');
    const steps = await stepOf();
    expect(steps).toBeGreaterThan(resumedFrom + 1);
    expect(await points()).toBe(steps);
    expect(studio.problems).toEqual([]);
  });

  it('offers a run interrupted by a closed tab for resume, and resumes it in one click', async () => {
    const { page } = studio;
    await page.getByLabel('Run name').fill('interrupted');
    await page.getByTestId('start-training').click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 60_000 }).toBe('Training');
    await expect.poll(stepOf, { timeout: 90_000 }).toBeGreaterThanOrEqual(2);

    // The tab goes away mid-run (its worker with it): the record still says running, and no tab holds its lock.
    await page.reload();
    const banner = page.getByTestId('interrupted-banner');
    await banner.waitFor({ timeout: 60_000 });
    expect(await banner.textContent()).toMatch(/Run interrupted was interrupted at step \d+ of 400 when its tab closed/);
    await studio.screenshot('interrupted-run');
    const resume = banner.getByRole('button', { name: /^Resume from step \d+$/ });
    const from = Number(/(\d+)$/.exec((await resume.textContent()) ?? '')?.[1]);
    expect(from).toBeGreaterThanOrEqual(1);

    // Nothing is loaded after the reload: the click loads the demo model and the pirate sample, then resumes.
    await resume.click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 180_000 }).toBe('Training');
    expect(await page.getByTestId('model-summary').count()).toBe(0); // on the Train screen, not the Models one
    await expect.poll(stepOf, { timeout: 90_000 }).toBeGreaterThan(from);
    expect(await points()).toBeGreaterThan(from); // the curve before the checkpoint came back with the run
    expect(await banner.count()).toBe(0);

    // A paused run that loses its device comes back paused, at its checkpoint, and trains on when resumed.
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 60_000 }).toBe('Paused');
    const pausedAt = await stepOf();
    await page.getByRole('button', { name: 'Simulate GPU loss' }).click();
    const gpuBanner = page.getByTestId('gpu-banner');
    await expect.poll(() => gpuBanner.textContent(), { timeout: 120_000 }).toContain(`"interrupted" is back at its checkpoint at step ${pausedAt}, paused`);
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 60_000 }).toBe('Paused');
    await page.waitForTimeout(1500);
    expect(await stepOf()).toBe(pausedAt);
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    await expect.poll(stepOf, { timeout: 90_000 }).toBeGreaterThan(pausedAt);

    // Stop pressed while the device is being replaced: the run comes back only to stop at its checkpoint and save.
    await page.getByRole('button', { name: 'Simulate GPU loss' }).click();
    await page.getByRole('button', { name: 'Stop and save' }).click();
    await expect.poll(() => page.getByTestId('run-phase').textContent(), { timeout: 120_000 }).toBe('Stopped');
    const stoppedAt = await stepOf();
    expect(stoppedAt).toBeGreaterThan(pausedAt);
    expect(await page.getByTestId('run-message').textContent()).toContain(`stopped at step ${stoppedAt} of 400`);
    await expect.poll(() => gpuBanner.textContent(), { timeout: 30_000 }).toContain(`"interrupted" stops at its checkpoint at step ${stoppedAt}`);
    expect(studio.problems).toEqual([]);
  });
});
