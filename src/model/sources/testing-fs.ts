// In-memory stand-ins for the browser's File System Access handles (OPFS, showDirectoryPicker) and the older
// drag-and-drop entries (webkitGetAsEntry), for tests in Node. They keep the behaviours the sources rely on:
// NotFoundError / TypeMismatchError DOMExceptions, writable streams that reach the file only on close(), and
// readEntries handing out a directory in batches until it returns an empty batch.

type Node = FakeFileHandle | FakeDirectoryHandle;

function notFound(name: string): DOMException {
  return new DOMException(`${name} not found`, 'NotFoundError');
}

export class FakeFileHandle {
  readonly kind = 'file' as const;
  /** Committed content. */
  bytes: Uint8Array;
  /** createWritable calls so far, and those that copied the existing bytes (tests check parts are not rewritten). */
  opens = 0;
  keptOpens = 0;

  constructor(
    readonly name: string,
    content: Uint8Array | string = new Uint8Array(0),
  ) {
    this.bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
  }

  async getFile(): Promise<File> {
    return new File([this.bytes as Uint8Array<ArrayBuffer>], this.name);
  }

  async createWritable(options: { keepExistingData?: boolean } = {}): Promise<FakeWritable> {
    this.opens++;
    if (options.keepExistingData) this.keptOpens++;
    return new FakeWritable(this, options.keepExistingData ? this.bytes.slice() : new Uint8Array(0));
  }
}

/** Writes go to a swap copy that replaces the file on close(), as in browsers. */
export class FakeWritable {
  private position = 0;
  private closed = false;

  constructor(
    private readonly target: FakeFileHandle,
    private swap: Uint8Array,
  ) {}

  async write(data: Uint8Array | string): Promise<void> {
    if (this.closed) throw new TypeError('stream is closed');
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    const end = this.position + bytes.length;
    if (end > this.swap.length) {
      const grown = new Uint8Array(end);
      grown.set(this.swap);
      this.swap = grown;
    }
    this.swap.set(bytes, this.position);
    this.position = end;
  }

  async seek(position: number): Promise<void> {
    this.position = position;
  }

  async truncate(size: number): Promise<void> {
    const next = new Uint8Array(size);
    next.set(this.swap.subarray(0, Math.min(size, this.swap.length)));
    this.swap = next;
    this.position = Math.min(this.position, size);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.target.bytes = this.swap;
  }

  /** A stream dropped without close() (a killed tab): its bytes never reach the file. */
  async abort(): Promise<void> {
    this.closed = true;
  }
}

export class FakeDirectoryHandle {
  readonly kind = 'directory' as const;
  readonly children = new Map<string, Node>();

  constructor(readonly name: string) {}

  /** Builds a tree from "a/b.txt" → content. */
  static from(name: string, files: Record<string, Uint8Array | string>): FakeDirectoryHandle {
    const root = new FakeDirectoryHandle(name);
    for (const [path, content] of Object.entries(files)) {
      const parts = path.split('/');
      let dir = root;
      for (const part of parts.slice(0, -1)) {
        let next = dir.children.get(part);
        if (!next) dir.children.set(part, (next = new FakeDirectoryHandle(part)));
        dir = next as FakeDirectoryHandle;
      }
      dir.children.set(parts[parts.length - 1], new FakeFileHandle(parts[parts.length - 1], content));
    }
    return root;
  }

  async getDirectoryHandle(name: string, options: { create?: boolean } = {}): Promise<FakeDirectoryHandle> {
    const child = this.children.get(name);
    if (child?.kind === 'directory') return child;
    if (child) throw new DOMException(`${name} is a file`, 'TypeMismatchError');
    if (!options.create) throw notFound(name);
    const dir = new FakeDirectoryHandle(name);
    this.children.set(name, dir);
    return dir;
  }

  async getFileHandle(name: string, options: { create?: boolean } = {}): Promise<FakeFileHandle> {
    const child = this.children.get(name);
    if (child?.kind === 'file') return child;
    if (child) throw new DOMException(`${name} is a directory`, 'TypeMismatchError');
    if (!options.create) throw notFound(name);
    const file = new FakeFileHandle(name);
    this.children.set(name, file);
    return file;
  }

  async removeEntry(name: string, options: { recursive?: boolean } = {}): Promise<void> {
    const child = this.children.get(name);
    if (!child) throw notFound(name);
    if (child.kind === 'directory' && child.children.size > 0 && !options.recursive) {
      throw new DOMException(`${name} is not empty`, 'InvalidModificationError');
    }
    this.children.delete(name);
  }

  async *values(): AsyncGenerator<Node> {
    yield* [...this.children.values()];
  }

  async *entries(): AsyncGenerator<[string, Node]> {
    yield* [...this.children.entries()];
  }

  /** The File System Access handle type, for code typed against lib.dom. */
  asHandle(): FileSystemDirectoryHandle {
    return this as unknown as FileSystemDirectoryHandle;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Drag and drop: FileSystemEntry (webkitGetAsEntry)

/** FileSystemDirectoryEntry over a FakeDirectoryHandle tree; readEntries gives at most `batch` entries a call. */
export function fakeEntry(node: Node, fullPath = `/${node.name}`, batch = 2): FileSystemEntry {
  if (node.kind === 'file') {
    const entry = {
      isFile: true,
      isDirectory: false,
      name: node.name,
      fullPath,
      file(success: (file: File) => void, failure?: (error: DOMException) => void) {
        node.getFile().then(success, failure);
      },
    };
    return entry as unknown as FileSystemFileEntry;
  }
  const entry = {
    isFile: false,
    isDirectory: true,
    name: node.name,
    fullPath,
    createReader() {
      const children = [...node.children.values()];
      let next = 0;
      return {
        readEntries(success: (entries: FileSystemEntry[]) => void) {
          const slice = children.slice(next, next + batch);
          next += slice.length;
          setTimeout(() => success(slice.map((child) => fakeEntry(child, `${fullPath}/${child.name}`, batch))), 0);
        },
      };
    },
  };
  return entry as unknown as FileSystemDirectoryEntry;
}

/** A DataTransfer holding dropped items (each a file or folder). */
export function fakeDataTransfer(nodes: Node[]): DataTransfer {
  const items = nodes.map((node) => ({
    kind: 'file',
    webkitGetAsEntry: () => fakeEntry(node),
    getAsFile: () => null,
  }));
  const list = Object.assign(items, { length: items.length });
  return { items: list, files: [] } as unknown as DataTransfer;
}

/** The FileList an <input webkitdirectory> gives: Files with webkitRelativePath "top/…". */
export function fakeFileList(top: string, files: Record<string, Uint8Array | string>): FileList {
  const list = Object.entries(files).map(([path, content]) => {
    const file = new File([content as Uint8Array<ArrayBuffer> | string], path.split('/').pop()!);
    Object.defineProperty(file, 'webkitRelativePath', { value: `${top}/${path}` });
    return file;
  });
  return Object.assign(list, { item: (i: number) => list[i] ?? null }) as unknown as FileList;
}
