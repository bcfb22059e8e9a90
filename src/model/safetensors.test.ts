import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fromF16Bits } from '../gpu/half.ts';
import { SafetensorsError, SafetensorsFile, readSafetensorsHeader, writeSafetensors, type TensorToWrite } from './safetensors.ts';
import { MemorySource } from './sources/memory.ts';
import { NodeFileSource } from './sources/node-file.ts';
import { BlobSource } from './sources/blob.ts';

const FIXTURES = new URL('../../tests/fixtures/safetensors/', import.meta.url);

/** A file with a hand-written header (object → compact JSON, or raw text) and `dataBytes` zero bytes of data. */
function rawFile(header: object | string, dataBytes: number, declaredLength?: number): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + h.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? h.length), true);
  out.set(h, 8);
  return out;
}

async function openError(bytes: Uint8Array, name = 'hostile.safetensors'): Promise<SafetensorsError> {
  try {
    await SafetensorsFile.open(new MemorySource(name, bytes));
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    return e as SafetensorsError;
  }
  throw new Error('expected the file to be rejected');
}

describe('safetensors header validation', () => {
  const ok = { 'a.weight': { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };

  it('accepts a well-formed file', async () => {
    const file = await SafetensorsFile.open(new MemorySource('ok.safetensors', rawFile(ok, 16)));
    expect(file.names()).toEqual(['a.weight']);
  });

  const hostile: [string, Uint8Array, string | null, RegExp][] = [
    ['file shorter than the length field', new Uint8Array(5), null, /too short/],
    ['header length beyond the file', rawFile(ok, 16, 10_000), null, /header length 10000 is beyond the end of the file/],
    ['non-JSON header', rawFile('{"a.weight": {dtype: F32}}', 0), null, /not valid JSON/],
    ['header that is not an object', rawFile('[1, 2]', 0), null, /not a JSON object/],
    ['invalid UTF-8', rawFile('{"\xff"}', 0).map((b, i) => (i === 10 ? 0xff : b)), null, /UTF-8/],
    ['offsets outside the data', rawFile({ 'w.out': { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8), 'w.out', /past the end of the data section/],
    ['begin after end', rawFile({ 'w.rev': { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, 8), 'w.rev', /begin after end/],
    ['dtype × shape mismatch', rawFile({ 'w.bad': { dtype: 'F16', shape: [3, 3], data_offsets: [0, 16] } }, 16), 'w.bad', /F16 × shape \[3, 3\] is 18 bytes but data_offsets \[0, 16\] span 16/],
    ['unknown dtype', rawFile({ 'w.i64': { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, 16), 'w.i64', /dtype I64 is not supported \(supported: F32, F16, BF16\)/],
    ['missing dtype', rawFile({ 'w.nodtype': { shape: [2], data_offsets: [0, 8] } }, 8), 'w.nodtype', /missing "dtype"/],
    ['negative shape', rawFile({ 'w.neg': { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8), 'w.neg', /"shape"/],
    ['bad offsets', rawFile({ 'w.offs': { dtype: 'F32', shape: [2], data_offsets: [0] } }, 8), 'w.offs', /"data_offsets"/],
    [
      'overlapping offsets',
      rawFile({ 'w.first': { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, 'w.second': { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, 16),
      'w.second',
      /overlaps tensor "w.first"/,
    ],
    [
      'duplicate names',
      rawFile('{"w.dup":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w.dup":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8),
      'w.dup',
      /appears twice/,
    ],
    ['metadata that is not strings', rawFile({ __metadata__: { n: 1 } }, 0), null, /__metadata__ "n" must be a string/],
  ];
  for (const [what, bytes, tensor, pattern] of hostile) {
    it(`rejects ${what}, naming the file${tensor ? ' and the tensor' : ''}`, async () => {
      const err = await openError(bytes);
      expect(err.message).toMatch(pattern);
      expect(err.message).toContain('hostile.safetensors');
      expect(err.file).toBe('hostile.safetensors');
      expect(err.tensor).toBe(tensor);
      if (tensor) expect(err.message).toContain(`"${tensor}"`);
    });
  }

  it('allows __metadata__, empty tensors and scalars; duplicate keys inside metadata are not tensor duplicates', async () => {
    const file = await SafetensorsFile.open(
      new MemorySource(
        'meta.safetensors',
        rawFile({ __metadata__: { format: 'pt' }, empty: { dtype: 'F32', shape: [0, 3], data_offsets: [0, 0] }, s: { dtype: 'F32', shape: [], data_offsets: [0, 4] } }, 4),
      ),
    );
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.info('s').numel).toBe(1);
    expect((await file.readTensor('empty', 'f32')).length).toBe(0);
  });

  it('reports a truncated data section when the tensor is read', async () => {
    // A source that lies about its size: the header validates, the read comes back short.
    const bytes = rawFile({ 'w.cut': { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 16);
    const source = new MemorySource('cut.safetensors', bytes);
    const file = await SafetensorsFile.open(source);
    (source as unknown as { bytes: Uint8Array }).bytes = bytes.subarray(0, bytes.length - 4);
    await expect(file.readTensor('w.cut', 'f32')).rejects.toThrow(/cut.safetensors: tensor "w.cut": short read/);
  });

  it('names the file and tensor when a tensor is not there', async () => {
    const file = await SafetensorsFile.open(new MemorySource('ok.safetensors', rawFile(ok, 16)));
    expect(() => file.info('nope')).toThrow(/ok.safetensors: tensor "nope": no such tensor/);
  });
});

describe('safetensors round trip', () => {
  const f32 = new Float32Array([1, -2.5, 3.25, 0, 65504, 1e-8]);
  const tensors: Record<string, TensorToWrite> = {
    'layer.weight': { dtype: 'F32', shape: [2, 3], data: f32 },
    'layer.bias': { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) },
    'embed.weight': { dtype: 'BF16', shape: [3], data: new Uint16Array([0x3f80, 0x4049, 0xbf00]) },
  };

  it('writes what it reads, converting to f32 and f16', async () => {
    const bytes = writeSafetensors(tensors, { format: 'pt' });
    const file = await SafetensorsFile.open(new MemorySource('rt.safetensors', bytes));
    expect(file.metadata).toEqual({ format: 'pt' });
    expect(file.info('layer.weight').shape).toEqual([2, 3]);
    expect(Array.from(await file.readTensor('layer.weight', 'f32'))).toEqual(Array.from(f32));
    expect(Array.from(await file.readTensor('layer.weight', 'f16'))).toEqual([0x3c00, 0xc100, 0x4280, 0, 0x7bff, 0]);
    expect(Array.from(await file.readTensor('layer.bias', 'f32'))).toEqual([1, -2]);
    expect(Array.from(await file.readTensor('layer.bias', 'f16'))).toEqual([0x3c00, 0xc000]);
    expect(Array.from(await file.readTensor('embed.weight', 'f32'))).toEqual([1, 3.140625, -0.5]);
    expect(Array.from(await file.readTensor('embed.weight', 'f16')).map(fromF16Bits)).toEqual([1, 3.140625, -0.5]);
  });

  it('pads the header to 8 bytes with spaces and sorts tensors by dtype (F32, BF16, F16) then name', async () => {
    const bytes = writeSafetensors(tensors);
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(header.trimEnd()).toBe(
      '{"layer.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"embed.weight":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]},"layer.bias":{"dtype":"F16","shape":[2],"data_offsets":[30,34]}}',
    );
    expect(header.slice(header.trimEnd().length)).toMatch(/^ *$/);
  });

  it('rejects data whose size does not match dtype × shape, naming the tensor', () => {
    expect(() => writeSafetensors({ 'w.x': { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(/tensor "w.x": F32 × shape \[3\] is 12 bytes but the data has 8/);
  });

  it('streams a tensor in chunks that reassemble to the whole, reading only what it yields', async () => {
    const big = new Float32Array(1000).map((_, i) => i * 0.5 - 100);
    const bytes = writeSafetensors({ big: { dtype: 'F32', shape: [10, 100], data: big } });
    const source = new MemorySource('big.safetensors', bytes);
    const file = await SafetensorsFile.open(source);
    const headerBytes = source.bytesRead;
    const out = new Uint16Array(1000);
    const offsets: number[] = [];
    for await (const chunk of file.streamTensor('big', 'f16', 1024)) {
      offsets.push(chunk.elementOffset);
      out.set(chunk.data, chunk.elementOffset);
    }
    expect(offsets).toEqual([0, 256, 512, 768]);
    expect(Array.from(out).map(fromF16Bits)).toEqual(Array.from(big));
    expect(source.bytesRead - headerBytes).toBe(4000);
  });
});

describe('safetensors files written by the Python library', () => {
  const mixedBytes = new Uint8Array(readFileSync(new URL('mixed.safetensors', FIXTURES)));

  it('the writer reproduces safetensors.save_file byte for byte', async () => {
    const file = await SafetensorsFile.open(new MemorySource('mixed.safetensors', mixedBytes));
    const tensors: Record<string, TensorToWrite> = {};
    // Insertion order scrambled on purpose: the writer must sort like the Rust library.
    for (const name of file.names().reverse()) {
      const info = file.info(name);
      tensors[name] = { dtype: info.dtype, shape: info.shape, data: await file.readRaw(name) };
    }
    expect(Buffer.from(writeSafetensors(tensors, file.metadata ?? undefined)).equals(Buffer.from(mixedBytes))).toBe(true);
  });

  it('reads special values (±0, ±inf, NaN, subnormals) in every dtype', async () => {
    const file = await SafetensorsFile.open(new MemorySource('mixed.safetensors', mixedBytes));
    const f32 = Array.from(await file.readTensor('special.values', 'f32'));
    expect(f32.slice(0, 4)).toEqual([0, -0, Infinity, -Infinity]);
    expect(Number.isNaN(f32[4])).toBe(true);
    expect(f32[5]).toBe(65504);
    expect(f32[6]).toBe(Math.fround(6e-8));
    expect(f32[7]).toBe(Math.fround(1e-40));
    const asHalf = Array.from(await file.readTensor('special.values', 'f16'));
    expect(asHalf.filter((_, i) => i !== 4)).toEqual([0x0000, 0x8000, 0x7c00, 0xfc00, 0x7bff, 0x0001, 0x0000]);
    expect(Array.from(await file.readTensor('half.special', 'f16'))).toEqual([0x0000, 0x8000, 0x7c00, 0xfc00, 0x7bff, 0x0001, 0x3c00]);
    expect(Array.from(await file.readTensor('bf.special', 'f32')).slice(0, 3)).toEqual([0, -0, Infinity]);
    expect(Array.from(await file.readTensor('bf.special', 'f16')).slice(3, 5)).toEqual([0x7c00, 0x0000]);
  });

  it('f32 → f16 and bf16 → f16/f32 conversions give torch’s bits exactly', async () => {
    const bytes = new Uint8Array(readFileSync(new URL('conversion.safetensors', FIXTURES)));
    const file = await SafetensorsFile.open(new MemorySource('conversion.safetensors', bytes));
    const check = (name: string, got: ArrayLike<number>, want: ArrayLike<number>) => {
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) {
        if (!Object.is(got[i], want[i])) throw new Error(`${name}[${i}]: got ${got[i]}, want ${want[i]}`);
      }
    };
    check('f32_to_f16', await file.readTensor('f32', 'f16'), await file.readTensor('f32_to_f16', 'f16'));
    check('bf16_to_f16', await file.readTensor('bf16', 'f16'), await file.readTensor('bf16_to_f16', 'f16'));
    check('bf16_to_f32', await file.readTensor('bf16', 'f32'), await file.readTensor('bf16_to_f32', 'f32'));
    expect(file.info('f32').numel).toBeGreaterThan(6000);
  });

  it('reads through the Node file source and the Blob source alike', async () => {
    const path = new URL('mixed.safetensors', FIXTURES).pathname;
    const onDisk = await SafetensorsFile.open(await NodeFileSource.open(path));
    const inBlob = await SafetensorsFile.open(new BlobSource(new Blob([mixedBytes]), 'mixed.safetensors'));
    for (const name of onDisk.names()) {
      expect(Array.from(await inBlob.readTensor(name, 'f32'))).toEqual(Array.from(await onDisk.readTensor(name, 'f32')));
    }
    const header = await readSafetensorsHeader(new BlobSource(new Blob([mixedBytes]), 'x'));
    expect(header.tensors.size).toBe(onDisk.names().length);
    await onDisk.close();
  });
});
