// The Node side of matmul-tuning.ts's TuningCache: a small JSON file, by default ~/.cache/lora-studio/tuning.json
// ($XDG_CACHE_HOME respected, $LORA_STUDIO_CACHE_DIR overrides the folder). A missing or unreadable file is an empty
// cache and a failed write only loses the measurement: tuning picks speed, never results, so it must not stop a run.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Engine } from '../gpu/engine.ts';
import { tuneKernels, type MatmulChoice, type MatmulNf4Choice, type TuningCache } from '../gpu/kernels/matmul-tuning.ts';
import { kernelChoiceFor, type KernelChoice } from '../model/runtime/linear.ts';

export function defaultTuningCachePath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.LORA_STUDIO_CACHE_DIR) return join(env.LORA_STUDIO_CACHE_DIR, 'tuning.json');
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'lora-studio', 'tuning.json');
}

export class JsonFileTuningCache implements TuningCache {
  /** The last write failure, for a caller that wants to mention it; null when every write worked. */
  writeError: Error | null = null;

  constructor(readonly path: string = defaultTuningCachePath()) {}

  private read(): Record<string, string> {
    try {
      const json: unknown = JSON.parse(readFileSync(this.path, 'utf8'));
      if (typeof json !== 'object' || json === null || Array.isArray(json)) return {};
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(json)) if (typeof v === 'string') out[k] = v;
      return out;
    } catch {
      return {};
    }
  }

  get(key: string): string | undefined {
    return this.read()[key];
  }

  set(key: string, value: string): void {
    // Re-read first so that two processes tuning different adapters keep each other's entries; write to a temporary
    // name and rename so a reader never sees half a file.
    const entries = { ...this.read(), [key]: value };
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      writeFileSync(tmp, `${JSON.stringify(entries, null, 2)}\n`);
      renameSync(tmp, this.path);
      this.writeError = null;
    } catch (e) {
      this.writeError = e as Error;
    }
  }
}

/** The kernel variants the CLI runs with on this engine: LORA_STUDIO_MATMUL (dense) and LORA_STUDIO_MATMUL_NF4 if
 *  set, else the cached or freshly measured choices for this adapter (a forced dense variant alone also fixes NF4's,
 *  see tuneKernels). */
export async function cliKernelChoice(
  e: Engine,
  cache: TuningCache = new JsonFileTuningCache(),
  override: string | undefined = process.env.LORA_STUDIO_MATMUL,
  nf4Override: string | undefined = process.env.LORA_STUDIO_MATMUL_NF4,
): Promise<{ kernels: KernelChoice; matmul: MatmulChoice; nf4: MatmulNf4Choice }> {
  const { matmul, nf4 } = await tuneKernels(e, cache, { matmul: override || undefined, nf4: nf4Override || undefined });
  return { kernels: { ...kernelChoiceFor(matmul.variant), nf4: nf4.variant }, matmul, nf4 };
}
