// GGUF (version 3), the file format of llama.cpp, Ollama and LM Studio: a writer that streams, and a reader for tests.
//
// Layout (ggml/docs/gguf.md): "GGUF" magic, u32 version, u64 tensor count, u64 key/value count; the key/values
// (u64-length UTF-8 key, u32 value type, value); the tensor infos (name, u32 n_dims, u64 dims innermost first, u32
// ggml type, u64 offset into the data section); padding to `general.alignment` (32); then each tensor's data at its
// offset, each padded to the alignment. Everything little-endian. The header is computed from the tensors' shapes and
// types before any data is produced, so a model is written tensor by tensor with one tensor in memory at most.
//
// NOTE: ggml's dims are numpy's shape reversed: a torch weight [out, in] is a GGUF tensor with dims [in, out] and the
// same row-major bytes.

import { f16ArrayToF32, f32ArrayToF16, fromF16Bits } from '../gpu/half.ts';

/** GGUF metadata value types (gguf_type). */
export const GGUF_TYPE = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** The tensor types this writer produces (ggml_type values). */
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

/** llama_ftype: general.file_type, the type most tensors have. */
export const FILE_TYPE: Record<GgmlTypeName, number> = { F32: 0, F16: 1, Q8_0: 7 };

export const GGUF_ALIGNMENT = 32;
/** Q8_0: blocks of 32 values, each an f16 scale then 32 int8 (34 bytes). */
export const QK8_0 = 32;

export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'u64'; value: number }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'i32[]'; value: ArrayLike<number> }
  | { type: 'f32[]'; value: ArrayLike<number> };

export interface GgufKv {
  key: string;
  value: GgufValue;
}

/** A tensor to write: its data comes as f32 values in order (any chunking), converted to `type` by the writer. */
export interface GgufTensorSource {
  name: string;
  /** ggml order: innermost (row length) first. */
  dims: number[];
  type: GgmlTypeName;
  f32Chunks(): AsyncIterable<Float32Array>;
}

export class GgufError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'GgufError';
  }
}

export function tensorBytes(dims: readonly number[], type: GgmlTypeName): number {
  const n = dims.reduce((a, b) => a * b, 1);
  if (type === 'F32') return 4 * n;
  if (type === 'F16') return 2 * n;
  if (dims[0] % QK8_0 !== 0) throw new GgufError(`Q8_0 needs rows that are a multiple of ${QK8_0} values, not ${dims[0]}`);
  return (n / QK8_0) * (2 + QK8_0);
}

/** A GGUF file produced on demand: its exact size, and its bytes in order (each call starts again). */
export interface GgufFile {
  size: number;
  /** Offset of the data section (header + padding). */
  dataOffset: number;
  chunks(): AsyncGenerator<Uint8Array>;
}

/** Lays out a GGUF file; nothing is read from the tensors until `chunks()` is iterated. */
export function ggufFile(kvs: readonly GgufKv[], tensors: readonly GgufTensorSource[]): GgufFile {
  const seen = new Set<string>();
  for (const kv of kvs) {
    if (seen.has(kv.key)) throw new GgufError(`metadata key "${kv.key}" given twice`);
    seen.add(kv.key);
  }
  const names = new Set<string>();
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new GgufError(`tensor "${t.name}" given twice`);
    names.add(t.name);
    if (t.dims.length < 1 || t.dims.length > 4 || t.dims.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new GgufError(`tensor "${t.name}": dims [${t.dims.join(', ')}] are not 1 to 4 positive integers`);
    }
    offsets.push(offset);
    offset = align(offset + tensorBytes(t.dims, t.type));
  }
  const w = new ByteWriter();
  w.u32(0x46554747); // "GGUF"
  w.u32(3);
  w.u64(tensors.length);
  w.u64(kvs.length);
  for (const kv of kvs) {
    w.string(kv.key);
    writeValue(w, kv.value);
  }
  tensors.forEach((t, i) => {
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GGML_TYPE[t.type]);
    w.u64(offsets[i]);
  });
  const header = w.bytes(align(w.length));
  const dataBytes = offset;
  return {
    size: header.length + dataBytes,
    dataOffset: header.length,
    async *chunks() {
      yield header;
      for (const t of tensors) {
        const want = tensorBytes(t.dims, t.type);
        let wrote = 0;
        for await (const bytes of encodeTensor(t)) {
          wrote += bytes.length;
          if (wrote > want) throw new GgufError(`tensor "${t.name}": its source gave more than ${want / bytesPerValue(t.type)} values`);
          yield bytes;
        }
        if (wrote !== want) throw new GgufError(`tensor "${t.name}": its source gave ${wrote} bytes' worth of values, expected ${want}`);
        const pad = align(wrote) - wrote;
        if (pad) yield new Uint8Array(pad);
      }
    },
  };
}

