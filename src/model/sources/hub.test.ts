import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint, readJsonFile } from '../checkpoint.ts';
import { writeSafetensors } from '../safetensors.ts';
import { MemoryModelCache, checkStorageQuota, requestPersistentStorage, type ModelCache } from './cache.ts';
import { OpfsModelCache } from './cache-opfs.ts';
import { NodeModelCache } from './cache-node.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeDirectoryHandle } from './testing-fs.ts';
import { FakeHub } from './testing-hub-server.ts';
import {
  HubError,
  deleteCachedModel,
  downloadModel,
  hubCacheKey,
  hubModel,
  listCachedModels,
  listModelFiles,
  parseContentRange,
  type DownloadProgress,
  type HubOptions,
} from './hub.ts';

// ---------------------------------------------------------------------------------------------------------------
// Fixtures: small models made here, in the Hub's layout

function ramp(n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * scale));
}

const W = ramp(256 * 256, 0.01); // 256 KB: a "large" file of many body chunks
const B = ramp(256, 0.3);
const weights = writeSafetensors({ 'model.w': { dtype: 'F32', shape: [256, 256], data: W }, 'model.b': { dtype: 'F32', shape: [256], data: B } });
const config = JSON.stringify({ model_type: 'llama', hidden_size: 256 });
const tokenizer = JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: {} } });
const tokenizerConfig = JSON.stringify({ eos_token: '</s>' });

