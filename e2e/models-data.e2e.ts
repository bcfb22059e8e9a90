// The first two steps of the journey on the bundled demo model: pick it and wait until the engine worker has it on
// the GPU; drop a JSONL file with one bad line (a real drop event carrying a DataTransfer built in the page) and see
// the detected format, the counts and the rejected line with its reason. Then the other ways in: a sample dataset
// served by the app, the demo model's files from a picked folder, and from a Hub (a fake one on 127.0.0.1) through
// the browser's cache. Screenshots of both screens, light and dark.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { FakeHub } from '../src/model/sources/testing-hub-server.ts';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStudio, type Studio } from './harness.ts';
import { storedParameters } from '../src/model/testing-safetensors.ts';

const FIXTURE = join(process.cwd(), 'e2e', 'fixtures', 'chat-with-bad-line.jsonl');
const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');

/** CORS in front of the fake Hub: the page (another port, so another origin) may read its answers, as from the real Hub. */
async function corsProxy(target: string): Promise<{ url: string; server: Server }> {
  const cors = {
    'Access-Control-Allow-Origin': '*',
    'Access-Control-Allow-Headers': 'Authorization, Range, If-Range, Accept',
    'Access-Control-Allow-Methods': 'GET, HEAD',
    'Access-Control-Expose-Headers': 'Content-Range, Content-Length, ETag, X-Error-Code, Accept-Ranges',
  };
  const server = createServer((req, res) => {
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors).end();
      return;
    }
    const upstream = request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, { ...up.headers, ...cors });
      up.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

let studio: Studio;
beforeAll(async () => {
  studio = await openStudio();
});
afterAll(async () => {
  await studio?.close();
});

