// The e2e harness: serves the built app (dist/) on 127.0.0.1, drives Debian's chromium with real WebGPU
// (SwiftShader) through playwright-core, and fails a test if the page logs an error, asks any other host, or breaks
// the Content-Security-Policy (vite.config.ts) anywhere: the page's securitypolicyviolation events are logged as
// errors, and the policy header (which the engine worker runs under) reports to the preview server.
import { unzipSync } from 'fflate';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { build, preview, type Plugin, type PreviewServer } from 'vite';
import { contentSecurityPolicy } from '../vite.config.ts';

/** The fake Hub's origin (a CORS proxy on a free port), which the e2e build adds to connect-src. */
export const E2E_CONNECT_SRC = 'http://127.0.0.1:*';
const CSP_REPORT_PATH = '/__csp-report';

export const ARTIFACTS = join(process.cwd(), 'artifacts', 'e2e');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// --enable-unsafe-webgpu is the one flag headless Linux Chrome needs for WebGPU; the rest keep Chrome from reaching
// for the network (there is none) and let it run as root.
const CHROME_ARGS = [
  '--enable-unsafe-webgpu',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

export interface Studio {
  url: string;
  browser: Browser;
  page: Page;
  /** Console errors, page errors, CSP violations and requests to hosts other than 127.0.0.1, in order. */
  problems: string[];
  screenshot(name: string): Promise<string>;
  /** Opens the studio (with `query`, e.g. '?debug=1'), waits for the adapter and loads the bundled demo model. */
  openWithDemoModel(query?: string): Promise<void>;
  /** On the Data screen, loads the sample Pirate voice (chat) dataset and waits for its counts. */
  loadPirateSample(): Promise<void>;
  /** The Train screen with the Quick preset (and `method`, when given), after opening the demo model and the pirate
   *  sample if the studio is not open yet. */
  openTrainScreen(method?: string): Promise<void>;
  /** Fills the Train screen's run fields: max steps, batch size, max length, and the optional ones given. */
  fillRun(run: RunFields): Promise<void>;
  /** Starts training and waits until the run has finished. */
  trainToEnd(): Promise<void>;
  /** The Runs screen's card of the run named `name` (opening the Runs screen, waiting for the one card). */
  runCard(name: string): Promise<Locator>;
  /** Clicks the download button named `button`, saves the file as ARTIFACTS/`fileName` and returns its path and, for
   *  a .zip, its entries. */
  download(where: Locator, button: string, fileName: string): Promise<{ path: string; files: Record<string, Uint8Array> }>;
  /** In the Playground, generates `prompt` with the base model and the run whose label matches `run` (and no other),
   *  and waits for both columns to finish. */
  generateBesideBase(run: RegExp, prompt: string): Promise<Locator>;
  close(): Promise<void>;
}

/** The Train screen fields a test sets; strings go in as typed. */
export interface RunFields {
  steps: number;
  batch: number;
  maxLength: number;
  name?: string;
  learningRate?: string;
  evalSplit?: string;
  evalEvery?: number;
  checkpointEvery?: number;
}

/** dist/ as the e2e tests need it: with the policy, and the fake Hub's origin in connect-src. A dist/ built without
 *  it (a plain `npx vite build`) is built again here with LORA_STUDIO_CONNECT_SRC, as `npm run test:e2e` builds it. */
async function ensureE2eBuild(): Promise<void> {
  const index = join(process.cwd(), 'dist', 'index.html');
  const ready = () => existsSync(index) && readFileSync(index, 'utf8').includes(E2E_CONNECT_SRC);
  if (ready()) return;
  console.log(`e2e: dist/ lacks ${E2E_CONNECT_SRC} in its Content-Security-Policy; building it again with LORA_STUDIO_CONNECT_SRC`);
  process.env.LORA_STUDIO_CONNECT_SRC = E2E_CONNECT_SRC;
  await build({ configFile: join(process.cwd(), 'vite.config.ts'), logLevel: 'warn' });
  if (!ready()) throw new Error(`dist/index.html still lacks ${E2E_CONNECT_SRC}: LORA_STUDIO_CONNECT_SRC='${E2E_CONNECT_SRC}' npx vite build`);
}

/** Collects the reports of the policy's report-uri (violations in the engine worker, and the page's too). */
function cspReports(problems: string[]): Plugin {
  return {
    name: 'e2e-csp-reports',
    configurePreviewServer(server) {
      server.middlewares.use(CSP_REPORT_PATH, (req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          let r: Record<string, unknown> = {};
          try {
            r = (JSON.parse(body) as { 'csp-report'?: Record<string, unknown> })['csp-report'] ?? {};
          } catch {
            r = { body };
          }
          problems.push(`CSP violation (report): ${r['violated-directive'] ?? r['effective-directive']} blocked ${r['blocked-uri']} in ${r['source-file'] ?? r['document-uri']}`);
          res.statusCode = 204;
          res.end();
        });
      });
    },
  };
}

