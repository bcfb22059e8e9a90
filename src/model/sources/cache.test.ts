import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CachedFileSource, MemoryModelCache, formatBytes, isComplete, type ModelCache } from './cache.ts';
import { OpfsModelCache } from './cache-opfs.ts';
import { NodeModelCache } from './cache-node.ts';
import { FakeDirectoryHandle, FakeFileHandle } from './testing-fs.ts';

const tempDirs: string[] = [];
afterAll(() => Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true }))));

/** Each implementation, plus a way to open a second instance over the same storage (a reload). */
interface Backend {
  name: string;
  make(): Promise<{ cache: ModelCache; reopen: () => ModelCache }>;
}

const backends: Backend[] = [
  {
    name: 'memory',
    async make() {
      const cache = new MemoryModelCache();
      return { cache, reopen: () => cache };
    },
  },
  {
    name: 'OPFS (fake handles, 1000-byte parts)',
    async make() {
      const root = new FakeDirectoryHandle('opfs');
      const make = () => new OpfsModelCache({ root: root.asHandle(), partBytes: 1000, storage: null });
      return { cache: make(), reopen: make };
    },
  },
  {
    name: 'Node folder',
    async make() {
      const dir = await mkdtemp(join(tmpdir(), 'model-cache-'));
      tempDirs.push(dir);
      const make = () => new NodeModelCache(dir, 1000);
      return { cache: make(), reopen: make };
    },
  },
];

const content = Uint8Array.from({ length: 3500 }, (_, i) => (i * 37 + 11) % 251);
const KEY = 'http://127.0.0.1:1234/org/model@refs/pr/1';

async function writeAll(cache: ModelCache, key: string, path: string, bytes: Uint8Array, chunk = 300, from = 0): Promise<void> {
  const writer = await cache.writer(key, path, { from, size: bytes.length, etag: '"e1"' });
  for (let at = from; at < bytes.length; at += chunk) await writer.write(bytes.subarray(at, Math.min(bytes.length, at + chunk)));
  await writer.close(true);
}

describe.each(backends)('ModelCache: $name', (backend) => {
  it('stores a file written in chunks and reads any range back, also after a reload', async () => {
    const { cache, reopen } = await backend.make();
    expect(await cache.file(KEY, 'model.safetensors')).toBeNull();
    await writeAll(cache, KEY, 'model.safetensors', content);
    const meta = await cache.file(KEY, 'model.safetensors');
    expect(meta).toEqual({ path: 'model.safetensors', size: 3500, done: 3500, etag: '"e1"', missing: false });
    expect(isComplete(meta)).toBe(true);
    for (const cacheNow of [cache, reopen()]) {
      for (const [offset, length] of [[0, 3500], [0, 1], [999, 2], [990, 1020], [2999, 501], [3400, 500]]) {
        expect(Array.from(await cacheNow.read(KEY, 'model.safetensors', offset, length))).toEqual(Array.from(content.subarray(offset, offset + length)));
      }
    }
    const source = new CachedFileSource(reopen(), KEY, 'model.safetensors', 'x', 3500);
    expect(Array.from(await source.read(1990, 20))).toEqual(Array.from(content.subarray(1990, 2010)));
  });

  it('keeps the bytes of an interrupted write, resumes from them, refuses a resume elsewhere', async () => {
    const { cache, reopen } = await backend.make();
    const writer = await cache.writer(KEY, 'w.bin', { from: 0, size: 3500, etag: '"e1"' });
    await writer.write(content.subarray(0, 1700));
    await writer.close(false);
    const partial = await reopen().file(KEY, 'w.bin');
    expect(partial).toMatchObject({ size: 3500, done: 1700, missing: false });
    expect(isComplete(partial)).toBe(false);

    await expect(reopen().writer(KEY, 'w.bin', { from: 1000, size: 3500, etag: null })).rejects.toThrow(/cannot resume at byte 1000, 1700 bytes are stored/);
    await writeAll(reopen(), KEY, 'w.bin', content, 450, 1700);
    const resumed = reopen();
    expect(await resumed.file(KEY, 'w.bin')).toMatchObject({ size: 3500, done: 3500, etag: '"e1"' });
    expect(Array.from(await resumed.read(KEY, 'w.bin', 0, 3500))).toEqual(Array.from(content));
  });

  it('starts a file over from 0, dropping the old bytes', async () => {
    const { cache } = await backend.make();
    await writeAll(cache, KEY, 'f', content);
    const shorter = content.subarray(100, 1300);
    await writeAll(cache, KEY, 'f', shorter, 256);
    expect(await cache.file(KEY, 'f')).toMatchObject({ size: 1200, done: 1200 });
    expect(Array.from(await cache.read(KEY, 'f', 0, 5000))).toEqual(Array.from(shorter));
  });

  it('remembers missing files, lists models with sizes, deletes one', async () => {
    const { cache, reopen } = await backend.make();
    await writeAll(cache, KEY, 'model.safetensors', content);
    await writeAll(cache, KEY, 'config.json', content.subarray(0, 10));
    await cache.markMissing(KEY, 'generation_config.json');
    await writeAll(cache, 'org/other@main', 'config.json', content.subarray(0, 5));
    const after = reopen();
    expect(await after.file(KEY, 'generation_config.json')).toMatchObject({ missing: true, done: 0 });
    expect(isComplete(await after.file(KEY, 'generation_config.json'))).toBe(false);
    const listed = (await after.list()).sort((a, b) => a.key.localeCompare(b.key));
    expect(listed.map((m) => [m.key, m.bytes])).toEqual([
      [KEY, 3510],
      ['org/other@main', 5],
    ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))));
    expect(listed.find((m) => m.key === KEY)!.files.map((f) => f.path).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors']);
    await after.delete(KEY);
    expect((await reopen().list()).map((m) => m.key)).toEqual(['org/other@main']);
    expect(await reopen().file(KEY, 'config.json')).toBeNull();
    await reopen().delete('never-stored'); // deleting nothing is fine
  });
});