const shard1 = writeSafetensors({ 'a.weight': { dtype: 'F32', shape: [64, 64], data: ramp(4096, 0.02) } });
const shard2 = writeSafetensors({ 'b.weight': { dtype: 'F32', shape: [32], data: ramp(32, 0.5) } });
const index = JSON.stringify({ metadata: {}, weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' } });

const TOKEN = 'hf_test_secret_token';
const hub = new FakeHub();

beforeAll(async () => {
  hub.addRepo('org/tiny', {
    files: { 'config.json': config, 'tokenizer.json': tokenizer, 'tokenizer_config.json': tokenizerConfig, 'model.safetensors': weights },
  });
  hub.addRepo('org/sharded', {
    files: {
      'config.json': config,
      'tokenizer.json': tokenizer,
      'tokenizer_config.json': tokenizerConfig,
      'generation_config.json': '{"eos_token_id": 2}',
      'model.safetensors.index.json': index,
      'model-00001-of-00002.safetensors': shard1,
      'model-00002-of-00002.safetensors': shard2,
    },
  });
  hub.addRepo('org/gated', { files: { 'config.json': config, 'model.safetensors': weights }, token: TOKEN });
  hub.addRepo('org/weights-only', { files: { 'model.safetensors': weights } });
  await hub.start();
});

afterAll(() => hub.stop());
afterEach(() => {
  hub.requests.length = 0;
});

function open(repo: string, options: HubOptions = {}) {
  return hubModel(repo, { baseUrl: hub.baseUrl, retryDelayMs: 0, progressIntervalMs: 0, ...options });
}

/** A fetch that fails like a machine with no network, counting attempts. */
function offlineFetch(): typeof fetch & { calls: number } {
  const f = (async () => {
    f.calls++;
    throw new TypeError('fetch failed');
  }) as unknown as typeof fetch & { calls: number };
  f.calls = 0;
  return f;
}

/** A clock that moves 10 ms each time it is read, so rates are measurable and deterministic enough to check. */
function tickingClock(): () => number {
  let t = 0;
  return () => (t += 10);
}

/** Byte equality without vitest's element-by-element diff (slow on 256 KB): the first differing byte on failure. */
function expectSameBytes(actual: ArrayBufferView, expected: ArrayBufferView): void {
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  expect(a.length).toBe(b.length);
  const first = a.findIndex((v, i) => v !== b[i]);
  expect(first, `first differing byte`).toBe(-1);
}

async function expectHubError(promise: Promise<unknown>, pattern: RegExp): Promise<HubError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(HubError);
  expect((error as Error).message).toMatch(pattern);
  return error as HubError;
}

// ---------------------------------------------------------------------------------------------------------------

describe('hub source: URLs and ids', () => {
  it('builds resolve URLs with the base, revision and encoded path', () => {
    const files = hubModel('org/tiny', { baseUrl: 'http://h.test/', revision: 'refs/pr/1' });
    expect(files.url('model.safetensors')).toBe('http://h.test/org/tiny/resolve/refs%2Fpr%2F1/model.safetensors');
    expect(files.url('sub dir/a.json')).toBe('http://h.test/org/tiny/resolve/refs%2Fpr%2F1/sub%20dir/a.json');
    expect(hubModel('org/tiny').url('config.json')).toBe('https://huggingface.co/org/tiny/resolve/main/config.json');
    expect(hubCacheKey('org/tiny')).toBe('org/tiny@main');
    expect(hubCacheKey('org/tiny', { baseUrl: 'http://h.test', revision: 'v1' })).toBe('http://h.test/org/tiny@v1');
  });

  it('rejects ids and paths that are not a repo or a file inside it', () => {
    expect(() => hubModel('../etc')).toThrow(/not a Hub repo id/);
    expect(() => hubModel('a/b/c')).toThrow(/not a Hub repo id/);
    expect(() => hubModel('org/tiny').url('../x')).toThrow(/not a file path/);
    expect(() => hubModel('org/tiny').url('/abs')).toThrow(/not a file path/);
  });

  it('parses Content-Range', () => {
    expect(parseContentRange('bytes 100-199/1000')).toEqual({ start: 100, total: 1000 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, total: null });
    expect(parseContentRange('items 1-2/3')).toBeNull();
  });
});

describe('hub source: download, cache, offline', () => {
  it('downloads with progress, then loads the checkpoint from the cache', async () => {
    const cache = new MemoryModelCache();
    const events: DownloadProgress[] = [];
    const files = open('org/tiny', { cache, onProgress: (p) => events.push(p), now: tickingClock() });
    const source = await files.open('model.safetensors');
    expect(source?.size).toBe(weights.length);

    const own = events.filter((e) => e.file === 'model.safetensors');
    expect(own.length).toBeGreaterThan(2);
    for (let i = 1; i < own.length; i++) expect(own[i].bytesDone).toBeGreaterThanOrEqual(own[i - 1].bytesDone);
    const last = own[own.length - 1];
    expect(last).toMatchObject({ fileDone: weights.length, fileTotal: weights.length, bytesDone: weights.length, bytesTotal: weights.length, etaSeconds: 0 });
    expect(last.rate).toBeGreaterThan(0);
    const middle = own.find((e) => e.bytesDone > 0 && e.bytesDone < weights.length && e.rate > 0);
    expect(middle?.etaSeconds).toBeCloseTo((weights.length - middle!.bytesDone) / middle!.rate, 6);

    const checkpoint = await Checkpoint.open(files);
    expectSameBytes(await checkpoint.readTensor('model.w', 'f32'), W);
    expectSameBytes(await checkpoint.readTensor('model.b', 'f32'), B);
    // Opening the same file again comes from the cache: one GET for the weights in all.
    expect(hub.requests.filter((r) => r.path === 'model.safetensors' && r.method === 'GET')).toHaveLength(1);
  });

  it('a second load works offline: config, tokenizer, weights from the cache, absent optional files stay absent', async () => {
    const cache = new MemoryModelCache();
    const online = open('org/tiny', { cache });
    await downloadModel(online);
    expect(await online.open('generation_config.json')).toBeNull(); // already known absent, asked once

    const fetchFn = offlineFetch();
    const offline = open('org/tiny', { cache, fetch: fetchFn });
    expect(await readJsonFile(offline, 'config.json')).toEqual(JSON.parse(config));
    expect(await readJsonFile(offline, 'tokenizer_config.json')).toEqual(JSON.parse(tokenizerConfig));
    expect(await offline.open('generation_config.json')).toBeNull();
    const checkpoint = await Checkpoint.open(offline);
    expectSameBytes(await checkpoint.readTensor('model.w', 'f32'), W);
    expect(fetchFn.calls).toBe(0);

    // Something never downloaded needs the network, and says so.
    await expectHubError(offline.open('vocab.txt'), /vocab\.txt failed.*not in the cache yet/);
  });

  it('resumes a dropped download with a Range request for the missing bytes only', async () => {
    const cache = new MemoryModelCache();
    hub.dropNext('model.safetensors', 100_000);
    const events: DownloadProgress[] = [];
    await expectHubError(open('org/tiny', { cache, retries: 0 }).open('model.safetensors'), /download of model\.safetensors failed.*resumes/);
    const partial = await cache.file(hubCacheKey('org/tiny', { baseUrl: hub.baseUrl }), 'model.safetensors');
    expect(partial!.done).toBeGreaterThan(0);
    expect(partial!.done).toBeLessThanOrEqual(100_000);
    expect(partial!.size).toBe(weights.length);

    const resumed = open('org/tiny', { cache, onProgress: (p) => events.push(p), now: tickingClock() });
    const source = await resumed.open('model.safetensors');
    const gets = hub.requests.filter((r) => r.path === 'model.safetensors' && r.method === 'GET');
    expect(gets).toHaveLength(2);
    expect(gets[0]).toMatchObject({ range: null, status: 200 });
    expect(gets[1]).toMatchObject({ range: `bytes=${partial!.done}-`, status: 206 });
    expect(gets[1].bytes).toBe(weights.length - partial!.done);
    // The first progress event of the resume starts at the cached bytes, with no rate claimed for them.
    expect(events[0]).toMatchObject({ bytesDone: partial!.done, rate: 0 });
    expectSameBytes(await source!.read(0, weights.length), weights);
  });

  it('resumes on its own after a drop when retries allow', async () => {
    const cache = new MemoryModelCache();
    hub.dropNext('model.safetensors', 50_000);
    const source = await open('org/tiny', { cache, retries: 2 }).open('model.safetensors');
    expectSameBytes(await source!.read(0, weights.length), weights);
    const gets = hub.requests.filter((r) => r.path === 'model.safetensors' && r.method === 'GET');
    expect(gets.map((r) => r.status)).toEqual([200, 206]);
    expect(hub.bytesServed('model.safetensors')).toBeLessThanOrEqual(weights.length + 50_000);
    expect(gets[0].bytes + gets[1].bytes).toBeGreaterThanOrEqual(weights.length);
  });

  it.each([
    ['longer', 100_000, 206], // the range is served, with another ETag: cancelled
    ['shorter', 3_000, 416], // the stored bytes reach past the new end
  ])('starts over when the file changed on the server between the drop and the resume (%s)', async (_, floats, status) => {
    const cache = new MemoryModelCache();
    const repo = `org/changing-${floats}`;
    hub.addRepo(repo, { files: { 'model.safetensors': weights } });
    hub.dropNext('model.safetensors', 60_000);
    await expectHubError(open(repo, { cache, retries: 0 }).open('model.safetensors'), /failed/);
    const changed = writeSafetensors({ x: { dtype: 'F32', shape: [floats], data: ramp(floats, 0.7) } });
    hub.addRepo(repo, { files: { 'model.safetensors': changed } });
    const source = await open(repo, { cache }).open('model.safetensors');
    const gets = hub.requests.filter((r) => r.repo === repo && r.method === 'GET');
    expect(gets.map((r) => [r.range === null ? 'whole' : 'range', r.status])).toEqual([
      ['whole', 200],
      ['range', status],
      ['whole', 200],
    ]);
    expect(source!.size).toBe(changed.length);
    expectSameBytes(await source!.read(0, changed.length), changed);
  });

  it('resumes when a cross-origin 206 hides its Content-Range', async () => {
    const cache = new MemoryModelCache();
    hub.dropNext('model.safetensors', 70_000);
    await expectHubError(open('org/tiny', { cache, retries: 0 }).open('model.safetensors'), /failed/);
    const hiding: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const headers = new Headers(response.headers);
      headers.delete('Content-Range');
      return new Response(response.body, { status: response.status, headers });
    };
    const source = await open('org/tiny', { cache, fetch: hiding }).open('model.safetensors');
    expect(source!.size).toBe(weights.length);
    expectSameBytes(await source!.read(0, weights.length), weights);
  });

  it('stops on abort keeping the bytes, and a later open resumes', async () => {
    const cache = new MemoryModelCache();
    const controller = new AbortController();
    const stopping = open('org/tiny', { cache, signal: controller.signal, onProgress: (p) => p.bytesDone > 30_000 && controller.abort() });
    await expectHubError(stopping.open('model.safetensors'), /download of model\.safetensors stopped; opening it again resumes it/);
    const kept = (await cache.file(stopping.key, 'model.safetensors'))!.done;
    expect(kept).toBeGreaterThan(30_000);
    const source = await open('org/tiny', { cache }).open('model.safetensors');
    const gets = hub.requests.filter((r) => r.path === 'model.safetensors' && r.method === 'GET');
    expect(gets[gets.length - 1].range).toBe(`bytes=${kept}-`);
    expectSameBytes(await source!.read(0, weights.length), weights);
  });

  it('loads through a disk cache, offline the second time (the CLI with a repo id)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hub-cache-'));
    try {
      await downloadModel(open('org/sharded', { cache: new NodeModelCache(dir) }));
      const offline = open('org/sharded', { cache: new NodeModelCache(dir), fetch: offlineFetch() });
      expect(await readJsonFile(offline, 'generation_config.json')).toEqual({ eos_token_id: 2 });
      expectSameBytes(await (await Checkpoint.open(offline)).readTensor('a.weight', 'f32'), ramp(4096, 0.02));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('downloads a sharded model with one progress stream over all files, sized up front', async () => {
    const cache = new MemoryModelCache();
    const files = open('org/sharded', { cache });
    const listed = await listModelFiles(files);
    expect(listed.files).toEqual([
      'config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'generation_config.json',
      'model.safetensors.index.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
    ]);
    expect(listed.absent).toEqual([]);
    // Listing downloads only the index (it names the shards); shards are sized with HEAD.
    expect(hub.requests.filter((r) => r.method === 'GET').map((r) => r.path)).toEqual(['model.safetensors.index.json']);

    const events: DownloadProgress[] = [];
    await downloadModel(files, (p) => events.push(p));
    const total = [config, tokenizer, tokenizerConfig, '{"eos_token_id": 2}', index].reduce((a, s) => a + s.length, 0) + shard1.length + shard2.length;
    expect(events.every((e) => e.bytesTotal === total)).toBe(true);
    for (let i = 1; i < events.length; i++) expect(events[i].bytesDone).toBeGreaterThanOrEqual(events[i - 1].bytesDone);
    expect(events[events.length - 1].bytesDone).toBe(total); // the index, cached by the listing, counts as done

    const offline = open('org/sharded', { cache, fetch: offlineFetch() });
    const checkpoint = await Checkpoint.open(offline);
    expect(checkpoint.files).toHaveLength(2);
    expectSameBytes(await checkpoint.readTensor('b.weight', 'f32'), ramp(32, 0.5));
  });

  it('lists cached models with their size and deletes one', async () => {
    const cache = new MemoryModelCache();
    await downloadModel(open('org/tiny', { cache }));
    await open('org/sharded', { cache }).open('config.json');
    const listed = await listCachedModels(cache);
    const tinyKey = hubCacheKey('org/tiny', { baseUrl: hub.baseUrl });
    const tiny = listed.find((m) => m.key === tinyKey)!;
    expect(tiny.bytes).toBe(config.length + tokenizer.length + tokenizerConfig.length + weights.length);
    expect(tiny.files.find((f) => f.path === 'generation_config.json')?.missing).toBe(true);
    await deleteCachedModel(cache, 'org/tiny', { baseUrl: hub.baseUrl });
    expect((await listCachedModels(cache)).map((m) => m.key)).toEqual([hubCacheKey('org/sharded', { baseUrl: hub.baseUrl })]);
  });
});

