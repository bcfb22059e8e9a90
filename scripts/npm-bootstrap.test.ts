// A fresh clone has no node_modules: `npm test` and `npm start` must each run `npm ci` before anything needs a
// package (CI runs `npm ci` itself and would never notice). A copy of the repository's tracked files, without
// node_modules, runs the real scripts/test-all.mjs and scripts/start.sh with `npm` and `npx` stubbed on PATH: the
// stubs log their arguments (npm ci writes node_modules/.package-lock.json as npm does), so this stays offline and
// takes about a second.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const isWindows = process.platform === 'win32';

let tmp: string;
let clone: string;
let bin: string;
let log: string;

/** The files a commit would hold, as they are in the working tree (a clone of HEAD would miss uncommitted changes):
 *  tracked ones and new ones git does not ignore, so never node_modules. */
function copyTrackedFiles(to: string): void {
  const ls = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' });
  if (ls.status !== 0) throw new Error(`git ls-files failed: ${ls.stderr}`);
  for (const path of ls.stdout.split('\0').filter(Boolean)) {
    const from = join(ROOT, path);
    if (!existsSync(from)) continue; // deleted in the working tree
    mkdirSync(dirname(join(to, path)), { recursive: true });
    copyFileSync(from, join(to, path));
  }
}

function stub(name: string, body: string): void {
  const file = join(bin, name);
  writeFileSync(file, `#!/bin/sh\necho "${name} $*" >> "$STUB_LOG"\n${body}`);
  chmodSync(file, 0o755);
}

function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const res = spawnSync(cmd, args, {
    cwd: clone,
    encoding: 'utf8',
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, STUB_LOG: log, ...env },
    timeout: 60_000,
  });
  const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean) : [];
  rmSync(log, { force: true });
  return { status: res.status, out: `${res.stdout}${res.stderr}`, lastLine: res.stdout.trim().split('\n').at(-1), calls };
}

const setMtime = (path: string, seconds: number) => utimesSync(join(clone, path), seconds, seconds);
const NOW = Math.floor(Date.now() / 1000);

describe.skipIf(isWindows)('npm packages on a fresh clone', () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'lora-studio-clone-'));
    clone = join(tmp, 'repo');
    bin = join(tmp, 'bin');
    log = join(tmp, 'calls.log');
    mkdirSync(bin);
    copyTrackedFiles(clone);
    // npm ci as npm does it, as far as the rule can see: node_modules with a copy of the lockfile written last.
    stub('npm', '[ "$1" = ci ] || exit 0\n[ -n "$STUB_NPM_FAIL" ] && exit 1\nmkdir -p node_modules && cp package-lock.json node_modules/.package-lock.json\n');
    stub('npx', 'exit 0\n');
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  beforeEach(() => rmSync(join(clone, 'node_modules'), { recursive: true, force: true }));

  it('is a clone without node_modules', () => {
    expect(existsSync(join(clone, 'package.json'))).toBe(true);
    expect(existsSync(join(clone, 'package-lock.json'))).toBe(true);
    expect(existsSync(join(clone, 'node_modules'))).toBe(false);
  });

  it('npm test installs them first, then runs the suites, and not again once installed', () => {
    const first = run(process.execPath, ['scripts/test-all.mjs', 'typecheck']);
    expect(first.calls).toEqual(['npm ci', 'npx tsc --noEmit -p tsconfig.json']);
    expect(first.out).toMatch(/node_modules is missing/);
    expect(first.lastLine).toBe('1 passed, 0 failed');
    expect(first.status).toBe(0);
    expect(existsSync(join(clone, 'node_modules', '.package-lock.json'))).toBe(true);

    const second = run(process.execPath, ['scripts/test-all.mjs', 'typecheck']);
    expect(second.calls).toEqual(['npx tsc --noEmit -p tsconfig.json']);
  });

  it('npm start installs them first, then serves', () => {
    const res = run('bash', ['scripts/start.sh']);
    expect(res.calls).toEqual(['npm ci', 'npx vite --host 127.0.0.1 --port 5173 --strictPort']);
    expect(res.out).toMatch(/start: installing npm packages \(npm ci\): node_modules is missing/); // the shared rule
    expect(res.status).toBe(0);
  });

  it('reinstalls when package-lock.json is newer than node_modules, or npm never finished an install', () => {
    const ensure = () => run(process.execPath, ['scripts/ensure-npm-deps.mjs', 'test']);
    expect(ensure().calls).toEqual(['npm ci']);
    setMtime('package-lock.json', NOW - 100);
    setMtime('node_modules/.package-lock.json', NOW - 50);
    expect(ensure().calls).toEqual([]);
    setMtime('package-lock.json', NOW - 10); // a pull that changed the dependencies
    const stale = ensure();
    expect(stale.out).toMatch(/package-lock.json is newer than node_modules/);
    expect(stale.calls).toEqual(['npm ci']);
    rmSync(join(clone, 'node_modules', '.package-lock.json'));
    expect(ensure().calls).toEqual(['npm ci']);
  });

  it('a failed npm ci stops npm test with the cause, before any suite', () => {
    // Only the typecheck suite, here as everywhere in this file: the others would set up WebGPU drivers should the
    // bootstrap go missing.
    const res = run(process.execPath, ['scripts/test-all.mjs', 'typecheck'], { STUB_NPM_FAIL: '1' });
    expect(res.calls).toEqual(['npm ci']);
    expect(res.status).toBe(1);
    expect(res.out).toMatch(/npm ci failed/);
    expect(res.lastLine).toBe('0 passed, 1 failed');
  });
});
