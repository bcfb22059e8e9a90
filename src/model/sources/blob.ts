// ByteSource over a browser File or Blob (a picked or dropped local folder): Blob.slice reads only the bytes asked
// for, so a 1 GB checkpoint is never held in JS memory.

import type { ByteSource } from '../safetensors.ts';
import type { ModelFiles } from '../checkpoint.ts';

export class BlobSource implements ByteSource {
  constructor(
    private readonly blob: Blob,
    readonly name: string,
  ) {}

  get size(): number {
    return this.blob.size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    return new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
  }
}

/** A picked or dropped folder. Files are keyed by their path inside the folder (webkitRelativePath without its first
 *  component, else the bare name), so "my-model/model.safetensors" and "model.safetensors" both open as the latter. */
export function blobFolder(files: Iterable<File>, name = 'selected folder'): ModelFiles {
  const byPath = new Map<string, File>();
  for (const file of files) {
    const relative = file.webkitRelativePath ? file.webkitRelativePath.split('/').slice(1).join('/') : '';
    byPath.set(relative || file.name, file);
  }
  return {
    name,
    async open(path: string): Promise<ByteSource | null> {
      const file = byPath.get(path);
      return file ? new BlobSource(file, `${name}/${path}`) : null;
    },
  };
}
