// safetensors: a streaming reader over any byte source, with strict header validation, and a writer.
//
// File layout (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length N, N bytes of JSON
// header, then the data section. The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]}
// (offsets relative to the data section) plus an optional "__metadata__" string→string map.
//
// The reader never holds the file: it reads the header, then one tensor (or one chunk of a tensor) at a time, so a
// 1 GB checkpoint loads in a browser tab. Every error is a SafetensorsError that names the file and, where there is
// one, the tensor.

import { bf16ArrayToF16, bf16ArrayToF32, f16ArrayToF32, f32ArrayToF16 } from '../gpu/half.ts';

/** Random-access bytes: a file on disk, a browser File/Blob, an HTTP resource. */
export interface ByteSource {
  /** Shown in error messages: a path or file name. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Exactly `length` bytes starting at `offset` (a short result is reported as a truncated file). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Releases an underlying handle, if any. */
  close?(): Promise<void>;
}

/** The checkpoint dtypes this engine loads. Others (I64, BOOL, F8_*, …) are rejected with a message. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
export const SUPPORTED_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16'];
const ITEM_SIZE: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** The engine's storage dtypes: f32 as Float32Array, f16 as Uint16Array of IEEE half bits. */
export type StorageDtype = 'f32' | 'f16';
export type StorageArray<D extends StorageDtype> = D extends 'f32' ? Float32Array : Uint16Array;

