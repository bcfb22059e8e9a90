// ModelCache on the Origin Private File System (navigator.storage.getDirectory()): the browser's store for multi-GB
// model files. Cache Storage would need each file whole as one Response; OPFS takes a file written piece by piece.
//
// Layout under the root:  models/<encoded key>/manifest.json
//                          models/<encoded key>/<encoded path>.<part number>
// A file is stored as parts of `partBytes` (64 MiB by default). Main-thread OPFS writes go through
// createWritable(), whose bytes reach the file only when the stream closes (and reopening with keepExistingData
// copies the whole file first): parts bound both the copy and what a killed tab loses. The manifest records each
// file's `done` only after the part holding those bytes is closed, so it never claims bytes that are not stored.

import {
  MemoryModelCache,
  checkStorageQuota,
  checkWriterInit,
  requestPersistentStorage,
  totalBytes,
  type CacheWriter,
  type CachedFile,
  type CachedModel,
  type ModelCache,
  type StorageLike,
  type WriterInit,
} from './cache.ts';

export const DEFAULT_PART_BYTES = 64 * 1024 * 1024;
const MODELS_DIR = 'models';
const MANIFEST = 'manifest.json';

interface Manifest {
  key: string;
  files: Record<string, CachedFile>;
}

/** lib.dom without DOM.AsyncIterable: the directory iteration this module uses. */
type IterableDirectory = FileSystemDirectoryHandle & { values(): AsyncIterable<FileSystemHandle> };

export interface OpfsCacheOptions {
  /** The directory to keep models in. Default: the OPFS root. */
  root?: FileSystemDirectoryHandle | (() => Promise<FileSystemDirectoryHandle>);
  partBytes?: number;
  /** navigator.storage by default: quota checks and the persistence request. */
  storage?: StorageLike | null;
}

export class OpfsModelCache implements ModelCache {
  readonly name = 'browser storage (OPFS)';
  private readonly partBytes: number;
  private readonly storage: StorageLike | null;
  private rootPromise: Promise<FileSystemDirectoryHandle> | null = null;
  /** Manifest writes of one model, one after another (two files of a model may download at once). */
  private readonly manifestQueue = new Map<string, Promise<unknown>>();

  constructor(private readonly options: OpfsCacheOptions = {}) {
    this.partBytes = options.partBytes ?? DEFAULT_PART_BYTES;
    const nav = (globalThis as { navigator?: { storage?: StorageLike } }).navigator;
    this.storage = options.storage !== undefined ? options.storage : (nav?.storage ?? null);
  }

  /** Whether this browser has OPFS. */
  static available(): boolean {
    const storage = (globalThis as { navigator?: { storage?: { getDirectory?: unknown } } }).navigator?.storage;
    return typeof storage?.getDirectory === 'function';
  }

  private models(): Promise<FileSystemDirectoryHandle> {
    this.rootPromise ??= (async () => {
      const root = this.options.root;
      const dir = typeof root === 'function' ? await root() : (root ?? (await navigator.storage.getDirectory()));
      return dir.getDirectoryHandle(MODELS_DIR, { create: true });
    })();
    return this.rootPromise;
  }

