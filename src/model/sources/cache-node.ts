// ModelCache in a folder on disk (Node: the CLI, tests). Layout:  <root>/<encoded key>/manifest.json
//                                                                  <root>/<encoded key>/<encoded path>
// Each file is written in place with positioned writes; the manifest (replaced atomically by a rename) records
// `done` only after the bytes it counts were written, every `manifestEveryBytes` and at close, so a killed process
// resumes from at most that far back.

import { mkdir, open, readFile, readdir, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { checkWriterInit, totalBytes, type CacheWriter, type CachedFile, type CachedModel, type ModelCache, type WriterInit } from './cache.ts';

const MANIFEST = 'manifest.json';

interface Manifest {
  key: string;
  files: Record<string, CachedFile>;
}

/** $LORA_STUDIO_CACHE, else ~/.cache/lora-studio/models. */
export function defaultNodeCacheDir(): string {
  return process.env.LORA_STUDIO_CACHE || join(homedir(), '.cache', 'lora-studio', 'models');
}

export class NodeModelCache implements ModelCache {
  readonly name: string;
  private readonly manifestQueue = new Map<string, Promise<unknown>>();

  constructor(
    readonly root: string = defaultNodeCacheDir(),
    private readonly manifestEveryBytes = 16 * 1024 * 1024,
  ) {
    this.name = root;
  }

  private dir(key: string): string {
    return join(this.root, encodeURIComponent(key));
  }

  private async readManifest(key: string): Promise<Manifest> {
    try {
      const manifest = JSON.parse(await readFile(join(this.dir(key), MANIFEST), 'utf8')) as Manifest;
      if (manifest && typeof manifest.files === 'object') return manifest;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && !(e instanceof SyntaxError)) throw e;
    }
    return { key, files: {} };
  }

  private updateManifest(key: string, change: (manifest: Manifest) => void): Promise<void> {
    const next = (this.manifestQueue.get(key) ?? Promise.resolve()).catch(() => {}).then(async () => {
      const dir = this.dir(key);
      await mkdir(dir, { recursive: true });
      const manifest = await this.readManifest(key);
      change(manifest);
      const temp = join(dir, `${MANIFEST}.${process.pid}.tmp`);
      await writeFile(temp, JSON.stringify(manifest, null, 1));
      await rename(temp, join(dir, MANIFEST));
    });
    this.manifestQueue.set(key, next);
    return next;
  }

  async file(key: string, path: string): Promise<CachedFile | null> {
    return (await this.readManifest(key)).files[path] ?? null;
  }

  async writer(key: string, path: string, init: WriterInit): Promise<CacheWriter> {
    const existing = await this.file(key, path);
    checkWriterInit(existing, init, `${key}/${path}`);
    const meta: CachedFile = { path, size: init.size, done: init.from, etag: init.etag ?? existing?.etag ?? null, missing: false };
    await this.updateManifest(key, (m) => (m.files[path] = { ...meta }));
    const handle: FileHandle = await open(join(this.dir(key), encodeURIComponent(path)), init.from === 0 ? 'w' : 'r+');
    await handle.truncate(init.from); // bytes past `done` are from a write the manifest never counted
    let position = init.from;
    let recorded = init.from;
    const record = async () => {
      const done = position;
      await this.updateManifest(key, (m) => (m.files[path] = { ...meta, done }));
      recorded = done;
    };
    return {
      get position() {
        return position;
      },
      write: async (chunk: Uint8Array) => {
        let written = 0;
        while (written < chunk.length) {
          const { bytesWritten } = await handle.write(chunk, written, chunk.length - written, position);
          written += bytesWritten;
          position += bytesWritten;
        }
        if (position - recorded >= this.manifestEveryBytes) await record();
      },
      close: async (complete = false) => {
        await handle.close();
        if (complete) meta.size = position;
        await record();
      },
    };
  }

  async markMissing(key: string, path: string): Promise<void> {
    await rm(join(this.dir(key), encodeURIComponent(path)), { force: true });
    await this.updateManifest(key, (m) => (m.files[path] = { path, size: null, done: 0, etag: null, missing: true }));
  }

  async read(key: string, path: string, offset: number, length: number): Promise<Uint8Array> {
    const meta = await this.file(key, path);
    if (!meta || meta.missing) throw new Error(`${key}/${path}: not in the cache`);
    const out = new Uint8Array(Math.max(0, Math.min(offset + length, meta.done) - offset));
    const handle = await open(join(this.dir(key), encodeURIComponent(path)), 'r');
    try {
      let done = 0;
      while (done < out.length) {
        const { bytesRead } = await handle.read(out, done, out.length - done, offset + done);
        if (bytesRead === 0) throw new Error(`${key}/${path}: cached file is shorter than its manifest says`);
        done += bytesRead;
      }
    } finally {
      await handle.close();
    }
    return out;
  }

  async list(): Promise<CachedModel[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: CachedModel[] = [];
    for (const name of names.sort()) {
      const key = decodeURIComponent(name);
      const files = Object.values((await this.readManifest(key)).files);
      out.push({ key, bytes: totalBytes(files), files });
    }
    return out;
  }

  async delete(key: string): Promise<void> {
    await this.manifestQueue.get(key)?.catch(() => {});
    await rm(this.dir(key), { recursive: true, force: true });
  }
}
