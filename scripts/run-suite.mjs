#!/usr/bin/env node
// Runs one test suite and prints its wall time and a `suite: N passed, N failed` line.
//   unit       vitest project "unit" (pure TypeScript)
//   gpu        vitest project "gpu" once per WebGPU driver found (see findDrivers)
//   e2e        builds the app, then vitest project "e2e" (Playwright + Debian's chromium)
//   typecheck  tsc --noEmit
// Counts are also written to artifacts/results/<suite>.json for scripts/test-all.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(ROOT, 'artifacts', 'results');
const LAVAPIPE_ENV = join(ROOT, '.webgpu', 'lavapipe', 'env.json');
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const extraArgs = process.argv.slice(3);

function run(cmd, args, env = process.env) {
  return spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env });
}

/** Runs a vitest project and returns its pass/fail counts (a crash with no report counts as one failure). */
function vitest(project, tag, env = process.env) {
  mkdirSync(RESULTS, { recursive: true });
  const report = join(RESULTS, `vitest-${tag}.json`);
  rmSync(report, { force: true });
  const res = run(
    'npx',
    ['vitest', 'run', '--project', project, '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...extraArgs],
    env,
  );
  if (!existsSync(report)) return { passed: 0, failed: 1, note: `vitest exited ${res.status} without a report` };
  const json = JSON.parse(readFileSync(report, 'utf8'));
  const failed = json.numFailedTests + (res.status !== 0 && json.numFailedTests === 0 ? 1 : 0);
  return { passed: json.numPassedTests, failed, skipped: json.numPendingTests + json.numTodoTests };
}

/** The environment for a Vulkan driver: lavapipe's env.sh exports, or SwiftShader's ICD file. */
function driverEnv(driver) {
  const env = { ...process.env, LORA_STUDIO_DRIVER: driver };
  if (driver === 'lavapipe') {
    const lavapipe = JSON.parse(readFileSync(LAVAPIPE_ENV, 'utf8'));
    env.VK_ICD_FILENAMES = lavapipe.VK_ICD_FILENAMES;
    env.LD_LIBRARY_PATH = [lavapipe.LD_LIBRARY_PATH, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
    env.XDG_RUNTIME_DIR ??= '/tmp';
  } else if (driver === 'swiftshader') {
    env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  return env;
}

function probe(env) {
  const res = spawnSync(process.execPath, [join(ROOT, 'scripts', 'probe-adapter.mjs')], { cwd: ROOT, env, encoding: 'utf8' });
  const line = (res.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line);
  } catch {
    return { adapter: null, error: `probe crashed (exit ${res.status}, signal ${res.signal})` };
  }
}

/** Drivers to run the GPU suite on: the machine's own GPU when it has one, plus each CPU driver installed
 *  (lavapipe exercises the shader-f16 paths, SwiftShader the no-f16 ones, which is what Chrome gives e2e). */
function findDrivers() {
  const drivers = [];
  const system = probe({ ...process.env, LORA_STUDIO_DRIVER: 'system' });
  if (system.adapter && !system.isCpu) drivers.push({ name: 'system', info: system });
  if (existsSync(LAVAPIPE_ENV)) {
    const info = probe(driverEnv('lavapipe'));
    if (info.adapter) drivers.push({ name: 'lavapipe', info });
    else console.log(`test:gpu: lavapipe is installed but gives no adapter: ${info.error}`);
  }
  if (existsSync(SWIFTSHADER_ICD)) {
    const info = probe(driverEnv('swiftshader'));
    if (info.adapter) drivers.push({ name: 'swiftshader', info });
    else console.log(`test:gpu: SwiftShader is installed but gives no adapter: ${info.error}`);
  }
  return drivers;
}

function gpuSuite() {
  let drivers = findDrivers();
  if (drivers.length === 0 && process.platform === 'linux' && existsSync('/usr/bin/apt-get')) {
    console.log('test:gpu: no WebGPU adapter found; installing CPU Vulkan drivers with scripts/setup-webgpu.sh');
    run('bash', [join(ROOT, 'scripts', 'setup-webgpu.sh')]);
    drivers = findDrivers();
  }
  if (drivers.length === 0) {
    console.log(
      'test:gpu: no WebGPU adapter. Install a Vulkan driver for your GPU, or on Debian/Ubuntu run ' +
        '`npm run setup:webgpu` (installs libvulkan1 and chromium, unpacks lavapipe into .webgpu/).',
    );
    return { passed: 0, failed: 1 };
  }
  const total = { passed: 0, failed: 0, skipped: 0 };
  for (const d of drivers) {
    const a = d.info.adapter;
    console.log(`\n── test:gpu on ${d.name}: ${a.description || a.vendor} (shader-f16: ${d.info.f16 ? 'yes' : 'no'}) ──`);
    const r = vitest('gpu', `gpu-${d.name}`, driverEnv(d.name));
    console.log(`test:gpu[${d.name}]: ${r.passed} passed, ${r.failed} failed${r.note ? ` (${r.note})` : ''}`);
    total.passed += r.passed;
    total.failed += r.failed;
    total.skipped += r.skipped ?? 0;
  }
  return total;
}

function e2eSuite() {
  if (!existsSync('/usr/bin/chromium') && existsSync('/usr/bin/apt-get')) {
    console.log('test:e2e: /usr/bin/chromium missing; installing it with scripts/setup-webgpu.sh');
    run('bash', [join(ROOT, 'scripts', 'setup-webgpu.sh')]);
  }
  // The e2e build lets the page reach the fake Hub (a local server on a free port) under the CSP (e2e/harness.ts).
  const build = run('npx', ['vite', 'build', '--logLevel', 'warn'], { ...process.env, LORA_STUDIO_CONNECT_SRC: 'http://127.0.0.1:*' });
  if (build.status !== 0) return { passed: 0, failed: 1, note: 'vite build failed' };
  return vitest('e2e', 'e2e');
}

function typecheck() {
  const res = run('npx', ['tsc', '--noEmit', '-p', 'tsconfig.json']);
  return res.status === 0 ? { passed: 1, failed: 0 } : { passed: 0, failed: 1 };
}

const suites = { unit: () => vitest('unit', 'unit'), gpu: gpuSuite, e2e: e2eSuite, typecheck };
const name = process.argv[2];
if (!suites[name]) {
  console.error(`usage: run-suite.mjs ${Object.keys(suites).join('|')} [vitest args]`);
  process.exit(2);
}
const started = Date.now();
const result = suites[name]();
const seconds = ((Date.now() - started) / 1000).toFixed(1);
mkdirSync(RESULTS, { recursive: true });
writeFileSync(join(RESULTS, `${name}.json`), JSON.stringify({ ...result, seconds: Number(seconds) }));
console.log(`\n${name}: ${result.passed} passed, ${result.failed} failed${result.skipped ? `, ${result.skipped} skipped` : ''} in ${seconds}s${result.note ? ` (${result.note})` : ''}`);
process.exit(result.failed > 0 ? 1 : 0);
