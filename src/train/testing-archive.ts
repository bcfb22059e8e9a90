// Hostile .zip archives built by hand for tests: any entry name, any declared size, any CRC, and a deflate stream
// of N MiB of zeros that takes ~1 KiB per MiB (adapter-archive.test.ts, cli/eval.gpu.test.ts).
import { Deflate, deflateSync } from 'fflate';
import { crc32 } from './adapter-archive.ts';

const MiB = 1 << 20;

export interface RawEntry {
  name: string;
  /** The bytes as stored in the archive (deflated when method is 8). */
  data: Uint8Array;
  method?: 0 | 8;
  /** Declared uncompressed size (default: the truth, when `plain` is given). */
  size?: number;
  crc?: number;
  plain?: Uint8Array;
  /** Write the sizes as 0xFFFFFFFF in the central directory and the true ones in a ZIP64 extra field. */
  zip64?: boolean;
}

export const deflated = (name: string, plain: Uint8Array): RawEntry => ({ name, data: deflateSync(plain), method: 8, plain });

/** A .zip from raw entries: local headers, data, central directory, end record (APPNOTE 4.3). */
export function rawZip(entries: RawEntry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = enc.encode(e.name);
    const size = e.size ?? e.plain?.length ?? e.data.length;
    const crc = e.crc ?? crc32(e.plain ?? e.data);
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, 20, true);
    lv.setUint16(8, e.method ?? 8, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, e.data.length, true);
    lv.setUint32(22, size, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const extra = new Uint8Array(e.zip64 ? 20 : 0);
    if (e.zip64) {
      const xv = new DataView(extra.buffer);
      xv.setUint16(0, 0x0001, true);
      xv.setUint16(2, 16, true);
      xv.setBigUint64(4, BigInt(size), true);
      xv.setBigUint64(12, BigInt(e.data.length), true);
    }
    const cen = new Uint8Array(46 + name.length + extra.length);
    const cv = new DataView(cen.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, 45, true);
    cv.setUint16(6, 45, true);
    cv.setUint16(10, e.method ?? 8, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, e.zip64 ? 0xffffffff : e.data.length, true);
    cv.setUint32(24, e.zip64 ? 0xffffffff : size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, extra.length, true);
    cv.setUint32(42, offset, true);
    cen.set(name, 46);
    cen.set(extra, 46 + name.length);
    parts.push(local, e.data);
    central.push(cen);
    offset += local.length + e.data.length;
  }
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  return concat([...parts, ...central, end]);
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * A raw deflate stream of `mib` MiB of zeros, ~1 KiB per MiB, built without ever holding the zeros: one MiB deflated
 * and sync-flushed (non-final, byte-aligned, its matches at distance 1 valid anywhere in a run of zeros), repeated,
 * then an empty final fixed-Huffman block (0x03 0x00).
 */
export function zeroBomb(mib: number): Uint8Array {
  const parts: Uint8Array[] = [];
  const d = new Deflate({ level: 9 }, (chunk) => void parts.push(chunk.slice()));
  d.push(new Uint8Array(MiB));
  d.flush(true);
  const segment = concat(parts);
  return concat([...Array.from({ length: mib }, () => segment), new Uint8Array([0x03, 0x00])]);
}