/** The safetensors library refuses headers above 100 MB; so do we (a hostile length must not become an allocation). */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    readonly tensor: string | null,
    readonly detail: string,
  ) {
    super(tensor === null ? `${file}: ${detail}` : `${file}: tensor "${tensor}": ${detail}`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Number of elements (1 for a scalar). */
  numel: number;
  /** Absolute byte range in the file: [begin, end). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Tensors in header order. */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string> | null;
  /** Absolute offset of the data section (8 + header length). */
  dataStart: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Header

/** Reads and validates the header of `source`. */
export async function readSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const file = source.name;
  if (source.size < 8) throw new SafetensorsError(file, null, `file is ${source.size} bytes, too short for the 8-byte header length`);
  const lengthBytes = await readExactly(source, 0, 8, null);
  const declared = new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true);
  if (declared > BigInt(source.size - 8)) {
    throw new SafetensorsError(file, null, `header length ${declared} is beyond the end of the file (${source.size - 8} bytes follow the length; truncated or not a safetensors file)`);
  }
  const headerLength = Number(declared);
  if (headerLength > MAX_HEADER_BYTES) throw new SafetensorsError(file, null, `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerBytes = await readExactly(source, 8, headerLength, null);
  return parseSafetensorsHeader(file, source.size, headerBytes);
}

/** Validates a header given its JSON bytes and the file size. Exported for tests of the validation alone. */
export function parseSafetensorsHeader(file: string, fileSize: number, headerBytes: Uint8Array): SafetensorsHeader {
  const dataStart = 8 + headerBytes.length;
  const dataSize = fileSize - dataStart;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, null, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(file, null, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new SafetensorsError(file, null, 'header is not a JSON object');
  // JSON.parse keeps the last of duplicate keys silently: find them in the text.
  const keys = topLevelKeys(text);
  const seen = new Set<string>();
  for (const key of keys) {
    if (seen.has(key)) throw new SafetensorsError(file, key, 'appears twice in the header');
    seen.add(key);
  }

  const entries = json as Record<string, unknown>;
  let metadata: Record<string, string> | null = null;
  const tensors = new Map<string, TensorInfo>();
  for (const name of keys) {
    const entry = entries[name];
    if (name === '__metadata__') {
      metadata = parseMetadata(file, entry);
      continue;
    }
    tensors.set(name, parseTensorEntry(file, name, entry, dataStart, dataSize));
  }
  checkNoOverlap(file, [...tensors.values()]);
  return { tensors, metadata, dataStart };
}

function parseMetadata(file: string, entry: unknown): Record<string, string> | null {
  if (entry === null) return null;
  if (typeof entry !== 'object' || Array.isArray(entry)) throw new SafetensorsError(file, null, '__metadata__ must be an object of strings');
  for (const [k, v] of Object.entries(entry as object)) {
    if (typeof v !== 'string') throw new SafetensorsError(file, null, `__metadata__ "${k}" must be a string, got ${JSON.stringify(v)}`);
  }
  return { ...(entry as Record<string, string>) };
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function parseTensorEntry(file: string, name: string, entry: unknown, dataStart: number, dataSize: number): TensorInfo {
  const fail = (detail: string): never => {
    throw new SafetensorsError(file, name, detail);
  };
  if (name === '') fail('empty tensor name');
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return fail('entry is not an object');
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string') return fail('missing "dtype"');
  if (!(SUPPORTED_DTYPES as readonly string[]).includes(dtype)) {
    return fail(`dtype ${dtype} is not supported (supported: ${SUPPORTED_DTYPES.join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) return fail(`"shape" must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    return fail(`"data_offsets" must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(`data_offsets [${begin}, ${end}] has begin after end`);
  if (end > dataSize) fail(`data_offsets [${begin}, ${end}] go past the end of the data section (${dataSize} bytes; file truncated?)`);
  const numel = (shape as number[]).reduce((a, b) => a * b, 1);
  const bytes = numel * ITEM_SIZE[dtype as SafetensorsDtype];
  if (!Number.isSafeInteger(bytes)) fail(`shape ${JSON.stringify(shape)} is too large`);
  if (bytes !== end - begin) {
    fail(`${dtype} × shape [${(shape as number[]).join(', ')}] is ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: [...(shape as number[])], numel, begin: dataStart + begin, end: dataStart + end };
}

function checkNoOverlap(file: string, infos: TensorInfo[]): void {
  const ranges = infos.filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1];
    const cur = ranges[i];
    if (cur.begin < prev.end) throw new SafetensorsError(file, cur.name, `data overlaps tensor "${prev.name}"`);
  }
}

/** The keys of the top-level object of a valid JSON text, in order, duplicates included. */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (k < text.length && /\s/.test(text[k])) k++;
        if (text[k] === ':') keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      }
      i = j;
    }
  }
  return keys;
}

async function readExactly(source: ByteSource, offset: number, length: number, tensor: string | null): Promise<Uint8Array> {
  const bytes = await source.read(offset, length);
  if (bytes.length !== length) {
    throw new SafetensorsError(source.name, tensor, `short read: wanted ${length} bytes at offset ${offset}, got ${bytes.length} (file truncated?)`);
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------------------------
// Conversion

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Raw little-endian tensor bytes → the storage dtype. Returns a view of `raw` when no conversion is needed. */
export function convertTensorBytes<D extends StorageDtype>(raw: Uint8Array, dtype: SafetensorsDtype, storage: D): StorageArray<D> {
  if (!LITTLE_ENDIAN) throw new Error('safetensors data is little-endian; big-endian hosts are not supported');
  const itemSize = ITEM_SIZE[dtype];
  // Typed-array views need aligned offsets; reads from a source are usually fresh buffers, so this rarely copies.
  const aligned = raw.byteOffset % itemSize === 0 ? raw : raw.slice();
  const n = aligned.length / itemSize;
  let out: Float32Array | Uint16Array;
  if (dtype === 'F32') {
    const src = new Float32Array(aligned.buffer, aligned.byteOffset, n);
    out = storage === 'f32' ? src : f32ArrayToF16(src);
  } else {
    const src = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
    if (dtype === 'F16') out = storage === 'f16' ? src : f16ArrayToF32(src);
    else out = storage === 'f16' ? bf16ArrayToF16(src) : bf16ArrayToF32(src);
  }
  return out as StorageArray<D>;
}

// ---------------------------------------------------------------------------------------------------------------
// Reader

export interface TensorChunk<D extends StorageDtype> {
  /** Index of the chunk's first element within the tensor. */
  elementOffset: number;
  data: StorageArray<D>;
  /** Bytes read from the source for this chunk (its checkpoint dtype): for progress in bytes. */
  sourceBytes: number;
}

/** One open safetensors file: the validated header, and tensors read on demand. */
export class SafetensorsFile {
  private constructor(
    readonly source: ByteSource,
    readonly header: SafetensorsHeader,
  ) {}

  static async open(source: ByteSource): Promise<SafetensorsFile> {
    return new SafetensorsFile(source, await readSafetensorsHeader(source));
  }

  get name(): string {
    return this.source.name;
  }

  get metadata(): Record<string, string> | null {
    return this.header.metadata;
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new SafetensorsError(this.name, name, 'no such tensor in this file');
    return info;
  }

  /** The tensor's stored bytes (little-endian, its checkpoint dtype). */
  async readRaw(name: string): Promise<Uint8Array> {
    const info = this.info(name);
    return readExactly(this.source, info.begin, info.end - info.begin, name);
  }

  /** The whole tensor converted to the storage dtype. For very large tensors prefer `streamTensor`. */
  async readTensor<D extends StorageDtype>(name: string, storage: D): Promise<StorageArray<D>> {
    const info = this.info(name);
    return convertTensorBytes(await this.readRaw(name), info.dtype, storage);
  }

  /** The tensor in chunks of at most `maxChunkBytes` stored bytes, converted, in order: peak memory is one chunk. */
  async *streamTensor<D extends StorageDtype>(name: string, storage: D, maxChunkBytes = 16 << 20): AsyncGenerator<TensorChunk<D>> {
    const info = this.info(name);
    const itemSize = ITEM_SIZE[info.dtype];
    const chunkElements = Math.max(1, Math.floor(maxChunkBytes / itemSize));
    for (let first = 0; first < info.numel; first += chunkElements) {
      const count = Math.min(chunkElements, info.numel - first);
      const raw = await readExactly(this.source, info.begin + first * itemSize, count * itemSize, name);
      yield { elementOffset: first, data: convertTensorBytes(raw, info.dtype, storage), sourceBytes: raw.length };
    }
  }

  async close(): Promise<void> {
    await this.source.close?.();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writer

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Float32Array for F32; Uint16Array of bits for F16/BF16; or the raw little-endian bytes. */
  data: Float32Array | Uint16Array | Uint8Array;
}

// The Rust library sorts tensors by dtype, larger alignment first (its Dtype enum order, reversed: F32, BF16, F16),
// then by name bytes; so do we, so that our files are byte-identical to safetensors.save_file's.
const DTYPE_RANK: Record<SafetensorsDtype, number> = { F32: 0, BF16: 1, F16: 2 };

/** Orders strings by their UTF-8 bytes, as the Rust library orders tensor names. */
export function compareUtf8(a: string, b: string): number {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) if (ea[i] !== eb[i]) return ea[i] - eb[i];
  return ea.length - eb.length;
}

/**
 * Serialises tensors as the safetensors library does: compact JSON header ("__metadata__" first, in the given key
 * order), tensors sorted by dtype then name, header padded with spaces to a multiple of 8 bytes.
 */
export function writeSafetensors(tensors: Record<string, TensorToWrite> | Map<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const file = 'safetensors writer';
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const raws: Uint8Array[] = [];
  for (const [name, t] of entries) {
    if (name === '__metadata__' || name === '') throw new SafetensorsError(file, name, 'reserved or empty tensor name');
    if (!(SUPPORTED_DTYPES as readonly string[]).includes(t.dtype)) throw new SafetensorsError(file, name, `dtype ${t.dtype} is not supported (supported: ${SUPPORTED_DTYPES.join(', ')})`);
    if (!t.shape.every(isCount)) throw new SafetensorsError(file, name, `bad shape ${JSON.stringify(t.shape)}`);
    const expected = t.shape.reduce((a, b) => a * b, 1) * ITEM_SIZE[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new SafetensorsError(file, name, `${t.dtype} × shape [${t.shape.join(', ')}] is ${expected} bytes but the data has ${t.data.byteLength}`);
    }
    if (t.data instanceof Float32Array && t.dtype !== 'F32') throw new SafetensorsError(file, name, `Float32Array data given for dtype ${t.dtype}`);
    if (t.data instanceof Uint16Array && t.dtype === 'F32') throw new SafetensorsError(file, name, 'Uint16Array data given for dtype F32');
  }
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new SafetensorsError(file, null, `__metadata__ "${k}" must be a string`);
  }
  entries.sort(([na, a], [nb, b]) => DTYPE_RANK[a.dtype] - DTYPE_RANK[b.dtype] || compareUtf8(na, nb));

  const parts: string[] = [];
  if (metadata) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const [name, t] of entries) {
    const n = t.data.byteLength;
    parts.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + n}]}`);
    raws.push(new Uint8Array(t.data.buffer, t.data.byteOffset, n));
    offset += n;
  }
  let header = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(header.length / 8) * 8;
  if (padded !== header.length) {
    const withSpaces = new Uint8Array(padded).fill(0x20);
    withSpaces.set(header);
    header = withSpaces;
  }
  const out = new Uint8Array(8 + header.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  let at = 8 + header.length;
  for (const raw of raws) {
    out.set(raw, at);
    at += raw.length;
  }
  return out;
}
