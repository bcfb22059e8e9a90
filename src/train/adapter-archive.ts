// A PEFT adapter .zip opened with bounded memory (issue 14): nothing is inflated before its limit is known, and
// every inflate stops at that limit whatever the archive declares.
//
//   1. the end-of-central-directory record and the central directory are read from the archive's tail (the archive
//      is a ByteSource: a picked File or a file on disk is never read whole);
//   2. every entry name is checked: an absolute path, a drive letter or a ".." component refuses the archive, as do
//      two entries of one name; exactly one adapter_config.json (the adapter's folder is where it sits);
//   3. adapter_config.json is inflated first, at most CONFIG_LIMIT bytes;
//   4. adapter_model.safetensors is inflated at most adapterWeightsLimit(config, model) bytes: the largest file a
//      LoRA adapter of that rank on that model's linear layers can be;
//   5. nothing else is inflated: entries outside the adapter's folder and its other files are never read (the
//      importer reads only those two; adapter_model.bin is kept as an empty marker so that importAdapter can say why
//      it is refused).
// Each inflate reads the compressed bytes in CHUNK pieces through fflate's streaming Inflate and counts what comes
// out: past the entry's declared size (which is itself checked against the limit first) it stops with an error, so
// a lying header cannot make it allocate more than the limit plus one chunk's expansion (deflate's ratio is at most
// ~1032:1, so ≤ ~4 MiB). The CRC-32 of each inflated entry is checked.

import { Inflate } from 'fflate';
import type { ModelFiles } from '../model/checkpoint.ts';
import type { ModelConfig } from '../model/config.ts';
import type { ByteSource } from '../model/safetensors.ts';
import { memoryFolder, MemorySource } from '../model/sources/memory.ts';
import { linearModules } from '../model/weights.ts';
import { AdapterError } from './adapter-error.ts';
import { bottleneckSize, isBottleneckConfig } from './methods/bottleneck/format.ts';

const CONFIG_FILE = 'adapter_config.json';
const WEIGHTS_FILE = 'adapter_model.safetensors';
const LEGACY_WEIGHTS_FILE = 'adapter_model.bin';

/** adapter_config.json is at most this many bytes (PEFT's is ~1 KiB; an all-linear list of module paths ~100 KiB). */
export const CONFIG_LIMIT = 1 << 20;
/** Room for the safetensors header (its JSON names every tensor, ~150 bytes each) and metadata. */
export const WEIGHTS_HEADER_ALLOWANCE = 1 << 20;
/** The central directory of an adapter archive is small: a few entries. More is refused before it is read. */
const MAX_CENTRAL_DIRECTORY = 16 << 20;
/** Compressed bytes pushed into the inflater at once: at most ~1032× this comes out of one push. */
const CHUNK = 4096;
/** Compressed bytes read from the source at once. */
const READ = 16 * CHUNK;

/** An archive refused: `file` is the archive, `entry` the entry at fault (null for the archive as a whole). */
export class AdapterArchiveError extends AdapterError {
  constructor(
    readonly file: string,
    readonly entry: string | null,
    readonly problem: string,
  ) {
    super(file, [entry === null ? problem : `entry "${entry}": ${problem}`]);
    this.name = 'AdapterArchiveError';
  }
}

/**
 * The largest adapter_model.safetensors a LoRA adapter of rank `r` can be on `model`: every linear layer (not only
 * target_modules: importAdapter accepts the A/B of any linear layer, and warns when they are not targeted) with
 * A [r, in] and B [out, r] in F32 (4 bytes, the widest dtype the importer reads), plus WEIGHTS_HEADER_ALLOWANCE.
 * r is counted at most max(in, out) per layer: a larger rank adds nothing a full-rank update does not have, so a
 * config claiming r = 10⁹ does not lift the bound past ~(in + out)·max(in, out)·4 bytes per layer.
 */
export function adapterWeightsLimit(r: number, model: ModelConfig): number {
  let bytes = WEIGHTS_HEADER_ALLOWANCE;
  for (const m of linearModules(model)) bytes += Math.min(r, Math.max(m.inFeatures, m.outFeatures)) * (m.inFeatures + m.outFeatures) * 4;
  return bytes;
}

