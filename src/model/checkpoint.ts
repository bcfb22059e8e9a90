// A model's weights: one model.safetensors, or shards listed by model.safetensors.index.json. Gives one name →
// (file, tensor) lookup over all of them, validated up front: every shard the index names exists, every mapped tensor
// is in its shard, no tensor is in two shards.

import {
  SafetensorsError,
  SafetensorsFile,
  type ByteSource,
  type StorageArray,
  type StorageDtype,
  type TensorChunk,
  type TensorInfo,
} from './safetensors.ts';

/** The files of a model folder, wherever it lives (disk, a picked browser folder, the Hub, memory). */
export interface ModelFiles {
  /** Shown in error messages: a folder path or a repo id. */
  readonly name: string;
  /** The file at `path` inside the folder, or null if there is none. */
  open(path: string): Promise<ByteSource | null>;
}

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/** The whole content of a small file (config.json, an index) as text. */
export async function readText(source: ByteSource): Promise<string> {
  const bytes = await source.read(0, source.size);
  if (bytes.length !== source.size) throw new SafetensorsError(source.name, null, `short read: got ${bytes.length} of ${source.size} bytes`);
  return new TextDecoder().decode(bytes);
}

/** A JSON file of the folder, parsed, or null when absent. Parse errors name the file. */
export async function readJsonFile(files: ModelFiles, path: string): Promise<unknown | null> {
  const source = await files.open(path);
  if (!source) return null;
  try {
    const text = await readText(source);
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new SafetensorsError(source.name, null, `not valid JSON (${(e as Error).message})`);
    }
  } finally {
    await source.close?.();
  }
}

export class Checkpoint {
  private constructor(
    /** The safetensors files, in index order (one for a single-file checkpoint). */
    readonly files: SafetensorsFile[],
    private readonly byName: Map<string, SafetensorsFile>,
  ) {}

  /** Opens model.safetensors if present, else the shards of model.safetensors.index.json. */
  static async open(folder: ModelFiles): Promise<Checkpoint> {
    const single = await folder.open(SINGLE_FILE);
    if (single) {
      const file = await SafetensorsFile.open(single);
      return new Checkpoint([file], new Map(file.names().map((n) => [n, file])));
    }
    const indexSource = await folder.open(INDEX_FILE);
    if (!indexSource) throw new SafetensorsError(folder.name, null, `no ${SINGLE_FILE} or ${INDEX_FILE} in the folder`);
    const { files, byName } = await openShards(folder, indexSource);
    return new Checkpoint(files, byName);
  }

  /** Opens single safetensors files directly (tests, adapters). */
  static async fromFiles(files: SafetensorsFile[]): Promise<Checkpoint> {
    return new Checkpoint(files, indexTensors(files));
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The file holding `name`. */
  fileOf(name: string): SafetensorsFile {
    const file = this.byName.get(name);
    if (!file) throw new SafetensorsError(this.files.map((f) => f.name).join(', '), name, 'no such tensor in the checkpoint');
    return file;
  }

  info(name: string): TensorInfo {
    return this.fileOf(name).info(name);
  }

  readTensor<D extends StorageDtype>(name: string, storage: D): Promise<StorageArray<D>> {
    return this.fileOf(name).readTensor(name, storage);
  }

  readRaw(name: string): Promise<Uint8Array> {
    return this.fileOf(name).readRaw(name);
  }

  streamTensor<D extends StorageDtype>(name: string, storage: D, maxChunkBytes?: number): AsyncGenerator<TensorChunk<D>> {
    return this.fileOf(name).streamTensor(name, storage, maxChunkBytes);
  }

  /** Total bytes of tensor data (for progress reporting). */
  totalBytes(): number {
    let sum = 0;
    for (const name of this.byName.keys()) {
      const info = this.info(name);
      sum += info.end - info.begin;
    }
    return sum;
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

/** name → file over several files; a name in two files is an error naming both. */
function indexTensors(files: SafetensorsFile[]): Map<string, SafetensorsFile> {
  const byName = new Map<string, SafetensorsFile>();
  for (const file of files) {
    for (const name of file.names()) {
      const other = byName.get(name);
      if (other) throw new SafetensorsError(file.name, name, `also in shard ${other.name}: a tensor must be in exactly one shard`);
      byName.set(name, file);
    }
  }
  return byName;
}

async function openShards(folder: ModelFiles, indexSource: ByteSource): Promise<{ files: SafetensorsFile[]; byName: Map<string, SafetensorsFile> }> {
  const indexName = indexSource.name;
  const fail = (tensor: string | null, detail: string): never => {
    throw new SafetensorsError(indexName, tensor, detail);
  };
  let index: unknown;
  try {
    index = JSON.parse(await readText(indexSource));
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    return fail(null, `not valid JSON (${(e as Error).message})`);
  } finally {
    await indexSource.close?.();
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) return fail(null, '"weight_map" must be an object of tensor name → shard file');
  const mapped = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '') fail(tensor, `shard must be a file name, got ${JSON.stringify(shard)}`);
    const path = shard as string;
    // A hostile index must not reach outside the folder (a Hub or disk path).
    if (path.startsWith('/') || path.split(/[\\/]/).includes('..')) fail(tensor, `shard path "${path}" leaves the model folder`);
    mapped.set(tensor, path);
  }
  if (mapped.size === 0) fail(null, '"weight_map" is empty');

  const shardPaths = [...new Set(mapped.values())];
  const files: SafetensorsFile[] = [];
  for (const path of shardPaths) {
    const source = await folder.open(path);
    if (!source) {
      const tensor = [...mapped].find(([, p]) => p === path)![0];
      await Promise.all(files.map((f) => f.close()));
      return fail(tensor, `is mapped to shard "${path}", which is not in ${folder.name}`);
    }
    files.push(await SafetensorsFile.open(source));
  }
  const byName = indexTensors(files);
  for (const [tensor, path] of mapped) {
    const holder = byName.get(tensor);
    if (!holder) fail(tensor, `is mapped to shard "${path}", which has no such tensor`);
    if (holder !== files[shardPaths.indexOf(path)]) fail(tensor, `is mapped to shard "${path}" but is in ${holder!.name}`);
  }
  for (const [tensor, file] of byName) {
    if (!mapped.has(tensor)) throw new SafetensorsError(file.name, tensor, `is not listed in ${indexName}`);
  }
  return { files, byName };
}
