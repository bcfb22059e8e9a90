// Hostile adapter archives (issue 14): a zip bomb, lying sizes, path traversal, two adapters in one archive. Each
// ends in an AdapterArchiveError naming the archive and the entry, and the bomb in bounded memory: the source counts
// the compressed bytes handed out and samples process.memoryUsage() at every read, so an inflate that ran to the end
// (what unzipSync did: 3.2 GB for a 3 MB archive) shows up as both.
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../model/config.ts';
import { readModelConfig } from '../model/load.ts';
import type { ByteSource } from '../model/safetensors.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { AdapterArchiveError, adapterWeightsLimit, CONFIG_LIMIT, openAdapterArchive } from './adapter-archive.ts';
import { deflated, rawZip, zeroBomb } from './testing-archive.ts';
import { buildAdapterConfig, exportAdapter, importAdapter, zipAdapter } from './peft.ts';
import { selectTargetModules } from '../model/weights.ts';

const fixture = (name: string) => join(__dirname, '..', '..', 'tests', 'fixtures', 'models', name);
const config = (name: string): Promise<ModelConfig> => readModelConfig(nodeFolder(fixture(name)));
const MiB = 1 << 20;

/** A ByteSource over bytes that counts what it hands out and samples the process's memory at every read. */
class WatchedSource implements ByteSource {
  bytesRead = 0;
  peakGrowth = 0;
  private readonly base: number;
  constructor(
    readonly name: string,
    private readonly bytes: Uint8Array,
  ) {
    this.base = usage();
  }
  get size(): number {
    return this.bytes.length;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.peakGrowth = Math.max(this.peakGrowth, usage() - this.base);
    this.bytesRead += length;
    return this.bytes.slice(offset, offset + length);
  }
}
const usage = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

async function archiveError(promise: Promise<unknown>): Promise<AdapterArchiveError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AdapterArchiveError);
  return err as AdapterArchiveError;
}

