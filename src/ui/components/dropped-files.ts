// The files of a drop, for sources that take File[] (the engine protocol's local folder). One dropped folder gives
// its files with paths relative to it (a model folder keeps shards at its top, and tokenizer files beside them);
// loose files are taken as they are. Call from the drop handler: DataTransfer items are readable only during it.

export interface DroppedFile {
  /** The path inside the dropped folder ("config.json"), or the file's name. */
  path: string;
  file: File;
}

export function droppedFiles(transfer: DataTransfer): Promise<DroppedFile[]> {
  const entries: FileSystemEntry[] = [];
  for (let i = 0; i < transfer.items.length; i++) {
    const entry = transfer.items[i].webkitGetAsEntry?.();
    if (entry) entries.push(entry);
  }
  const loose = Array.from(transfer.files ?? []);
  return (async () => {
    if (entries.length === 0) return loose.map((file) => ({ path: file.name, file }));
    const out: DroppedFile[] = [];
    const root = entries.length === 1 && entries[0].isDirectory ? (entries[0] as FileSystemDirectoryEntry) : null;
    if (root) await collect(root, '', out);
    else for (const e of entries) if (e.isFile) out.push({ path: e.name, file: await fileOf(e as FileSystemFileEntry) });
    return out;
  })();
}

async function collect(dir: FileSystemDirectoryEntry, prefix: string, into: DroppedFile[]): Promise<void> {
  const reader = dir.createReader();
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (batch.length === 0) return;
    for (const entry of batch) {
      if (entry.isDirectory) await collect(entry as FileSystemDirectoryEntry, `${prefix}${entry.name}/`, into);
      else if (entry.isFile) into.push({ path: `${prefix}${entry.name}`, file: await fileOf(entry as FileSystemFileEntry) });
    }
  }
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}
