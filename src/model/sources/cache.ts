// Where downloaded model files are kept so a second load needs no network, and a broken download resumes.
//
// A cache holds models by key (e.g. "HuggingFaceTB/SmolLM2-135M-Instruct@main"); each model holds files by path. A
// file is written front to back through a CacheWriter, and its manifest entry says how many bytes from offset 0 are
// safely stored (`done`): after an interruption the downloader asks the server for the bytes from `done` on and
// nothing else. Reads go through `read(offset, length)`, so a multi-GB file is never held in JS memory.
//
// Implementations: MemoryModelCache (tests, or a browser without OPFS), OpfsModelCache (cache-opfs.ts, the browser),
// NodeModelCache (cache-node.ts, the CLI).

import type { ByteSource } from '../safetensors.ts';

/** What the cache knows of one file. */
export interface CachedFile {
  path: string;
  /** Total size as the server declared it; null until known (a response without a length, before it ends). */
  size: number | null;
  /** Bytes stored contiguously from offset 0. */
  done: number;
  /** The server's validator (ETag), sent as If-Range on a resume so a file that changed is fetched afresh. */
  etag: string | null;
  /** The source answered "no such file": remembered so an offline load knows an optional file is absent. */
  missing: boolean;
}

export function isComplete(file: CachedFile | null): boolean {
  return !!file && !file.missing && file.size !== null && file.done === file.size;
}

export interface CachedModel {
  key: string;
  /** Bytes stored over all files, partial ones included. */
  bytes: number;
  files: CachedFile[];
}

/** Writes one file front to back. `close` must be called on success and on failure: it commits what was written. */
export interface CacheWriter {
  /** Bytes of the file stored so far, counting those from before this writer. */
  readonly position: number;
  write(chunk: Uint8Array): Promise<void>;
  /** Commits the bytes written. `complete`: the file ended here, so its size is now `position`. */
  close(complete?: boolean): Promise<void>;
}

export interface WriterInit {
  /** 0 to start the file over, or its current `done` to append to it. */
  from: number;
  size: number | null;
  etag: string | null;
}

export interface ModelCache {
  /** Shown to the user: where the files live. */
  readonly name: string;
  file(key: string, path: string): Promise<CachedFile | null>;
  writer(key: string, path: string, init: WriterInit): Promise<CacheWriter>;
  markMissing(key: string, path: string): Promise<void>;
  /** Bytes [offset, offset + length) of a stored file, clipped to what is stored. */
  read(key: string, path: string, offset: number, length: number): Promise<Uint8Array>;
  list(): Promise<CachedModel[]>;
  delete(key: string): Promise<void>;
  /** null when `bytes` more fit in the storage behind the cache, else a message saying why not. */
  checkSpace?(bytes: number): Promise<string | null>;
}

/** A complete cached file as a ByteSource: reads come from the cache, one range at a time. */
export class CachedFileSource implements ByteSource {
  constructor(
    private readonly cache: ModelCache,
    private readonly key: string,
    private readonly path: string,
    readonly name: string,
    readonly size: number,
  ) {}

  read(offset: number, length: number): Promise<Uint8Array> {
    return this.cache.read(this.key, this.path, offset, Math.max(0, Math.min(length, this.size - offset)));
  }
}

export function checkWriterInit(file: CachedFile | null, init: WriterInit, where: string): void {
  const done = file && !file.missing ? file.done : 0;
  if (init.from !== 0 && init.from !== done) throw new Error(`${where}: cannot resume at byte ${init.from}, ${done} bytes are stored`);
}

export function totalBytes(files: CachedFile[]): number {
  return files.reduce((sum, f) => sum + (f.missing ? 0 : f.done), 0);
}

// ---------------------------------------------------------------------------------------------------------------
// Storage quota (browser)

/** The part of navigator.storage this module uses (injectable for tests). */
export interface StorageLike {
  estimate(): Promise<{ usage?: number; quota?: number }>;
  persist?(): Promise<boolean>;
  persisted?(): Promise<boolean>;
}

export interface QuotaCheck {
  ok: boolean;
  /** Bytes free for this origin, or null when the browser does not say. */
  available: number | null;
  usage: number | null;
  quota: number | null;
  /** Why it does not fit (null when ok). */
  message: string | null;
}

function browserStorage(): StorageLike | null {
  const storage = (globalThis as { navigator?: { storage?: StorageLike } }).navigator?.storage;
  return storage && typeof storage.estimate === 'function' ? storage : null;
}

/** Does a download of `bytes` fit in this origin's storage quota? Call it before a large download; `what` names the
 *  thing in the message (e.g. "Qwen/Qwen2.5-0.5B-Instruct (988 MB)"). */