function bytesPerValue(type: GgmlTypeName): number {
  return type === 'F32' ? 4 : type === 'F16' ? 2 : (2 + QK8_0) / QK8_0;
}

async function* encodeTensor(t: GgufTensorSource): AsyncGenerator<Uint8Array> {
  if (t.type === 'F32') {
    for await (const c of t.f32Chunks()) yield new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
    return;
  }
  if (t.type === 'F16') {
    for await (const c of t.f32Chunks()) {
      const half = f32ArrayToF16(c);
      for (let i = 0; i < half.length; i++) {
        if ((half[i] & 0x7c00) === 0x7c00 && Number.isFinite(c[i])) {
          throw new GgufError(`tensor "${t.name}": value ${c[i]} is outside the f16 range (±65504): export as f32`);
        }
      }
      yield new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
    }
    return;
  }
  // Q8_0: regroup the chunks into whole blocks of 32.
  let carry = new Float32Array(0);
  for await (const c of t.f32Chunks()) {
    const joined = carry.length ? concat(carry, c) : c;
    const whole = joined.length - (joined.length % QK8_0);
    if (whole) yield quantizeQ8_0(joined.subarray(0, whole));
    carry = joined.slice(whole);
  }
  if (carry.length) throw new GgufError(`tensor "${t.name}": ${carry.length} values left over after the last Q8_0 block`);
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** ggml's quantize_row_q8_0_ref: per block d = max|x| / 127 (stored f16), q = round(x / d) (half away from zero). */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % QK8_0 !== 0) throw new GgufError(`Q8_0: ${x.length} values are not whole blocks of ${QK8_0}`);
  const blocks = x.length / QK8_0;
  const out = new Uint8Array(blocks * (2 + QK8_0));
  const view = new DataView(out.buffer);
  const scale = new Float32Array(1);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(x[b * QK8_0 + j]));
    scale[0] = amax / 127;
    const d = scale[0];
    const id = d ? Math.fround(1 / d) : 0;
    const at = b * (2 + QK8_0);
    view.setUint16(at, f32ArrayToF16(scale)[0], true);
    for (let j = 0; j < QK8_0; j++) {
      const v = Math.fround(x[b * QK8_0 + j] * id);
      view.setInt8(at + 2 + j, Math.sign(v) * Math.floor(Math.abs(v) + 0.5));
    }
  }
  return out;
}

export function dequantizeQ8_0(bytes: Uint8Array): Float32Array {
  const blocks = bytes.length / (2 + QK8_0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(blocks * QK8_0);
  for (let b = 0; b < blocks; b++) {
    const d = fromF16Bits(view.getUint16(b * (2 + QK8_0), true));
    for (let j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = d * view.getInt8(b * (2 + QK8_0) + 2 + j);
  }
  return out;
}

function align(n: number): number {
  return Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  const scalar = (type: number) => w.u32(type);
  switch (v.type) {
    case 'u32':
      checkInt(v.value, 0, 2 ** 32 - 1);
      scalar(GGUF_TYPE.UINT32);
      w.u32(v.value);
      return;
    case 'i32':
      checkInt(v.value, -(2 ** 31), 2 ** 31 - 1);
      scalar(GGUF_TYPE.INT32);
      w.i32(v.value);
      return;
    case 'u64':
      checkInt(v.value, 0, Number.MAX_SAFE_INTEGER);
      scalar(GGUF_TYPE.UINT64);
      w.u64(v.value);
      return;
    case 'f32':
      scalar(GGUF_TYPE.FLOAT32);
      w.f32(v.value);
      return;
    case 'bool':
      scalar(GGUF_TYPE.BOOL);
      w.u8(v.value ? 1 : 0);
      return;
    case 'string':
      scalar(GGUF_TYPE.STRING);
      w.string(v.value);
      return;
    case 'string[]':
      scalar(GGUF_TYPE.ARRAY);
      w.u32(GGUF_TYPE.STRING);
      w.u64(v.value.length);
      for (const s of v.value) w.string(s);
      return;
    case 'i32[]':
      scalar(GGUF_TYPE.ARRAY);
      w.u32(GGUF_TYPE.INT32);
      w.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) w.i32(v.value[i]);
      return;
    case 'f32[]':
      scalar(GGUF_TYPE.ARRAY);
      w.u32(GGUF_TYPE.FLOAT32);
      w.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) w.f32(v.value[i]);
      return;
  }
}

function checkInt(x: number, lo: number, hi: number): void {
  if (!Number.isInteger(x) || x < lo || x > hi) throw new GgufError(`${x} is not an integer in [${lo}, ${hi}]`);
}

