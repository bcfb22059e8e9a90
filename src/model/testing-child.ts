// Running test code in a child Node process with a small heap (issue 14): unbounded memory on a hostile or large
// input is then a crash of that child (a failed test), not of the test runner. The TypeScript entry is bundled for
// Node with vite (its dependencies inlined, Node's built-ins external) into node_modules/.cache, once per test file (removeBundle in its afterAll).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Bundles `entry` (a path from the repository root) into one .mjs and returns its path. */
export async function bundleForNode(entry: string): Promise<string> {
  const outDir = join(ROOT, 'node_modules', '.cache', 'lora-studio-child', `${basename(entry, '.ts')}-${process.pid}`);
  mkdirSync(outDir, { recursive: true });
  await build({
    configFile: false,
    logLevel: 'silent',
    root: ROOT,
    ssr: { noExternal: true },
    build: {
      ssr: join(ROOT, entry),
      outDir,
      emptyOutDir: true,
      minify: false,
      rollupOptions: { output: { format: 'es', entryFileNames: 'child.mjs' } },
    },
  });
  return join(outDir, 'child.mjs');
}

/** Deletes what bundleForNode wrote. */
export function removeBundle(script: string): void {
  if (script) rmSync(dirname(script), { recursive: true, force: true });
}

export interface ChildResult extends Pick<SpawnSyncReturns<string>, 'status' | 'signal' | 'stdout' | 'stderr'> {
  /** The last stdout line, parsed: the child's report. */
  report: Record<string, unknown> | null;
}

/** Runs a bundled script with `--max-old-space-size=heapMiB --expose-gc`; its report is its last stdout line (JSON). */
export function runWithHeapLimit(script: string, args: string[], heapMiB: number, timeoutMs: number, env: NodeJS.ProcessEnv = process.env): ChildResult {
  const res = spawnSync(process.execPath, [`--max-old-space-size=${heapMiB}`, '--expose-gc', script, ...args], {
    encoding: 'utf8', timeout: timeoutMs, env, maxBuffer: 64 * 1024 * 1024,
  });
  const last = res.stdout.trim().split('\n').pop() ?? '';
  let report: Record<string, unknown> | null = null;
  try {
    report = JSON.parse(last) as Record<string, unknown>;
  } catch {
    report = null;
  }
  return { status: res.status, signal: res.signal, stdout: res.stdout, stderr: res.stderr, report };
}
