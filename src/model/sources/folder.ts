// A model folder on the user's disk, in the browser, as ModelFiles. Three ways in:
//   - showDirectoryPicker() → FileSystemDirectoryHandle           (Chromium): directoryHandleFolder, pickFolder
//   - a folder dropped on the page → DataTransfer entries            (all browsers): droppedFolder
//   - <input type="file" webkitdirectory> → FileList                 (all browsers): fileListFolder
// Every file is read through Blob.slice (BlobSource), one range at a time, so a multi-GB checkpoint is never whole
// in JS memory.

import type { ByteSource } from '../safetensors.ts';
import type { ModelFiles } from '../checkpoint.ts';
import { BlobSource, blobFolder } from './blob.ts';

/** A folder behind a File System Access directory handle; subfolder paths ("onnx/x.bin") are walked. */
export function directoryHandleFolder(handle: FileSystemDirectoryHandle, name: string = handle.name): ModelFiles {
  return {
    name,
    async open(path: string): Promise<ByteSource | null> {
      const parts = path.split('/');
      if (parts.some((part) => part === '' || part === '.' || part === '..')) return null;
      try {
        let dir = handle;
        for (const part of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(part);
        const file = await (await dir.getFileHandle(parts[parts.length - 1])).getFile();
        return new BlobSource(file, `${name}/${path}`);
      } catch (e) {
        // NotFoundError: no such file; TypeMismatchError: a folder where a file was asked for (or the reverse).
        const kind = (e as { name?: string })?.name;
        if (kind === 'NotFoundError' || kind === 'TypeMismatchError') return null;
        throw e;
      }
    },
  };
}

/** Asks the user for a folder (Chromium's File System Access API). Throws a clear error where it is missing; a
 *  cancelled picker rejects with the browser's AbortError. */
export async function pickFolder(): Promise<ModelFiles> {
  const picker = (globalThis as { showDirectoryPicker?: (options?: { id?: string; mode?: 'read' }) => Promise<FileSystemDirectoryHandle> }).showDirectoryPicker;
  if (!picker) throw new Error('this browser cannot open folders with a picker: drop the model folder on the page, or use the folder upload button');
  return directoryHandleFolder(await picker({ id: 'model-folder', mode: 'read' }));
}

/** The folder an <input webkitdirectory> gave: paths are webkitRelativePath without the picked folder's own name. */
export function fileListFolder(files: FileList | Iterable<File>): ModelFiles {
  const list = Array.from(files as Iterable<File>);
  const top = list.find((f) => f.webkitRelativePath)?.webkitRelativePath.split('/')[0];
  return blobFolder(list, top || 'selected folder');
}

/** Files keyed by their path inside the folder. */
function mapFolder(files: Map<string, File>, name: string): ModelFiles {
  return {
    name,
    async open(path: string): Promise<ByteSource | null> {
      const file = files.get(path);
      return file ? new BlobSource(file, `${name}/${path}`) : null;
    },
  };
}

/**
 * What was dropped on the page: one folder → that folder; otherwise the dropped files (and folders, by name) as one
 * folder. Call it from the drop handler itself: the items are only readable during the event, so the entries are
 * taken synchronously, before the first await.
 */
export function droppedFolder(transfer: DataTransfer): Promise<ModelFiles> {
  const entries: FileSystemEntry[] = [];
  for (let i = 0; i < transfer.items.length; i++) {
    const entry = transfer.items[i].webkitGetAsEntry?.();
    if (entry) entries.push(entry);
  }
  const plainFiles = Array.from(transfer.files ?? []);
  return (async () => {
    if (entries.length === 0) {
      if (plainFiles.length === 0) throw new Error('nothing usable was dropped: drop a model folder');
      return mapFolder(new Map(plainFiles.map((f) => [f.name, f])), 'dropped files');
    }
    const files = new Map<string, File>();
    if (entries.length === 1 && entries[0].isDirectory) {
      await collect(entries[0] as FileSystemDirectoryEntry, '', files);
      return mapFolder(files, entries[0].name);
    }
    for (const entry of entries) {
      if (entry.isDirectory) await collect(entry as FileSystemDirectoryEntry, `${entry.name}/`, files);
      else files.set(entry.name, await fileOf(entry as FileSystemFileEntry));
    }
    return mapFolder(files, 'dropped files');
  })();
}

/** Every file under `dir`, keyed by `prefix` + its path below `dir`. Only File objects (handles) are gathered. */
async function collect(dir: FileSystemDirectoryEntry, prefix: string, into: Map<string, File>): Promise<void> {
  for (const entry of await readAllEntries(dir)) {
    if (entry.isDirectory) await collect(entry as FileSystemDirectoryEntry, `${prefix}${entry.name}/`, into);
    else if (entry.isFile) into.set(`${prefix}${entry.name}`, await fileOf(entry as FileSystemFileEntry));
  }
}

/** readEntries hands a directory out in batches (100 in Chromium) and an empty batch at the end. */
async function readAllEntries(dir: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = dir.createReader();
  const all: FileSystemEntry[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return all;
    all.push(...batch);
  }
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}