/** A .zip's entry as its central directory describes it. */
export interface ZipEntry {
  /** The name as stored (backslashes turned into slashes). */
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  /** What the archive declares: checked against the limit before inflating, and against what comes out. */
  size: number;
  localHeaderOffset: number;
}

/**
 * Opens a PEFT adapter .zip (its two files at the top or in one folder) as the adapter's folder, inflating only
 * adapter_config.json (≤ CONFIG_LIMIT) and adapter_model.safetensors (≤ adapterWeightsLimit for `model`).
 * Every refusal is an AdapterArchiveError naming the archive and the entry.
 */
export async function openAdapterArchive(source: Uint8Array | ByteSource, model: ModelConfig, name?: string): Promise<ModelFiles> {
  const src = source instanceof Uint8Array ? new MemorySource(name ?? 'adapter.zip', source) : source;
  const file = name ?? src.name;
  const entries = await readCentralDirectory(src, file);

  const configs = entries.filter((e) => e.name === CONFIG_FILE || e.name.endsWith(`/${CONFIG_FILE}`));
  if (configs.length === 0) throw new AdapterArchiveError(file, null, `no ${CONFIG_FILE} in the archive`);
  if (configs.length > 1) throw new AdapterArchiveError(file, null, `several adapters in the archive (${configs.map((e) => e.name).join(', ')}); zip one`);
  const dir = configs[0].name.slice(0, configs[0].name.length - CONFIG_FILE.length);
  const inDir = new Map(entries.filter((e) => e.name.startsWith(dir)).map((e) => [e.name.slice(dir.length), e]));

  const files: Record<string, Uint8Array> = {};
  const configBytes = await inflateEntry(src, file, configs[0], CONFIG_LIMIT, `${CONFIG_FILE} is at most ${CONFIG_LIMIT} bytes`);
  files[CONFIG_FILE] = configBytes;
  const weights = inDir.get(WEIGHTS_FILE);
  if (weights) {
    const { limit, why } = weightsLimitOf(configBytes, file, configs[0].name, model);
    files[WEIGHTS_FILE] = await inflateEntry(src, file, weights, limit, why);
  }
  if (inDir.has(LEGACY_WEIGHTS_FILE)) files[LEGACY_WEIGHTS_FILE] = new Uint8Array(0); // never read: importAdapter refuses pickles
  return memoryFolder(files, file);
}

/** config.r, needed to bound the weights; the importer checks the rest of the config and reports it all at once. */
/** The largest adapter_model.safetensors an IA³ adapter can be on `model`: one F32 vector of at most in + out values
 *  on every linear layer, plus WEIGHTS_HEADER_ALLOWANCE. */
export function ia3WeightsLimit(model: ModelConfig): number {
  return linearModules(model).reduce((bytes, m) => bytes + (m.inFeatures + m.outFeatures) * 4, WEIGHTS_HEADER_ALLOWANCE);
}

/** The largest adapter_model.safetensors a bottleneck adapter (methods/bottleneck/format.ts) can be on `model`: on
 *  every linear layer D, b_d, U, b_u in F32 with m = max(1, ⌊out / reduction_factor⌋) (m ≤ out whatever the config
 *  says), plus WEIGHTS_HEADER_ALLOWANCE. */
export function bottleneckWeightsLimit(model: ModelConfig, reductionFactor: unknown): number {
  const rf = typeof reductionFactor === 'number' && reductionFactor >= 1 ? reductionFactor : 1;
  return linearModules(model).reduce((bytes, m) => {
    const size = bottleneckSize(m.outFeatures, rf);
    return bytes + (2 * size * m.outFeatures + size + m.outFeatures) * 4;
  }, WEIGHTS_HEADER_ALLOWANCE);
}

