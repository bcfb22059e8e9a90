// Test helpers that read a safetensors header by hand (8-byte little-endian length, then JSON), independently of
// src/model/safetensors.ts, so tests can check files that code wrote or reads. Used by tests only.
import { closeSync, openSync, readSync, statSync } from 'node:fs';

export interface RawHeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export type RawHeader = Record<string, RawHeaderEntry> & { __metadata__?: Record<string, string> };

/** The header of safetensors bytes held in memory. */
export function rawSafetensorsHeader(bytes: Uint8Array): RawHeader {
  const len = Number(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
}

/** The header of a safetensors file on disk, reading only the header's bytes. */
export function rawSafetensorsHeaderOfFile(path: string): { header: RawHeader; headerLength: number; fileSize: number } {
  const fd = openSync(path, 'r');
  try {
    const lengthBytes = Buffer.alloc(8);
    readSync(fd, lengthBytes, 0, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    const headerBytes = Buffer.alloc(headerLength);
    readSync(fd, headerBytes, 0, headerLength, 8);
    return { header: JSON.parse(headerBytes.toString('utf8')), headerLength, fileSize: statSync(path).size };
  } finally {
    closeSync(fd);
  }
}

/** Parameters stored in a safetensors file (every tensor's element count), from its header alone. */
export function storedParameters(path: string): number {
  const { header } = rawSafetensorsHeaderOfFile(path);
  return Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .reduce((n, [, t]) => n + (t as RawHeaderEntry).shape.reduce((a, b) => a * b, 1), 0);
}