describe('hub source: errors', () => {
  it('a gated repo without a token asks for one; with it, loads; the token is never stored', async () => {
    const cache = new MemoryModelCache();
    await expectHubError(open('org/gated', { cache }).open('config.json'), /gated or private: add an access token.*401.*config\.json/);
    await expectHubError(open('org/gated', { cache, token: 'hf_wrong' }).open('config.json'), /access token was refused/);
    const files = open('org/gated', { cache, token: () => TOKEN });
    const checkpoint = await Checkpoint.open(files);
    expectSameBytes(await checkpoint.readTensor('model.b', 'f32'), B);
    expect(hub.requests.filter((r) => r.status === 200).every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(JSON.stringify(await cache.list())).not.toContain(TOKEN);
    expect(files.key).not.toContain(TOKEN);
  });

  it('an unknown repo says it may be private; with a token, that it does not exist', async () => {
    await expectHubError(open('org/nope').open('config.json'), /gated or private: add an access token/);
    await expectHubError(open('org/nope', { token: 'x' }).open('config.json'), /no such repository/);
    await expectHubError(open('org/tiny', { revision: 'v9' }).open('config.json'), /no revision "v9"/);
  });

  it('a missing optional file is null; a missing required file is a 404 naming it', async () => {
    const files = open('org/tiny');
    expect(await files.open('generation_config.json')).toBeNull();
    await expectHubError(files.require('generation_config.json'), /generation_config\.json not found \(HTTP 404/);
    const error = await expectHubError(listModelFiles(open('org/weights-only')), /config\.json not found \(HTTP 404/);
    expect(error.file).toBe('config.json');
    expect(error.status).toBe(404);
    hub.addRepo('org/config-only', { files: { 'config.json': config } });
    await expectHubError(listModelFiles(open('org/config-only')), /neither model\.safetensors nor model\.safetensors\.index\.json found/);
  });

  it('refuses a download that would not fit the cache storage, before writing anything', async () => {
    const cache: ModelCache = Object.assign(new MemoryModelCache(), {
      checkSpace: async (bytes: number) => (await checkStorageQuota(bytes, 'the download', { estimate: async () => ({ usage: 9_900, quota: 10_000 }) })).message,
    });
    await expectHubError(open('org/tiny', { cache }).open('model.safetensors'), /model\.safetensors: the download needs 26\d KB but only 100 B of browser storage is free/);
    expect(await cache.file(hubCacheKey('org/tiny', { baseUrl: hub.baseUrl }), 'model.safetensors')).toBeNull();
    await expectHubError(downloadModel(open('org/tiny', { cache })), /needs .* but only 100 B/);
  });
});

describe('storage helpers', () => {
  it('checkStorageQuota says what is needed and what is free', async () => {
    const storage = { estimate: async () => ({ usage: 1_500_000_000, quota: 2_000_000_000 }) };
    expect((await checkStorageQuota(100_000_000, 'x', storage)).ok).toBe(true);
    const check = await checkStorageQuota(988_000_000, 'Qwen/Qwen2.5-0.5B-Instruct', storage);
    expect(check).toMatchObject({ ok: false, available: 500_000_000 });
    expect(check.message).toBe(
      'Qwen/Qwen2.5-0.5B-Instruct needs 988 MB but only 500 MB of browser storage is free (quota 2.0 GB, 1.5 GB used): delete cached models or free disk space, then retry',
    );
    expect((await checkStorageQuota(1e12, 'x', null)).ok).toBe(true); // no StorageManager: nothing to check
  });

  it('requestPersistentStorage asks once', async () => {
    let asked = 0;
    const storage = { estimate: async () => ({}), persisted: async () => false, persist: async () => (asked++, true) };
    expect(await requestPersistentStorage(storage)).toBe(true);
    expect(await requestPersistentStorage(storage)).toBe(true);
    expect(asked).toBe(1);
  });
});

describe('hub source over the OPFS cache', () => {
  it('downloads into parts, resumes after a drop, reads across part boundaries offline', async () => {
    const root = new FakeDirectoryHandle('opfs');
    const storage = { estimate: async () => ({ usage: 0, quota: 1e9 }), persist: async () => true };
    const cache = new OpfsModelCache({ root: root.asHandle(), partBytes: 40_000, storage });
    hub.dropNext('model.safetensors', 90_000);
    await expectHubError(open('org/tiny', { cache, retries: 0 }).open('model.safetensors'), /failed/);
    const key = hubCacheKey('org/tiny', { baseUrl: hub.baseUrl });
    const partial = (await cache.file(key, 'model.safetensors'))!;
    expect(partial.done).toBeGreaterThan(0);

    await open('org/tiny', { cache }).open('model.safetensors');
    const resume = hub.requests.filter((r) => r.path === 'model.safetensors' && r.method === 'GET')[1];
    expect(resume.range).toBe(`bytes=${partial.done}-`);
    expect(resume.bytes).toBe(weights.length - partial.done);

    const offline = open('org/tiny', { cache: new OpfsModelCache({ root: root.asHandle(), partBytes: 40_000, storage }), fetch: offlineFetch() });
    const checkpoint = await Checkpoint.open(offline);
    expectSameBytes(await checkpoint.readTensor('model.w', 'f32'), W);
  });
});
