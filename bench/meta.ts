// The header of every run: which adapter and driver, when, and which commit, so a table can be traced back.
import { execFileSync } from 'node:child_process';
import type { Gpu } from '../src/gpu/device.ts';

export interface RunMeta {
  date: string;
  commit: string;
  /** True when the working tree had uncommitted changes to tracked files. */
  dirty: boolean;
  node: string;
  adapter: Gpu['adapter'];
  /** The Vulkan ICD file(s) dawn.node was pointed at, if the environment chose one. */
  vulkanIcd: string | null;
  features: string[];
  limits: Gpu['limits'];
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export function runMeta(gpu: Gpu): RunMeta {
  return {
    date: new Date().toISOString(),
    commit: git(['rev-parse', '--short=12', 'HEAD']) ?? process.env.BENCH_COMMIT ?? 'unknown',
    dirty: (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '',
    node: process.version,
    adapter: gpu.adapter,
    vulkanIcd: process.env.VK_ICD_FILENAMES ?? null,
    features: [...gpu.features],
    limits: gpu.limits,
  };
}

export function formatMeta(m: RunMeta): string {
  const a = m.adapter;
  const driver = [a.vendor, a.architecture, a.device].filter(Boolean).join(' / ') || 'not reported';
  return [
    `adapter: ${a.name}${a.isCpu ? ' (CPU driver: correctness only, speed is not representative)' : ''}`,
    `driver: ${driver}${m.vulkanIcd ? `; Vulkan ICD ${m.vulkanIcd}` : ''}`,
    `features: ${m.features.join(', ') || 'none'}; maxBufferSize ${m.limits.maxBufferSize}, maxStorageBufferBindingSize ${m.limits.maxStorageBufferBindingSize}`,
    `date: ${m.date}`,
    `commit: ${m.commit}${m.dirty ? ' (with uncommitted changes)' : ''}; node ${m.node}`,
  ].join('\n');
}
