// ByteSource over a file on disk (Node), and a model folder on disk: what the CLI loads from.
// Reads go through one lazily opened file handle, positioned reads only: the file is never held in memory.

import { open, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { ByteSource } from '../safetensors.ts';
import type { ModelFiles } from '../checkpoint.ts';

export class NodeFileSource implements ByteSource {
  private handle: Promise<FileHandle> | null = null;

  constructor(
    /** The path, also the name used in error messages. */
    readonly name: string,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<NodeFileSource> {
    const info = await stat(path);
    if (!info.isFile()) throw new Error(`${path}: not a file`);
    return new NodeFileSource(path, info.size);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    this.handle ??= open(this.name, 'r');
    const handle = await this.handle;
    const out = new Uint8Array(Math.max(0, Math.min(length, this.size - offset)));
    let done = 0;
    while (done < out.length) {
      const { bytesRead } = await handle.read(out, done, out.length - done, offset + done);
      if (bytesRead === 0) break; // the file shrank under us: the caller reports the short read
      done += bytesRead;
    }
    return done === out.length ? out : out.subarray(0, done);
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    if (handle) await (await handle).close();
  }
}

/** The files of a model folder on disk, e.g. a Hugging Face snapshot directory. */
export function nodeFolder(dir: string): ModelFiles {
  return {
    name: dir,
    async open(path: string): Promise<ByteSource | null> {
      try {
        return await NodeFileSource.open(join(dir, path));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
  };
}