  private async modelDir(key: string, create: boolean): Promise<FileSystemDirectoryHandle | null> {
    try {
      return await (await this.models()).getDirectoryHandle(encodeURIComponent(key), { create });
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  private async readManifest(dir: FileSystemDirectoryHandle, key: string): Promise<Manifest> {
    try {
      const file = await (await dir.getFileHandle(MANIFEST)).getFile();
      const manifest = JSON.parse(await file.text()) as Manifest;
      if (manifest && typeof manifest.files === 'object') return manifest;
    } catch (e) {
      if (!isNotFound(e) && !(e instanceof SyntaxError)) throw e;
      // No manifest, or a torn one: the model's stored bytes are unknown, so count none of them.
    }
    return { key, files: {} };
  }

  /** Applies `change` to the model's manifest, serialised with every other manifest change of the model. */
  private updateManifest(key: string, change: (manifest: Manifest) => void): Promise<void> {
    const previous = this.manifestQueue.get(key) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(async () => {
      const dir = (await this.modelDir(key, true))!;
      const manifest = await this.readManifest(dir, key);
      change(manifest);
      const writable = await (await dir.getFileHandle(MANIFEST, { create: true })).createWritable();
      await writable.write(JSON.stringify(manifest));
      await writable.close();
    });
    this.manifestQueue.set(key, next);
    return next;
  }

  async file(key: string, path: string): Promise<CachedFile | null> {
    const dir = await this.modelDir(key, false);
    if (!dir) return null;
    return (await this.readManifest(dir, key)).files[path] ?? null;
  }

  async writer(key: string, path: string, init: WriterInit): Promise<CacheWriter> {
    void requestPersistentStorage(this.storage);
    const dir = (await this.modelDir(key, true))!;
    const existing = await this.file(key, path);
    checkWriterInit(existing, init, `${key}/${path}`);
    if (init.from === 0) await this.removeParts(dir, path);
    const meta: CachedFile = { path, size: init.size, done: init.from, etag: init.etag ?? existing?.etag ?? null, missing: false };
    await this.updateManifest(key, (m) => (m.files[path] = { ...meta }));

    const partBytes = this.partBytes;
    let position = init.from;
    let stream: FileSystemWritableFileStream | null = null;
    let streamPart = -1;
    const commit = async () => {
      if (stream) await stream.close();
      stream = null;
      const done = position;
      await this.updateManifest(key, (m) => (m.files[path] = { ...meta, done }));
    };
    const openPart = async (part: number, at: number) => {
      const handle = await dir.getFileHandle(partName(path, part), { create: true });
      stream = await handle.createWritable({ keepExistingData: at > 0 });
      if (at > 0) {
        await stream.truncate(at); // drop bytes a torn earlier write left past `done`
        await stream.seek(at);
      }
      streamPart = part;
    };
    return {
      get position() {
        return position;
      },
      async write(chunk: Uint8Array) {
        let offset = 0;
        while (offset < chunk.length) {
          const part = Math.floor(position / partBytes);
          if (stream && streamPart !== part) await commit();
          if (!stream) await openPart(part, position - part * partBytes);
          const take = Math.min(chunk.length - offset, (part + 1) * partBytes - position);
          // (lib.dom wants ArrayBuffer-backed views; a fetch body chunk is one, SharedArrayBuffer never reaches here)
          await stream!.write(chunk.subarray(offset, offset + take) as Uint8Array<ArrayBuffer>);
          offset += take;
          position += take;
        }
      },
      async close(complete = false) {
        if (complete) meta.size = position;
        await commit();
      },
    };
  }

  async markMissing(key: string, path: string): Promise<void> {
    const dir = (await this.modelDir(key, true))!;
    await this.removeParts(dir, path);
    await this.updateManifest(key, (m) => (m.files[path] = { path, size: null, done: 0, etag: null, missing: true }));
  }

  async read(key: string, path: string, offset: number, length: number): Promise<Uint8Array> {
    const dir = await this.modelDir(key, false);
    const meta = dir && (await this.readManifest(dir, key)).files[path];
    if (!dir || !meta || meta.missing) throw new Error(`${key}/${path}: not in the cache`);
    const end = Math.min(offset + length, meta.done);
    const out = new Uint8Array(Math.max(0, end - offset));
    for (let at = offset; at < end; ) {
      const part = Math.floor(at / this.partBytes);
      const partStart = part * this.partBytes;
      const to = Math.min(end, partStart + this.partBytes);
      const file = await (await dir.getFileHandle(partName(path, part))).getFile();
      const bytes = new Uint8Array(await file.slice(at - partStart, to - partStart).arrayBuffer());
      if (bytes.length !== to - at) throw new Error(`${key}/${path}: cache part ${part} is shorter than its manifest says`);
      out.set(bytes, at - offset);
      at = to;
    }
    return out;
  }

  async list(): Promise<CachedModel[]> {
    const out: CachedModel[] = [];
    for await (const handle of (await this.models() as IterableDirectory).values()) {
      if (handle.kind !== 'directory') continue;
      const key = decodeURIComponent(handle.name);
      const files = Object.values((await this.readManifest(handle as FileSystemDirectoryHandle, key)).files);
      out.push({ key, bytes: totalBytes(files), files });
    }
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  async delete(key: string): Promise<void> {
    await this.manifestQueue.get(key)?.catch(() => {});
    try {
      await (await this.models()).removeEntry(encodeURIComponent(key), { recursive: true });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  async checkSpace(bytes: number): Promise<string | null> {
    return (await checkStorageQuota(bytes, 'the download', this.storage)).message;
  }

  private async removeParts(dir: FileSystemDirectoryHandle, path: string): Promise<void> {
    const prefix = `${encodeURIComponent(path)}.`;
    const names: string[] = [];
    for await (const handle of (dir as IterableDirectory).values()) {
      if (handle.kind === 'file' && handle.name.startsWith(prefix) && /^\d+$/.test(handle.name.slice(prefix.length))) names.push(handle.name);
    }
    for (const name of names) await dir.removeEntry(name);
  }
}

/** The cache the studio uses: OPFS where the browser has it, else memory (its `name` says nothing is kept, for the
 *  UI to show). */
export function browserModelCache(): ModelCache {
  return OpfsModelCache.available() ? new OpfsModelCache() : new MemoryModelCache();
}

function partName(path: string, part: number): string {
  return `${encodeURIComponent(path)}.${part}`;
}

function isNotFound(e: unknown): boolean {
  return (e as { name?: string })?.name === 'NotFoundError';
}
