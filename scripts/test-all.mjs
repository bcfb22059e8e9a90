#!/usr/bin/env node
// `npm test`: every suite in turn (typecheck, unit, gpu on each driver, e2e), each printing its wall time, then one
// closing line `N passed, N failed` summed over all suites, the line CI reads. Exits non-zero if anything failed.
// First of all it installs the npm packages where they are missing or stale (scripts/ensure-npm-deps.mjs, the rule
// `npm start` uses too). `node scripts/test-all.mjs unit typecheck` runs only the suites named.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNpmDeps } from './ensure-npm-deps.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const ALL = ['typecheck', 'unit', 'gpu', 'e2e'];
const asked = process.argv.slice(2);
const unknown = asked.filter((s) => !ALL.includes(s));
if (unknown.length > 0) {
  console.error(`test-all: unknown suite ${unknown.join(', ')}. Should be one of: ${ALL.join(', ')}`);
  process.exit(2);
}
const SUITES = asked.length > 0 ? ALL.filter((s) => asked.includes(s)) : ALL;
const started = Date.now();
if (ensureNpmDeps(ROOT, 'test') !== 0) {
  // Without the packages every suite would fail on a missing tsc, vitest or vite: say the real cause once.
  console.log('\nnpm ci failed: no suite ran');
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const rows = [];
for (const suite of SUITES) {
  const file = join(ROOT, 'artifacts', 'results', `${suite}.json`);
  rmSync(file, { force: true });
  console.log(`\n════ ${suite} ════`);
  const res = spawnSync(process.execPath, [join(ROOT, 'scripts', 'run-suite.mjs'), suite], { cwd: ROOT, stdio: 'inherit' });
  const result = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : { passed: 0, failed: 1, seconds: 0, note: `crashed (exit ${res.status})` };
  rows.push({ suite, ...result });
}
console.log('\nsuite       passed  failed  seconds');
for (const r of rows) {
  console.log(`${r.suite.padEnd(10)} ${String(r.passed).padStart(7)} ${String(r.failed).padStart(7)} ${String(r.seconds).padStart(8)}${r.note ? `  ${r.note}` : ''}`);
}
const passed = rows.reduce((s, r) => s + r.passed, 0);
const failed = rows.reduce((s, r) => s + r.failed, 0);
const skipped = rows.reduce((s, r) => s + (r.skipped ?? 0), 0);
console.log(`total time ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