/** The weights file's bound for the method adapter_config.json names (LoRA by its rank; IA³ by the model alone). */
function weightsLimitOf(bytes: Uint8Array, file: string, entry: string, model: ModelConfig): { limit: number; why: string } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new AdapterArchiveError(file, entry, `not valid JSON (${(e as Error).message})`);
  }
  const c = json as { r?: unknown; peft_type?: unknown; num_virtual_tokens?: unknown } | null;
  if (isBottleneckConfig(json)) {
    const limit = bottleneckWeightsLimit(model, (json as { reduction_factor?: unknown }).reduction_factor);
    return { limit, why: `a bottleneck adapter of this ${model.modelType} model (${model.numLayers} layers) is at most ${limit} bytes` };
  }
  if (c?.peft_type === 'PROMPT_TUNING' || c?.peft_type === 'P_TUNING') {
    // One [n, hidden] table: n counted at most the model's positions (more could never sit ahead of a row).
    const n = c.num_virtual_tokens;
    if (!Number.isInteger(n) || (n as number) < 1) throw new AdapterArchiveError(file, entry, `"num_virtual_tokens" must be a positive integer, got ${JSON.stringify(n)}`);
    const limit = WEIGHTS_HEADER_ALLOWANCE + Math.min(n as number, model.maxPositions) * model.hiddenSize * 4;
    return { limit, why: `a prompt adapter of ${n} virtual tokens on this ${model.modelType} model (hidden size ${model.hiddenSize}) is at most ${limit} bytes` };
  }
  if (c?.peft_type === 'PREFIX_TUNING') {
    // One [n, L·2·Hkv·D] table: n counted at most the model's positions (the real tokens start at position n).
    const n = c.num_virtual_tokens;
    if (!Number.isInteger(n) || (n as number) < 1) throw new AdapterArchiveError(file, entry, `"num_virtual_tokens" must be a positive integer, got ${JSON.stringify(n)}`);
    const limit = WEIGHTS_HEADER_ALLOWANCE + Math.min(n as number, model.maxPositions) * model.numLayers * 2 * model.numKvHeads * model.headDim * 4;
    return { limit, why: `a prefix adapter of ${n} virtual tokens on this ${model.modelType} model (${model.numLayers} layers) is at most ${limit} bytes` };
  }
  if (c?.peft_type === 'IA3') {
    const limit = ia3WeightsLimit(model);
    return { limit, why: `an IA³ adapter of this ${model.modelType} model (${model.numLayers} layers) is at most ${limit} bytes` };
  }
  if (c?.peft_type === 'ADALORA') {
    // AdaLoRA: at most init_r triplets (A row, E value, B column) per module; r is LoraConfig's unused default.
    const initR = (c as { init_r?: unknown }).init_r ?? 12;
    if (!Number.isInteger(initR) || (initR as number) < 1) throw new AdapterArchiveError(file, entry, `"init_r" must be a positive integer, got ${JSON.stringify(initR)}`);
    const limit = adapterWeightsLimit((initR as number) + 1, model);
    return { limit, why: `an init_r ${initR} AdaLoRA adapter of this ${model.modelType} model (${model.numLayers} layers) is at most ${limit} bytes` };
  }
  const r = c?.r;
  if (!Number.isInteger(r) || (r as number) < 1) throw new AdapterArchiveError(file, entry, `"r" must be a positive integer, got ${JSON.stringify(r)}`);
  const limit = adapterWeightsLimit(r as number, model);
  return { limit, why: `a rank-${r} LoRA adapter of this ${model.modelType} model (${model.numLayers} layers) is at most ${limit} bytes` };
}

// ---------------------------------------------------------------------------------------------------------------
// The zip container (APPNOTE.TXT 4.3): end of central directory → central directory → local headers

const EOCD_SIG = 0x06054b50;
const CEN_SIG = 0x02014b50;
const LOC_SIG = 0x04034b50;

async function readExact(src: ByteSource, file: string, offset: number, length: number, what: string): Promise<Uint8Array> {
  if (offset < 0 || offset + length > src.size) throw new AdapterArchiveError(file, null, `not a readable .zip (${what} lies past the end of the file)`);
  const bytes = await src.read(offset, length);
  if (bytes.length !== length) throw new AdapterArchiveError(file, null, `not a readable .zip (short read of ${what})`);
  return bytes;
}