describe('OpfsModelCache specifics', () => {
  it('writes each part once, with no keepExistingData copies, on a straight download', async () => {
    const root = new FakeDirectoryHandle('opfs');
    const cache = new OpfsModelCache({ root: root.asHandle(), partBytes: 1000, storage: null });
    await writeAll(cache, 'k', 'model.safetensors', content, 128);
    const dir = (await (await root.getDirectoryHandle('models')).getDirectoryHandle('k')) as FakeDirectoryHandle;
    const parts = [...dir.children.values()].filter((c) => c.name.startsWith('model.safetensors.')) as FakeFileHandle[];
    expect(parts.map((p) => [p.name, p.bytes.length, p.opens, p.keptOpens]).sort()).toEqual([
      ['model.safetensors.0', 1000, 1, 0],
      ['model.safetensors.1', 1000, 1, 0],
      ['model.safetensors.2', 1000, 1, 0],
      ['model.safetensors.3', 500, 1, 0],
    ]);
  });

  it('after a killed tab (stream never closed) counts only closed parts, and a resume overwrites the torn part', async () => {
    const root = new FakeDirectoryHandle('opfs');
    const make = () => new OpfsModelCache({ root: root.asHandle(), partBytes: 1000, storage: null });
    const writer = await make().writer('k', 'w', { from: 0, size: 3500, etag: null });
    await writer.write(content.subarray(0, 2600)); // parts 0, 1 closed; part 2 open with 600 bytes
    // No close(): the tab is gone. Part 2's stream never committed.
    const after = make();
    expect(await after.file('k', 'w')).toMatchObject({ done: 2000 });
    await writeAll(after, 'k', 'w', content, 700, 2000);
    expect(Array.from(await make().read('k', 'w', 0, 3500))).toEqual(Array.from(content));
  });

  it('a torn manifest counts nothing rather than something wrong', async () => {
    const root = new FakeDirectoryHandle('opfs');
    const cache = new OpfsModelCache({ root: root.asHandle(), partBytes: 1000, storage: null });
    await writeAll(cache, 'k', 'w', content);
    const dir = await (await root.getDirectoryHandle('models')).getDirectoryHandle('k');
    (await dir.getFileHandle('manifest.json')).bytes = new TextEncoder().encode('{"key":"k","fi');
    expect(await new OpfsModelCache({ root: root.asHandle(), partBytes: 1000, storage: null }).file('k', 'w')).toBeNull();
  });

  it('checks the quota and asks for persistent storage once, on the first write', async () => {
    let persistCalls = 0;
    const storage = { estimate: async () => ({ usage: 900, quota: 1000 }), persist: async () => (persistCalls++, true) };
    const cache = new OpfsModelCache({ root: new FakeDirectoryHandle('opfs').asHandle(), storage });
    expect(await cache.checkSpace(50)).toBeNull();
    expect(await cache.checkSpace(5000)).toMatch(/needs 5.0 KB but only 100 B of browser storage is free/);
    await writeAll(cache, 'k', 'a', content.subarray(0, 10));
    await writeAll(cache, 'k', 'b', content.subarray(0, 10));
    expect(persistCalls).toBe(1);
  });
});

describe('NodeModelCache specifics', () => {
  it('records progress in the manifest while writing, so a killed process resumes near where it stopped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'model-cache-'));
    tempDirs.push(dir);
    const writer = await new NodeModelCache(dir, 1000).writer('k', 'w', { from: 0, size: 3500, etag: null });
    for (let at = 0; at < 2600; at += 200) await writer.write(content.subarray(at, at + 200));
    // No close(): the process died. The manifest was last written when 1000 more bytes had arrived.
    expect((await new NodeModelCache(dir).file('k', 'w'))!.done).toBe(2000);
  });
});

it('formatBytes', () => {
  expect([0, 999, 1000, 1536, 262_144, 988_000_000, 2_000_000_000].map(formatBytes)).toEqual(['0 B', '999 B', '1.0 KB', '1.5 KB', '262 KB', '988 MB', '2.0 GB']);
});