/** A growable little-endian byte buffer. */
class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private static readonly utf8 = new TextEncoder();

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(x: number) {
    this.room(1);
    this.view.setUint8(this.length, x);
    this.length += 1;
  }
  u32(x: number) {
    this.room(4);
    this.view.setUint32(this.length, x, true);
    this.length += 4;
  }
  i32(x: number) {
    this.room(4);
    this.view.setInt32(this.length, x, true);
    this.length += 4;
  }
  f32(x: number) {
    this.room(4);
    this.view.setFloat32(this.length, x, true);
    this.length += 4;
  }
  u64(x: number) {
    this.room(8);
    this.view.setBigUint64(this.length, BigInt(x), true);
    this.length += 8;
  }
  string(s: string) {
    const bytes = ByteWriter.utf8.encode(s);
    this.u64(bytes.length);
    this.room(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }
  /** The bytes written, zero-padded to `size`. */
  bytes(size: number): Uint8Array {
    const out = new Uint8Array(size);
    out.set(this.buf.subarray(0, this.length));
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reader (tests, and checking a written file)

export interface GgufTensorInfo {
  name: string;
  dims: number[];
  type: number;
  /** Absolute offset of the data in the file. */
  offset: number;
}

export interface ParsedGguf {
  version: number;
  metadata: Map<string, unknown>;
  tensors: GgufTensorInfo[];
  dataOffset: number;
}

/** Parses a whole GGUF file in memory (small files: tests). Arrays of numbers come back as number[]. */
export function parseGguf(bytes: Uint8Array): ParsedGguf {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const u32 = () => ((at += 4), view.getUint32(at - 4, true));
  const u64 = () => ((at += 8), Number(view.getBigUint64(at - 8, true)));
  const str = () => {
    const n = u64();
    at += n;
    return utf8.decode(bytes.subarray(at - n, at));
  };
  const value = (type: number): unknown => {
    switch (type) {
      case GGUF_TYPE.UINT8: return ((at += 1), view.getUint8(at - 1));
      case GGUF_TYPE.INT8: return ((at += 1), view.getInt8(at - 1));
      case GGUF_TYPE.UINT16: return ((at += 2), view.getUint16(at - 2, true));
      case GGUF_TYPE.INT16: return ((at += 2), view.getInt16(at - 2, true));
      case GGUF_TYPE.UINT32: return u32();
      case GGUF_TYPE.INT32: return ((at += 4), view.getInt32(at - 4, true));
      case GGUF_TYPE.FLOAT32: return ((at += 4), view.getFloat32(at - 4, true));
      case GGUF_TYPE.BOOL: return ((at += 1), view.getUint8(at - 1) !== 0);
      case GGUF_TYPE.STRING: return str();
      case GGUF_TYPE.UINT64: return u64();
      case GGUF_TYPE.INT64: return ((at += 8), Number(view.getBigInt64(at - 8, true)));
      case GGUF_TYPE.FLOAT64: return ((at += 8), view.getFloat64(at - 8, true));
      case GGUF_TYPE.ARRAY: {
        const elem = u32();
        const n = u64();
        const out: unknown[] = [];
        for (let i = 0; i < n; i++) out.push(value(elem));
        return out;
      }
      default:
        throw new GgufError(`unknown metadata value type ${type} at byte ${at - 4}`);
    }
  };
  if (u32() !== 0x46554747) throw new GgufError('not a GGUF file (bad magic)');
  const version = u32();
  const tensorCount = u64();
  const kvCount = u64();
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    metadata.set(key, value(u32()));
  }
  const infos: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = str();
    const nd = u32();
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(u64());
    infos.push({ name, dims, type: u32(), offset: u64() });
  }
  const alignment = (metadata.get('general.alignment') as number | undefined) ?? GGUF_ALIGNMENT;
  const dataOffset = Math.ceil(at / alignment) * alignment;
  for (const t of infos) t.offset += dataOffset;
  return { version, metadata, tensors: infos, dataOffset };
}

/** A tensor of a parsed file as f32 values (F32, F16 or Q8_0). */
export function readGgufTensor(bytes: Uint8Array, t: GgufTensorInfo): Float32Array {
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.type === GGML_TYPE.F32) return new Float32Array(bytes.slice(t.offset, t.offset + 4 * n).buffer);
  if (t.type === GGML_TYPE.F16) {
    const half = new Uint16Array(bytes.slice(t.offset, t.offset + 2 * n).buffer);
    return f16ArrayToF32(half);
  }
  if (t.type === GGML_TYPE.Q8_0) return dequantizeQ8_0(bytes.subarray(t.offset, t.offset + (n / QK8_0) * (2 + QK8_0)));
  throw new GgufError(`tensor "${t.name}": type ${t.type} is not read here`);
}