/** Every file entry (directories and macOS's __MACOSX/ resource forks left out), names checked. */
export async function readCentralDirectory(src: ByteSource, file: string): Promise<ZipEntry[]> {
  const bad = (why: string) => new AdapterArchiveError(file, null, `not a readable .zip (${why})`);
  if (src.size < 22) throw bad('too short for an end-of-central-directory record');
  const tailLength = Math.min(src.size, 22 + 0xffff);
  const tail = await readExact(src, file, src.size - tailLength, tailLength, 'the end of central directory');
  const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD_SIG && i + 22 + tv.getUint16(i + 20, true) <= tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad('no end-of-central-directory record');
  const count = tv.getUint16(eocd + 10, true);
  const cdSize = tv.getUint32(eocd + 12, true);
  const cdOffset = tv.getUint32(eocd + 16, true);
  if (tv.getUint16(eocd + 4, true) !== 0 || tv.getUint16(eocd + 6, true) !== 0 || tv.getUint16(eocd + 8, true) !== count) throw bad('split over several disks');
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw new AdapterArchiveError(file, null, 'ZIP64 archives are not supported (an adapter is far below 4 GiB: zip it again without ZIP64)');
  }
  if (cdSize > MAX_CENTRAL_DIRECTORY) throw new AdapterArchiveError(file, null, `central directory of ${cdSize} bytes: too large for an adapter archive`);
  const cd = await readExact(src, file, cdOffset, cdSize, 'the central directory');
  const v = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
  const decoder = new TextDecoder();
  const entries: ZipEntry[] = [];
  const seen = new Set<string>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || v.getUint32(p, true) !== CEN_SIG) throw bad(`central directory entry ${i} is damaged`);
    const nameLength = v.getUint16(p + 28, true);
    const end = p + 46 + nameLength + v.getUint16(p + 30, true) + v.getUint16(p + 32, true);
    if (end > cd.length) throw bad(`central directory entry ${i} is damaged`);
    const raw = decoder.decode(cd.subarray(p + 46, p + 46 + nameLength));
    const entry: ZipEntry = {
      name: raw.replace(/\\/g, '/'),
      flags: v.getUint16(p + 8, true),
      method: v.getUint16(p + 10, true),
      crc: v.getUint32(p + 16, true),
      compressedSize: v.getUint32(p + 20, true),
      size: v.getUint32(p + 24, true),
      localHeaderOffset: v.getUint32(p + 42, true),
    };
    checkEntryName(file, raw, entry.name);
    readZip64Extra(file, raw, entry, cd.subarray(p + 46 + nameLength, p + 46 + nameLength + v.getUint16(p + 30, true)));
    p = end;
    if (seen.has(entry.name)) throw new AdapterArchiveError(file, raw, 'appears twice in the archive');
    seen.add(entry.name);
    if (entry.name.endsWith('/') || entry.name.startsWith('__MACOSX/')) continue;
    entries.push(entry);
  }
  return entries;
}

/**
 * An entry whose sizes or offset read 0xFFFFFFFF keeps them in its ZIP64 extra field (id 0x0001: uncompressed size,
 * compressed size, local header offset, 8 bytes each, only those that overflowed, in that order), as some tools write
 * even for small files. Values past 2⁵³ are refused (no adapter is that large).
 */
function readZip64Extra(file: string, raw: string, entry: ZipEntry, extra: Uint8Array): void {
  const fields = (['size', 'compressedSize', 'localHeaderOffset'] as const).filter((k) => entry[k] === 0xffffffff);
  if (fields.length === 0) return;
  const v = new DataView(extra.buffer, extra.byteOffset, extra.byteLength);
  for (let at = 0; at + 4 <= extra.length; ) {
    const id = v.getUint16(at, true);
    const length = v.getUint16(at + 2, true);
    if (id === 0x0001) {
      if (length < fields.length * 8 || at + 4 + length > extra.length) break;
      fields.forEach((k, i) => {
        const value = v.getBigUint64(at + 4 + 8 * i, true);
        if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new AdapterArchiveError(file, raw, `ZIP64 ${k} ${value} is past any adapter's size`);
        entry[k] = Number(value);
      });
      return;
    }
    at += 4 + length;
  }
  throw new AdapterArchiveError(file, raw, `its ${fields.join(', ')} read 0xFFFFFFFF but it has no ZIP64 extra field holding them (a damaged archive)`);
}

