// ByteSource over bytes already in memory: tests, and small files fetched whole (config.json, an index).

import type { ByteSource } from '../safetensors.ts';
import type { ModelFiles } from '../checkpoint.ts';

export class MemorySource implements ByteSource {
  /** Bytes handed out so far: lets tests check that loading streams instead of reading everything. */
  bytesRead = 0;

  constructor(
    readonly name: string,
    private readonly bytes: Uint8Array,
  ) {}

  get size(): number {
    return this.bytes.length;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = this.bytes.slice(offset, Math.min(offset + length, this.bytes.length));
    this.bytesRead += out.length;
    return out;
  }
}

/** A folder whose files are byte arrays keyed by path. */
export function memoryFolder(files: Record<string, Uint8Array | string>, name = 'memory'): ModelFiles {
  return {
    name,
    async open(path: string): Promise<ByteSource | null> {
      const content = files[path];
      if (content === undefined) return null;
      return new MemorySource(`${name}/${path}`, typeof content === 'string' ? new TextEncoder().encode(content) : content);
    },
  };
}