export async function checkStorageQuota(bytes: number, what = 'the download', storage: StorageLike | null = browserStorage()): Promise<QuotaCheck> {
  if (!storage) return { ok: true, available: null, usage: null, quota: null, message: null };
  const { usage = null, quota = null } = await storage.estimate();
  if (quota === null) return { ok: true, available: null, usage, quota, message: null };
  const available = Math.max(0, quota - (usage ?? 0));
  if (bytes <= available) return { ok: true, available, usage, quota, message: null };
  const message =
    `${what} needs ${formatBytes(bytes)} but only ${formatBytes(available)} of browser storage is free ` +
    `(quota ${formatBytes(quota)}, ${formatBytes(usage ?? 0)} used): delete cached models or free disk space, then retry`;
  return { ok: false, available, usage, quota, message };
}

const persistRequests = new WeakMap<object, Promise<boolean>>();

/** Asks the browser once (per storage object) not to evict the cache under storage pressure. Resolves to whether
 *  storage is persistent; never throws (the cache works without it, it may just be evicted). */
export function requestPersistentStorage(storage: StorageLike | null = browserStorage()): Promise<boolean> {
  if (!storage?.persist) return Promise.resolve(false);
  let request = persistRequests.get(storage);
  if (!request) {
    request = (async () => {
      try {
        if (await storage.persisted?.()) return true;
        return await storage.persist!();
      } catch {
        return false;
      }
    })();
    persistRequests.set(storage, request);
  }
  return request;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

// ---------------------------------------------------------------------------------------------------------------
// In memory

interface MemoryFile {
  meta: CachedFile;
  chunks: Uint8Array[];
  /** starts[i]: offset of chunks[i] in the file. */
  starts: number[];
}

/** Keeps files in JS memory: tests, and a browser with no OPFS (nothing survives a reload there). */
export class MemoryModelCache implements ModelCache {
  readonly name = 'memory (not kept across reloads)';
  private readonly models = new Map<string, Map<string, MemoryFile>>();

  async file(key: string, path: string): Promise<CachedFile | null> {
    const file = this.models.get(key)?.get(path);
    return file ? { ...file.meta } : null;
  }

  async writer(key: string, path: string, init: WriterInit): Promise<CacheWriter> {
    let files = this.models.get(key);
    if (!files) this.models.set(key, (files = new Map()));
    const existing = files.get(path) ?? null;
    checkWriterInit(existing?.meta ?? null, init, `${key}/${path}`);
    const file: MemoryFile =
      init.from === 0 || !existing
        ? { meta: { path, size: init.size, done: 0, etag: init.etag, missing: false }, chunks: [], starts: [] }
        : { ...existing, meta: { ...existing.meta, size: init.size ?? existing.meta.size, etag: init.etag ?? existing.meta.etag } };
    files.set(path, file);
    return {
      get position() {
        return file.meta.done;
      },
      async write(chunk: Uint8Array) {
        file.starts.push(file.meta.done);
        file.chunks.push(chunk.slice());
        file.meta.done += chunk.length;
      },
      async close(complete = false) {
        if (complete) file.meta.size = file.meta.done;
      },
    };
  }

  async markMissing(key: string, path: string): Promise<void> {
    let files = this.models.get(key);
    if (!files) this.models.set(key, (files = new Map()));
    files.set(path, { meta: { path, size: null, done: 0, etag: null, missing: true }, chunks: [], starts: [] });
  }

  async read(key: string, path: string, offset: number, length: number): Promise<Uint8Array> {
    const file = this.models.get(key)?.get(path);
    if (!file) throw new Error(`${key}/${path}: not in the cache`);
    const end = Math.min(offset + length, file.meta.done);
    const out = new Uint8Array(Math.max(0, end - offset));
    // The last chunk starting at or before `offset`, then forward.
    let lo = 0;
    let hi = file.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (file.starts[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    for (let i = lo; i < file.chunks.length && file.starts[i] < end; i++) {
      const start = file.starts[i];
      const chunk = file.chunks[i];
      const from = Math.max(offset, start);
      const to = Math.min(end, start + chunk.length);
      if (from < to) out.set(chunk.subarray(from - start, to - start), from - offset);
    }
    return out;
  }

  async list(): Promise<CachedModel[]> {
    return [...this.models].map(([key, files]) => {
      const metas = [...files.values()].map((f) => ({ ...f.meta }));
      return { key, bytes: totalBytes(metas), files: metas };
    });
  }

  async delete(key: string): Promise<void> {
    this.models.delete(key);
  }
}