export async function openStudio(): Promise<Studio> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await ensureE2eBuild();
  const problems: string[] = [];
  const server: PreviewServer = await preview({
    configFile: join(process.cwd(), 'vite.config.ts'),
    logLevel: 'warn',
    plugins: [cspReports(problems)],
    preview: {
      host: '127.0.0.1',
      port: 0,
      strictPort: false,
      open: false,
      headers: { 'Content-Security-Policy': `${contentSecurityPolicy([E2E_CONNECT_SRC])}; report-uri ${CSP_REPORT_PATH}` },
    },
  });
  const address = server.httpServer.address();
  if (!address || typeof address === 'string') throw new Error('preview server has no port');
  const url = `http://127.0.0.1:${address.port}/`;
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROME_ARGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.addInitScript(() =>
    document.addEventListener('securitypolicyviolation', (e) =>
      console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`),
    ),
  );
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('request', (req) => {
    const host = new URL(req.url()).hostname;
    if (!req.url().startsWith('data:') && !req.url().startsWith('blob:') && host !== '127.0.0.1') {
      problems.push(`request to another host: ${req.url()}`);
    }
  });
  const studio: Studio = {
    url,
    browser,
    page,
    problems,
    async screenshot(name) {
      const path = join(ARTIFACTS, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    async openWithDemoModel(query = '') {
      await page.goto(`${url}${query}`);
      await page.getByTestId('adapter-name').waitFor({ timeout: 60_000 });
      await page.getByRole('button', { name: 'Use the demo model' }).click();
      await page.getByTestId('model-summary').waitFor({ timeout: 120_000 });
    },
    async loadPirateSample() {
      await page.getByRole('button', { name: 'Data', exact: true }).click();
      await page.getByRole('button', { name: 'Use the sample Pirate voice (chat)' }).click();
      const counts = page.getByTestId('dataset-counts');
      await counts.waitFor({ timeout: 60_000 });
      for (let i = 0; i < 600 && (await counts.textContent()) !== '240 rows: 240 usable, 0 skipped'; i++) await page.waitForTimeout(100);
      const text = await counts.textContent();
      if (text !== '240 rows: 240 usable, 0 skipped') throw new Error(`the pirate sample did not load: ${text}`);
    },
    async openTrainScreen(method) {
      // A test run alone starts on a blank page; one after another finds the demo model and the sample loaded.
      if (!page.url().startsWith(url)) {
        await studio.openWithDemoModel();
        await studio.loadPirateSample();
      }
      await page.getByRole('button', { name: 'Train', exact: true }).click();
      await page.getByTestId('screen-train').waitFor();
      await page.getByRole('button', { name: /^Quick/ }).click();
      if (method) await page.getByLabel('Method').selectOption(method);
    },
    async fillRun(run) {
      await page.getByRole('radio', { name: 'max steps' }).check();
      await page.getByLabel('Max steps', { exact: true }).fill(String(run.steps));
      await page.getByLabel('Batch size').fill(String(run.batch));
      await page.getByLabel('Max length (tokens)').fill(String(run.maxLength));
      if (run.learningRate !== undefined) await page.getByLabel('Learning rate').fill(run.learningRate);
      if (run.checkpointEvery !== undefined) await page.getByLabel('Checkpoint every (steps)').fill(String(run.checkpointEvery));
      if (run.evalSplit !== undefined) await page.getByLabel('Eval split').fill(run.evalSplit);
      if (run.evalEvery !== undefined) await page.getByLabel('Evaluate every (steps, 0 = at the end)').fill(String(run.evalEvery));
      if (run.name !== undefined) await page.getByLabel('Run name').fill(run.name);
    },
    async trainToEnd() {
      await page.getByTestId('start-training').click();
      for (let i = 0; i < 1200 && (await page.getByTestId('run-phase').textContent()) !== 'Finished'; i++) await page.waitForTimeout(100);
      const phase = await page.getByTestId('run-phase').textContent();
      if (phase !== 'Finished') throw new Error(`the run did not finish within 120 s: its phase is ${JSON.stringify(phase)}`);
    },
    async runCard(name) {
      await page.getByRole('button', { name: 'Runs', exact: true }).click();
      const card = page.getByTestId('run-card').filter({ hasText: name });
      for (let i = 0; i < 300 && (await card.count()) !== 1; i++) await page.waitForTimeout(100);
      if ((await card.count()) !== 1) throw new Error(`the Runs screen shows ${await card.count()} cards named ${JSON.stringify(name)}, not one`);
      return card;
    },
    async download(where, button, fileName) {
      const [download] = await Promise.all([page.waitForEvent('download'), where.getByRole('button', { name: button }).click()]);
      const path = join(ARTIFACTS, fileName);
      await download.saveAs(path);
      return { path, files: fileName.endsWith('.zip') ? unzipSync(new Uint8Array(readFileSync(path))) : {} };
    },
    async generateBesideBase(run, prompt) {
      await page.getByRole('button', { name: 'Playground', exact: true }).click();
      await page.getByTestId('screen-playground').waitFor();
      await page.getByLabel('Prompt', { exact: true }).fill(prompt);
      await page.getByLabel('Max new tokens').fill('12');
      // Only these two answer: the Playground keeps earlier tests' choices.
      const answerers = page.getByRole('group', { name: 'Who answers' });
      const checked = answerers.getByRole('checkbox', { checked: true });
      while ((await checked.count()) > 0) await checked.first().uncheck();
      await answerers.getByLabel('Base model').check();
      await answerers.getByLabel(run).first().check();
      await page.getByRole('button', { name: 'Generate', exact: true }).click();
      const columns = page.getByTestId('playground-column');
      const statuses = () => columns.evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
      for (let i = 0; i < 600 && JSON.stringify(await statuses()) !== '["done","done"]'; i++) await page.waitForTimeout(100);
      const got = await statuses();
      if (JSON.stringify(got) !== '["done","done"]') throw new Error(`the Playground's columns did not both finish: ${JSON.stringify(got)}`);
      return columns;
    },
    async close() {
      await browser.close();
      await new Promise<void>((resolve) => server.httpServer.close(() => resolve()));
    },
  };
  return studio;
}