describe('models and data', () => {
  it('loads the bundled demo model', async () => {
    const { page } = studio;
    await page.goto(studio.url);
    await page.getByTestId('adapter-name').waitFor({ timeout: 60_000 });
    // Every catalogue card says, per method, whether it fits this adapter.
    expect(await page.getByTestId('catalogue-card').count()).toBeGreaterThanOrEqual(6);
    await expect.poll(() => page.locator('.fit-table').count()).toBeGreaterThanOrEqual(6);

    const button = page.getByRole('button', { name: 'Use the demo model' });
    await button.focus();
    await page.keyboard.press('Enter');
    const summary = page.getByTestId('model-summary');
    await summary.waitFor({ timeout: 120_000 });
    expect(await page.getByTestId('model-name').textContent()).toBe('demo-llama');
    const text = (await summary.textContent()) ?? '';
    expect(text).toContain('DEMO');
    const config = JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8'));
    expect(text).toContain(`(${storedParameters(join(DEMO, 'model.safetensors')).toLocaleString('en')})`);
    expect(text).toContain(`llama, ${config.num_hidden_layers} layers, hidden ${config.hidden_size}`);
    expect(await page.getByTestId('model-error').count()).toBe(0);
    await studio.screenshot('models');
    expect(studio.problems).toEqual([]);
  });

  it('detects the format of a dropped file and shows its rejected line', async () => {
    const { page } = studio;
    await page.getByRole('button', { name: 'Data', exact: true }).click();
    await page.getByTestId('screen-data').waitFor();

    const text = readFileSync(FIXTURE, 'utf8');
    const transfer = await page.evaluateHandle((content) => {
      const dt = new DataTransfer();
      dt.items.add(new File([content], 'chat-with-bad-line.jsonl', { type: 'application/x-ndjson' }));
      return dt;
    }, text);
    const zone = '[data-testid="data-dropzone"]';
    await page.dispatchEvent(zone, 'dragenter', { dataTransfer: transfer });
    await page.dispatchEvent(zone, 'dragover', { dataTransfer: transfer });
    await page.dispatchEvent(zone, 'drop', { dataTransfer: transfer });

    const report = page.getByTestId('dataset-report');
    await report.waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('dataset-format').textContent()).toContain('OpenAI chat');
    expect(await page.getByTestId('dataset-counts').textContent()).toBe('9 rows: 8 usable, 1 skipped');
    const skipped = page.getByTestId('skipped-line');
    expect(await skipped.count()).toBe(1);
    const cells = await skipped.first().locator('td').allTextContents();
    expect(cells[0]).toBe('5');
    expect(cells[1]).toMatch(/^invalid JSON/);
    // The rejected line itself is shown beside its reason.
    await expect.poll(() => skipped.first().locator('td').nth(2).textContent()).toContain('What colour is the grass?');

    // The histogram drew one bar per non-empty bucket; the preview marks trained and masked tokens.
    await expect.poll(() => page.locator('[data-testid="length-histogram"] .recharts-bar-rectangle').count()).toBeGreaterThan(0);
    const preview = page.getByTestId('dataset-preview');
    expect(await preview.locator('pre.sample').count()).toBe(3);
    const trained = (await preview.locator('pre.sample').first().locator('.tok.trained').allTextContents()).join('');
    expect(trained).toBe('Arr! The sky be blue, matey!<|im_end|>');
    expect(await preview.locator('pre.sample').first().locator('.tok.masked').count()).toBeGreaterThan(0);
    await studio.screenshot('data');
    expect(studio.problems).toEqual([]);
  });

  it('loads a sample dataset served by the app', async () => {
    const { page } = studio;
    await page.getByRole('button', { name: 'Use the sample Pirate voice (chat)' }).click();
    await expect.poll(() => page.getByTestId('dataset-counts').textContent(), { timeout: 60_000 }).toBe('240 rows: 240 usable, 0 skipped');
    expect(await page.locator('#report-title').textContent()).toBe('chat-pirate.jsonl');
    expect(studio.problems).toEqual([]);
  });

  it('loads a model from a picked folder, and re-tokenizes the dataset with it', async () => {
    const { page } = studio;
    await page.getByRole('button', { name: 'Models', exact: true }).click();
    // The demo model's files under another folder name, so the loaded model's name tells which load finished.
    const dir = mkdtempSync(join(tmpdir(), 'lora-studio-e2e-'));
    const folder = join(dir, 'my-local-model');
    cpSync(DEMO, folder, { recursive: true });
    try {
      await page.getByTestId('model-dropzone').locator('input[type="file"]').setInputFiles(folder);
      await expect.poll(() => page.getByTestId('model-name').textContent(), { timeout: 120_000 }).toBe('my-local-model');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(await page.getByTestId('model-error').count()).toBe(0);
    expect(await page.getByTestId('model-summary').textContent()).toContain(`(${storedParameters(join(DEMO, 'model.safetensors')).toLocaleString('en')})`);

    await page.getByRole('button', { name: 'Data', exact: true }).click();
    await expect.poll(() => page.getByTestId('dataset-counts').textContent(), { timeout: 60_000 }).toBe('240 rows: 240 usable, 0 skipped');
    expect(studio.problems).toEqual([]);
  });

  it('downloads a model from a Hub (a local one), keeps it in the browser cache, loads it again offline, deletes it', async () => {
    const { page } = studio;
    const hub = await new FakeHub().start();
    const files: Record<string, Uint8Array> = {};
    for (const name of readdirSync(DEMO)) files[name] = readFileSync(join(DEMO, name));
    hub.addRepo('studio/demo-llama', { files });
    const proxy = await corsProxy(hub.baseUrl);
    try {
      await page.getByRole('button', { name: 'Models', exact: true }).click();
      await page.getByText('Hub address').click();
      await page.getByLabel('Hub URL (a mirror, or a local server)').fill(proxy.url);
      await page.getByLabel('Repo id').fill('studio/demo-llama');
      await page.getByRole('button', { name: 'Download and load', exact: true }).first().click();
      const key = `${proxy.url}/studio/demo-llama@main`;
      await expect.poll(() => page.getByTestId('model-name').textContent(), { timeout: 120_000 }).toBe(key);
      expect(hub.bytesServed('model.safetensors')).toBe(files['model.safetensors'].length);

      const cached = page.getByTestId('cached-model');
      await expect.poll(() => cached.count()).toBe(1);
      expect(await cached.first().textContent()).toContain(key);

      // Loaded again from the cache: not one more byte from the Hub.
      const served = hub.bytesServed();
      await page.getByRole('button', { name: 'Use the demo model' }).click();
      await expect.poll(() => page.getByTestId('model-name').textContent(), { timeout: 120_000 }).toBe('demo-llama');
      await page.getByRole('button', { name: 'Download and load', exact: true }).first().click();
      await expect.poll(() => page.getByTestId('model-name').textContent(), { timeout: 120_000 }).toBe(key);
      expect(hub.bytesServed()).toBe(served);

      await page.getByRole('button', { name: `Delete ${key} from this browser` }).click();
      await expect.poll(() => cached.count()).toBe(0);

      // A repo the Hub does not have: the reason, in words, and the loaded model stays.
      await page.getByLabel('Repo id').fill('studio/missing');
      await page.getByRole('button', { name: 'Download and load', exact: true }).first().click();
      const error = page.getByTestId('model-error');
      await error.waitFor({ timeout: 60_000 });
      expect(await error.textContent()).toMatch(/studio\/missing@main: gated or private: add an access token/);
      expect(await error.textContent()).not.toMatch(/\bat .*:\d+:\d+/); // no stack trace
      expect(await page.getByTestId('model-name').textContent()).toBe(key);
      expect(await page.getByTestId('gpu-badge').textContent()).not.toContain('no WebGPU');

      // A Hub address the build's Content-Security-Policy does not list: refused before any request, saying how.
      await page.getByLabel('Hub URL (a mirror, or a local server)').fill('https://hf-mirror.com');
      await page.getByLabel('Repo id').fill('studio/demo-llama');
      await page.getByRole('button', { name: 'Download and load', exact: true }).first().click();
      await expect.poll(() => error.textContent(), { timeout: 60_000 }).toMatch(
        /https:\/\/hf-mirror\.com is not an address this build of the studio may connect to .*LORA_STUDIO_CONNECT_SRC="https:\/\/hf-mirror\.com"/,
      );
      expect(await page.getByTestId('model-name').textContent()).toBe(key);
      expect(studio.problems).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => proxy.server.close(() => resolve()));
      await hub.stop();
    }
  });

  it('never writes the Hub access token anywhere: IndexedDB, the browser cache (OPFS), web storage, Cache Storage, the console or a URL (issue 14)', async () => {
    const { page } = studio;
    const TOKEN = 'hf_e2eSecretToken0123456789abcdef';
    const hub = await new FakeHub().start();
    const files: Record<string, Uint8Array> = {};
    for (const name of readdirSync(DEMO)) files[name] = readFileSync(join(DEMO, name));
    hub.addRepo('studio/gated-llama', { files, token: TOKEN });
    const proxy = await corsProxy(hub.baseUrl);
    const logged: string[] = [];
    const urls: string[] = [];
    const onConsole = (m: { text(): string }) => void logged.push(m.text());
    const onRequest = (r: { url(): string }) => void urls.push(r.url());
    page.on('console', onConsole);
    page.context().on('request', onRequest);
    try {
      await page.getByRole('button', { name: 'Models', exact: true }).click();
      await page.getByLabel('Hub URL (a mirror, or a local server)').fill(proxy.url);
      await page.getByLabel('Repo id').fill('studio/gated-llama');
      await page.getByLabel('Access token (gated models; kept in this tab only)').fill(TOKEN);
      await page.getByRole('button', { name: 'Download and load', exact: true }).first().click();
      await expect.poll(() => page.getByTestId('model-name').textContent(), { timeout: 120_000 }).toBe(`${proxy.url}/studio/gated-llama@main`);
      expect(hub.requests.some((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true); // it was used

      // Every place the page can write to, searched for `token` (keys, values, Blobs, byte arrays, file names).
      const scan = async (token: string) => {
        const hits: string[] = [];
        const latin1 = new TextDecoder('latin1');
        const contains = async (v: unknown, depth = 0): Promise<boolean> => {
          if (depth > 20 || v === null || v === undefined) return false;
          if (typeof v === 'string') return v.includes(token);
          if (typeof v !== 'object') return String(v).includes(token);
          if (v instanceof Blob) return (await v.text()).includes(token);
          if (v instanceof ArrayBuffer) return latin1.decode(v).includes(token);
          if (ArrayBuffer.isView(v)) return latin1.decode(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)).includes(token);
          const items = v instanceof Map ? [...v.entries()].flat() : v instanceof Set ? [...v] : Object.entries(v).flat();
          for (const item of items) if (await contains(item, depth + 1)) return true;
          return false;
        };
        const request = <T,>(r: IDBRequest<T>) => new Promise<T>((resolve, reject) => ((r.onsuccess = () => resolve(r.result)), (r.onerror = () => reject(r.error))));
        for (const info of await indexedDB.databases()) {
          const db = await request(indexedDB.open(info.name!));
          for (const store of [...db.objectStoreNames]) {
            const st = db.transaction(store).objectStore(store);
            const keys = await request(st.getAllKeys());
            const values = await request(st.getAll());
            for (let i = 0; i < values.length; i++) if ((await contains(keys[i])) || (await contains(values[i]))) hits.push(`IndexedDB ${info.name}/${store}/${String(keys[i])}`);
          }
          db.close();
        }
        type Dir = { entries(): AsyncIterable<[string, { kind: string; getFile?: () => Promise<File> } & Dir]> };
        const walk = async (dir: Dir, path: string): Promise<void> => {
          for await (const [name, handle] of dir.entries()) {
            if (name.includes(token)) hits.push(`OPFS ${path}${name}`);
            if (handle.kind === 'directory') await walk(handle, `${path}${name}/`);
            else if (await contains(await handle.getFile!())) hits.push(`OPFS ${path}${name}`);
          }
        };
        await walk((await navigator.storage.getDirectory()) as unknown as Dir, '/');
        for (const storage of [localStorage, sessionStorage]) {
          for (let i = 0; i < storage.length; i++) if (`${storage.key(i)}${storage.getItem(storage.key(i)!)}`.includes(token)) hits.push(`web storage ${storage.key(i)}`);
        }
        for (const name of await caches.keys()) {
          for (const req of await (await caches.open(name)).keys()) if (req.url.includes(token)) hits.push(`Cache Storage ${req.url}`);
        }
        if (document.cookie.includes(token) || location.href.includes(token)) hits.push('cookie or URL');
        return hits;
      };
      expect(await page.evaluate(scan, TOKEN)).toEqual([]);
      // The search finds what is there: the repo id is in the browser cache's records.
      expect((await page.evaluate(scan, 'studio/gated-llama')).length).toBeGreaterThan(0);
      expect(logged.filter((t) => t.includes(TOKEN))).toEqual([]);
      expect(urls.length).toBeGreaterThan(0);
      expect(urls.filter((u) => u.includes(TOKEN))).toEqual([]);
      expect(studio.problems).toEqual([]);
    } finally {
      page.off('console', onConsole);
      page.context().off('request', onRequest);
      await new Promise<void>((resolve) => proxy.server.close(() => resolve()));
      await hub.stop();
    }
  });

  it('loads the demo model for QLoRA, its linear layers in NF4', async () => {
    const { page } = studio;
    await page.getByLabel('Base weights').selectOption('nf4');
    await page.getByRole('button', { name: 'Use the demo model' }).click();
    await expect.poll(() => page.getByTestId('model-summary').textContent(), { timeout: 120_000 }).toContain('NF4 linear layers');
    expect(await page.getByTestId('model-name').textContent()).toBe('demo-llama');
    expect(studio.problems).toEqual([]);
  });

  it('reads in dark mode too', async () => {
    const { page } = studio;
    await page.emulateMedia({ colorScheme: 'dark' });
    await studio.screenshot('data-dark');
    await page.getByRole('button', { name: 'Models', exact: true }).click();
    await page.getByTestId('screen-models').waitFor();
    await studio.screenshot('models-dark');
    await page.emulateMedia({ colorScheme: 'light' });
    expect(studio.problems).toEqual([]);
  });
});
