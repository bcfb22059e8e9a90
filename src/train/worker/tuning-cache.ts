// The browser's TuningCache for matmul-tuning.ts. Workers have no localStorage, and TuningCache is synchronous, so
// the entries are read from IndexedDB (idb-keyval) once, served from memory, and written back in the background. A
// failed read or write only costs a re-measurement next session: tuning picks speed, never results.
import { get, set } from 'idb-keyval';
import type { TuningCache } from '../../gpu/kernels/matmul-tuning.ts';

const KEY = 'lora-studio:tuning';

export class MemoryTuningCache implements TuningCache {
  constructor(
    readonly entries: Record<string, string> = {},
    private readonly persist: (entries: Record<string, string>) => void = () => {},
  ) {}

  get(key: string): string | undefined {
    return this.entries[key];
  }

  set(key: string, value: string): void {
    this.entries[key] = value;
    this.persist({ ...this.entries });
  }
}

let cache: Promise<TuningCache> | null = null;

export function idbTuningCache(): Promise<TuningCache> {
  cache ??= (async () => {
    const stored = await get<Record<string, string>>(KEY).catch(() => undefined);
    const entries = stored && typeof stored === 'object' ? { ...stored } : {};
    return new MemoryTuningCache(entries, (all) => void set(KEY, all).catch(() => {}));
  })();
  return cache;
}