/** Refuses names that would leave the archive's folder: absolute, drive letters, ".." components, NUL. */
function checkEntryName(file: string, raw: string, name: string): void {
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw new AdapterArchiveError(file, raw, 'an absolute path: every entry must stay inside the archive');
  if (name.split('/').some((part) => part === '..')) throw new AdapterArchiveError(file, raw, 'a ".." path component: every entry must stay inside the archive');
  if (name.includes('\0')) throw new AdapterArchiveError(file, raw, 'a NUL character in the name');
}

/** The entry's bytes, inflated as a stream that stops at `limit` and at the declared size, CRC-32 checked. */
export async function inflateEntry(src: ByteSource, file: string, entry: ZipEntry, limit: number, why: string): Promise<Uint8Array> {
  const fail = (problem: string) => new AdapterArchiveError(file, entry.name, problem);
  if (entry.flags & 1) throw fail('encrypted entries are not supported');
  if (entry.method !== 0 && entry.method !== 8) throw fail(`compression method ${entry.method} is not supported (stored or deflate)`);
  if (entry.size > limit) throw fail(`declares ${entry.size} bytes, more than allowed: ${why}`);

  const local = await readExact(src, file, entry.localHeaderOffset, 30, `the local header of "${entry.name}"`);
  const lv = new DataView(local.buffer, local.byteOffset, 30);
  if (lv.getUint32(0, true) !== LOC_SIG) throw fail('no local header where the central directory points');
  const nameLength = lv.getUint16(26, true);
  const localName = await readExact(src, file, entry.localHeaderOffset + 30, nameLength, `the local header of "${entry.name}"`);
  if (new TextDecoder().decode(localName).replace(/\\/g, '/') !== entry.name) throw fail('its local header names another file');
  const start = entry.localHeaderOffset + 30 + nameLength + lv.getUint16(28, true);
  if (start + entry.compressedSize > src.size) throw fail('its data lies past the end of the file (truncated archive?)');

  const out = new Uint8Array(entry.size);
  let produced = 0;
  let overflow = false;
  const take = (chunk: Uint8Array) => {
    if (overflow) return;
    if (produced + chunk.length > entry.size) {
      overflow = true;
      return;
    }
    out.set(chunk, produced);
    produced += chunk.length;
  };
  const tooLarge = () => fail(`inflates past its declared ${entry.size} bytes (a lying or damaged archive); stopped there`);
  const inflater = entry.method === 8 ? new Inflate((chunk) => take(chunk)) : null;
  try {
    for (let at = 0; at < entry.compressedSize; at += READ) {
      const length = Math.min(READ, entry.compressedSize - at);
      const bytes = await readExact(src, file, start + at, length, `the data of "${entry.name}"`);
      if (!inflater) take(bytes);
      else for (let k = 0; k < bytes.length && !overflow; k += CHUNK) inflater.push(bytes.subarray(k, k + CHUNK), at + k + CHUNK >= entry.compressedSize);
      if (overflow) throw tooLarge();
    }
    if (inflater && entry.compressedSize === 0) inflater.push(new Uint8Array(0), true);
  } catch (e) {
    if (e instanceof AdapterArchiveError) throw e;
    throw fail(`not a valid deflate stream (${(e as Error).message})`);
  }
  if (overflow) throw tooLarge();
  if (produced !== entry.size) throw fail(`inflates to ${produced} bytes, but declares ${entry.size} (a lying or damaged archive)`);
  if (crc32(out) !== entry.crc) throw fail('CRC-32 mismatch (a damaged archive)');
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// CRC-32 (the zip polynomial 0xEDB88320)

let crcTable: Uint32Array | null = null;

export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