async function adapterFiles(model: ModelConfig, rank = 4) {
  const modules = selectTargetModules(model, ['q_proj', 'v_proj']).map((m) => ({
    peftPath: m.peftPath,
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    A: new Float32Array(rank * m.inFeatures).fill(0.5),
    B: new Float32Array(m.outFeatures * rank).fill(0.25),
  }));
  return exportAdapter(modules, buildAdapterConfig({ baseModel: 'llama', rank, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'], fanInFanOut: false, rslora: false }));
}

// ---------------------------------------------------------------------------------------------------------------

describe('adapterWeightsLimit', () => {
  it('is Σ over every linear layer of r·(in + out)·4 bytes + 1 MiB, r capped at max(in, out)', async () => {
    const model = await config('llama');
    const H = model.hiddenSize;
    const files = await adapterFiles(model, 4);
    const limit = adapterWeightsLimit(4, model);
    expect(files['adapter_model.safetensors'].length).toBeLessThan(limit);
    expect(limit).toBeLessThan(MiB + 4 * 4 * model.numLayers * 8 * (H + model.intermediateSize) * 4);
    expect(adapterWeightsLimit(1e9, model)).toBe(adapterWeightsLimit(100_000, model));
  });
});

describe('openAdapterArchive', () => {
  it('opens what zipAdapter writes and what zip tools write (files in one folder), reading only the two files', async () => {
    const model = await config('llama');
    const files = await adapterFiles(model);
    const plain = await importAdapter(zipAdapter(files), model, 'a.zip');
    expect(plain.modules).toHaveLength(2 * model.numLayers);
    const nested = zipSync({
      'run/adapter_config.json': files['adapter_config.json'],
      'run/adapter_model.safetensors': files['adapter_model.safetensors'],
      'run/optimizer.pt': new Uint8Array(3 * MiB),
      'elsewhere/big.bin': new Uint8Array(3 * MiB),
      'run/': new Uint8Array(0),
    });
    const folder = await openAdapterArchive(nested, model, 'nested.zip');
    expect(await folder.open('optimizer.pt')).toBeNull(); // never inflated
    expect((await folder.open('adapter_model.safetensors'))!.size).toBe(files['adapter_model.safetensors'].length);
    // Stored (method 0) entries, as `zip -0` writes them.
    const stored = zipSync({ 'adapter_config.json': files['adapter_config.json'], 'adapter_model.safetensors': files['adapter_model.safetensors'] }, { level: 0 });
    expect((await importAdapter(stored, model, 'stored.zip')).modules).toHaveLength(2 * model.numLayers);
  });

  it('reads ZIP64 sizes from the extra field, and refuses 0xFFFFFFFF sizes without one', async () => {
    const model = await config('llama');
    const files = await adapterFiles(model);
    const zip = rawZip([deflated('adapter_config.json', files['adapter_config.json']), { ...deflated('adapter_model.safetensors', files['adapter_model.safetensors']), zip64: true }]);
    expect((await importAdapter(zip, model, 'z64.zip')).modules).toHaveLength(2 * model.numLayers);
    const noExtra = rawZip([deflated('adapter_config.json', files['adapter_config.json']), { ...deflated('adapter_model.safetensors', files['adapter_model.safetensors']), size: 0xffffffff }]);
    expect((await archiveError(openAdapterArchive(noExtra, model, 'z.zip'))).message).toBe('z.zip: entry "adapter_model.safetensors": its size read 0xFFFFFFFF but it has no ZIP64 extra field holding them (a damaged archive)');
  });

  it('stops a zip bomb at the limit: a 1 GiB entry in a ~1 MiB archive, in bounded memory', async () => {
    const model = await config('llama');
    const files = await adapterFiles(model);
    const bomb = zeroBomb(1024);
    expect(bomb.length).toBeLessThan(2 * MiB);
    const limit = adapterWeightsLimit(4, model);
    // Declared truthfully: refused before anything is inflated.
    const honest = new WatchedSource('bomb.zip', rawZip([deflated('adapter_config.json', files['adapter_config.json']), { name: 'adapter_model.safetensors', data: bomb, size: 1 << 30, crc: 0 }]));
    const e1 = await archiveError(importAdapter(honest, model));
    expect(e1.message).toMatch(/^bomb\.zip: entry "adapter_model\.safetensors": declares 1073741824 bytes, more than allowed: a rank-4 LoRA adapter of this llama model \(\d+ layers\) is at most \d+ bytes/);
    expect(e1).toMatchObject({ file: 'bomb.zip', entry: 'adapter_model.safetensors' });
    expect(honest.bytesRead).toBeLessThan(128 * 1024); // the end record's search window, the central directory, the config
    // Declared as a plausible size: the inflate stops there, after reading a few KiB of the 1 MiB.
    const lying = new WatchedSource('bomb.zip', rawZip([deflated('adapter_config.json', files['adapter_config.json']), { name: 'adapter_model.safetensors', data: bomb, size: limit - 1, crc: 0 }]));
    const e2 = await archiveError(importAdapter(lying, model));
    expect(e2.message).toBe(`bomb.zip: entry "adapter_model.safetensors": inflates past its declared ${limit - 1} bytes (a lying or damaged archive); stopped there`);
    expect(lying.bytesRead).toBeLessThan(bomb.length / 8);
    expect(lying.peakGrowth).toBeLessThan(limit + 32 * MiB); // ~1.6 MB measured; unzipSync grew by the whole GiB
  });

  it('refuses a lying config and lying sizes, and checks the CRC', async () => {
    const model = await config('llama');
    const files = await adapterFiles(model);
    const weights = files['adapter_model.safetensors'];
    const cfg = deflated('adapter_config.json', files['adapter_config.json']);
    // adapter_config.json declaring 10 bytes, inflating to 2 MiB of zeros.
    const bigConfig = rawZip([{ name: 'adapter_config.json', data: zeroBomb(2), size: 10, crc: 0 }]);
    expect((await archiveError(openAdapterArchive(bigConfig, model, 'c.zip'))).message).toMatch(/^c\.zip: entry "adapter_config\.json": inflates past its declared 10 bytes/);
    const hugeConfig = rawZip([{ name: 'adapter_config.json', data: zeroBomb(2), size: 2 * MiB, crc: 0 }]);
    expect((await archiveError(openAdapterArchive(hugeConfig, model, 'c.zip'))).message).toBe(`c.zip: entry "adapter_config.json": declares ${2 * MiB} bytes, more than allowed: adapter_config.json is at most ${CONFIG_LIMIT} bytes`);
    // Declaring more than it holds.
    const short = rawZip([cfg, { ...deflated('adapter_model.safetensors', weights), size: weights.length + 100 }]);
    expect((await archiveError(openAdapterArchive(short, model, 's.zip'))).message).toBe(`s.zip: entry "adapter_model.safetensors": inflates to ${weights.length} bytes, but declares ${weights.length + 100} (a lying or damaged archive)`);
    const badCrc = rawZip([cfg, { ...deflated('adapter_model.safetensors', weights), crc: 1234 }]);
    expect((await archiveError(openAdapterArchive(badCrc, model, 'k.zip'))).message).toBe('k.zip: entry "adapter_model.safetensors": CRC-32 mismatch (a damaged archive)');
    const notDeflate = rawZip([cfg, { name: 'adapter_model.safetensors', data: new Uint8Array([0xff, 0xff, 0xff, 0xff]), size: 100 }]);
    expect((await archiveError(openAdapterArchive(notDeflate, model, 'd.zip'))).message).toMatch(/^d\.zip: entry "adapter_model\.safetensors": not a valid deflate stream/);
    const rank = rawZip([deflated('adapter_config.json', new TextEncoder().encode('{"r": "big"}')), deflated('adapter_model.safetensors', weights)]);
    expect((await archiveError(openAdapterArchive(rank, model, 'r.zip'))).message).toBe('r.zip: entry "adapter_config.json": "r" must be a positive integer, got "big"');
  });

  it('refuses entries outside the archive (.., absolute paths, drive letters) and names the entry', async () => {
    const model = await config('llama');
    const files = await adapterFiles(model);
    const cfg = deflated('adapter_config.json', files['adapter_config.json']);
    for (const [name, why] of [
      ['../adapter_model.safetensors', '".." path component'],
      ['run/../../etc/passwd', '".." path component'],
      ['..\\..\\evil.txt', '".." path component'],
      ['/etc/passwd', 'absolute path'],
      ['C:/Windows/evil.dll', 'absolute path'],
    ]) {
      const err = await archiveError(openAdapterArchive(rawZip([cfg, deflated(name, new Uint8Array(4))]), model, 't.zip'));
      expect(err.entry).toBe(name);
      expect(err.message).toContain(`t.zip: entry "${name}": `);
      expect(err.message).toContain(why);
    }
  });

  it('refuses two adapters in one archive, duplicate entries, and what is not a zip', async () => {
    const model = await config('llama');
    const files = await adapterFiles(model);
    const two = zipSync({ 'a/adapter_config.json': files['adapter_config.json'], 'b/adapter_config.json': files['adapter_config.json'] });
    expect((await archiveError(openAdapterArchive(two, model, 'two.zip'))).message).toBe('two.zip: several adapters in the archive (a/adapter_config.json, b/adapter_config.json); zip one');
    const cfg = deflated('adapter_config.json', files['adapter_config.json']);
    const dup = rawZip([cfg, deflated('adapter_model.safetensors', files['adapter_model.safetensors']), deflated('adapter_model.safetensors', new Uint8Array(8))]);
    expect((await archiveError(openAdapterArchive(dup, model, 'dup.zip'))).message).toBe('dup.zip: entry "adapter_model.safetensors": appears twice in the archive');
    expect((await archiveError(openAdapterArchive(new Uint8Array(100), model, 'x.zip'))).message).toBe('x.zip: not a readable .zip (no end-of-central-directory record)');
    const whole = zipAdapter(files);
    const cut = whole.slice(0, whole.length >> 1);
    expect((await archiveError(openAdapterArchive(cut, model, 'cut.zip'))).message).toMatch(/^cut\.zip: not a readable \.zip/);
  });
});
