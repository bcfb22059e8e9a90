#!/usr/bin/env node
// Installs the npm packages (`npm ci`) when node_modules is missing or stale: the one rule `npm start`
// (scripts/start.sh) and `npm test` (scripts/test-all.mjs) share, so a fresh clone works with either command first.
//   node scripts/ensure-npm-deps.mjs [label]    exits with npm ci's status (0 when nothing had to be installed)
// Stale means what `[[ package-lock.json -nt node_modules/.package-lock.json ]]` means in bash: the lockfile is newer
// than the copy npm writes into node_modules after an install, or that copy does not exist.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Why `npm ci` must run in `root`, or null when node_modules matches package-lock.json. */
export function npmInstallReason(root = ROOT) {
  const modules = join(root, 'node_modules');
  const installed = join(modules, '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (!existsSync(modules)) return 'node_modules is missing';
  if (!existsSync(installed)) return 'node_modules/.package-lock.json is missing';
  if (existsSync(lock) && statSync(lock, { bigint: true }).mtimeNs > statSync(installed, { bigint: true }).mtimeNs) {
    return 'package-lock.json is newer than node_modules';
  }
  return null;
}

/** Runs `npm ci` in `root` when npmInstallReason says so; returns the exit status (0 when nothing was needed). */
export function ensureNpmDeps(root = ROOT, label = 'npm') {
  const reason = npmInstallReason(root);
  if (!reason) return 0;
  console.log(`${label}: installing npm packages (npm ci): ${reason}`);
  const res = spawnSync('npm', ['ci'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (res.status !== 0) console.error(`${label}: npm ci failed (${res.error ? res.error.message : `exit ${res.status}`})`);
  return res.status ?? 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exit(ensureNpmDeps(ROOT, process.argv[2]));
}
