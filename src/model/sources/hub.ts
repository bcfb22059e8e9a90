// A Hugging Face Hub repository as ModelFiles: files are fetched from `${baseUrl}/${repo}/resolve/${revision}/${path}`
// into a ModelCache, front to back, with progress; a broken download resumes with an HTTP Range request for the bytes
// the cache does not have yet; a file already in the cache is read from it with no network at all (offline loads).
// A file the Hub does not have is remembered as missing, so an offline load knows optional files are absent too.
//
// The access token (gated or private repos) lives only in the options the caller passes: it is sent as
// `Authorization: Bearer …` and never written to the cache, its manifest, a URL or an error message.
//
// Caching is by revision name: "main" stays what it was when first downloaded until the model is deleted from the
// cache. Pin a commit hash as the revision to make that explicit.

import { builtConnectSrc, connectSrcAllows } from './connect-policy.ts';
import type { ByteSource } from '../safetensors.ts';
import { INDEX_FILE, SINGLE_FILE, readText, type ModelFiles } from '../checkpoint.ts';
import { CachedFileSource, MemoryModelCache, formatBytes, isComplete, type CachedModel, type ModelCache } from './cache.ts';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export interface DownloadProgress {
  /** The file being downloaded. */
  file: string;
  fileDone: number;
  /** null while the server has not said. */
  fileTotal: number | null;
  /** Over everything this download covers (one file for `open`, the whole model for `downloadModel`). */
  bytesDone: number;
  bytesTotal: number | null;
  /** Bytes per second received over the last few seconds (0 until measurable). */
  rate: number;
  /** Seconds left at that rate; null when unknown. */
  etaSeconds: number | null;
}

export type ProgressListener = (progress: DownloadProgress) => void;

export interface HubOptions {
  baseUrl?: string;
  /** Branch, tag or commit hash. Default "main". */
  revision?: string;
  /** Access token for gated or private repos, or a function that returns the current one. */
  token?: string | null | (() => string | null | undefined);
  /** Default: a MemoryModelCache (nothing survives a reload); the studio passes an OpfsModelCache. */
  cache?: ModelCache;
  onProgress?: ProgressListener;
  /** Aborting keeps what was downloaded: the next open resumes from there. */
  signal?: AbortSignal;
  /** How many times a download broken by the network resumes on its own before the error surfaces. Default 3. */
  retries?: number;
  /** Wait before the first automatic resume, doubling each time. Default 1000. */
  retryDelayMs?: number;
  /** At most one progress event per this many ms (the last one of each file always comes). Default 100. */
  progressIntervalMs?: number;
  fetch?: typeof fetch;
  /** The Content-Security-Policy connect-src the page runs under (default: the built studio's, builtConnectSrc();
   *  null: none). A Hub address outside it is refused before any request, with how to allow it. */
  connectSrc?: readonly string[] | null;
  /** Clock in ms, for the rate (tests). */
  now?: () => number;
}

/** An answer from the Hub that means the load cannot go on. `file` is the path in the repo, when about one file. */
export class HubError extends Error {
  constructor(
    message: string,
    readonly status: number | null = null,
    readonly file: string | null = null,
  ) {
    super(message);
    this.name = 'HubError';
  }
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/;

/** The cache key of a repo at a revision: "org/name@main" on huggingface.co, else prefixed by the base URL. */
export function hubCacheKey(repo: string, options: Pick<HubOptions, 'baseUrl' | 'revision'> = {}): string {
  const base = trimBase(options.baseUrl ?? DEFAULT_HUB_URL);
  const id = `${repo}@${options.revision ?? 'main'}`;
  return base === DEFAULT_HUB_URL ? id : `${base}/${id}`;
}

function trimBase(url: string): string {
  return url.replace(/\/+$/, '');
}

/** The files of a Hub repo at a revision. Create one per load; `open` downloads (or finds in the cache) the whole
 *  file before returning it, so reads are local. */
export class HubModelFiles implements ModelFiles {
  readonly name: string;
  readonly key: string;
  readonly cache: ModelCache;
  private readonly baseUrl: string;
  private readonly revision: string;
  private readonly inFlight = new Map<string, Promise<ByteSource | null>>();

  constructor(
    readonly repo: string,
    private readonly options: HubOptions = {},
  ) {
    if (!REPO_ID.test(repo) || repo.includes('..')) throw new HubError(`"${repo}" is not a Hub repo id (expected "owner/name")`);
    this.baseUrl = trimBase(options.baseUrl ?? DEFAULT_HUB_URL);
    this.revision = options.revision ?? 'main';
    this.key = hubCacheKey(repo, options);
    this.name = this.key;
    this.cache = options.cache ?? new MemoryModelCache();
  }

  url(path: string): string {
    checkPath(path);
    const encodedPath = path.split('/').map(encodeURIComponent).join('/');
    return `${this.baseUrl}/${this.repo}/resolve/${encodeURIComponent(this.revision)}/${encodedPath}`;
  }

  /** The file, downloaded into the cache if it is not complete there yet; null when the repo has no such file. */
  open(path: string, onProgress?: ProgressListener): Promise<ByteSource | null> {
    let pending = this.inFlight.get(path);
    if (!pending) {
      pending = this.fetchFile(path, onProgress ?? this.options.onProgress).finally(() => this.inFlight.delete(path));
      this.inFlight.set(path, pending);
    }
    return pending;
  }

  /** Like `open`, but a missing file is an error naming it. */
  async require(path: string, onProgress?: ProgressListener): Promise<ByteSource> {
    const source = await this.open(path, onProgress);
    if (!source) throw new HubError(`${this.key}: ${path} not found (HTTP 404 at ${this.url(path)})`, 404, path);
    return source;
  }

  /** The size of a file without downloading it (from the cache, else a HEAD request); null when there is none. */
  async stat(path: string): Promise<{ size: number | null; cached: number } | null> {
    const cached = await this.cache.file(this.key, path);
    if (cached?.missing) return null;
    if (cached && isComplete(cached)) return { size: cached.size, cached: cached.done };
    const response = await this.request(path, 'HEAD', {});
    if (response === null) {
      await this.cache.markMissing(this.key, path);
      return null;
    }
    return { size: contentLength(response), cached: cached?.done ?? 0 };
  }

  private async fetchFile(path: string, onProgress: ProgressListener | undefined): Promise<ByteSource | null> {
    checkPath(path);
    const cached = await this.cache.file(this.key, path);
    if (cached?.missing) return null;
    if (cached && isComplete(cached)) return this.cachedSource(path, cached.size!);

    const retries = this.options.retries ?? 3;
    const meter = new ProgressMeter(path, onProgress, this.options.now, this.options.progressIntervalMs ?? 100);
    for (let attempt = 0; ; attempt++) {
      try {
        const size = await this.download(path, meter);
        return size === null ? null : this.cachedSource(path, size);
      } catch (e) {
        const offline = (globalThis as { navigator?: { onLine?: boolean } }).navigator?.onLine === false;
        if (e instanceof HubError || this.options.signal?.aborted || offline || attempt >= retries) throw this.explain(e, path);
        // A broken connection: resume from what the cache now holds, after a pause that grows with each try.
        await sleep((this.options.retryDelayMs ?? 1000) * 2 ** attempt);
      }
    }
  }

  private cachedSource(path: string, size: number): ByteSource {
    return new CachedFileSource(this.cache, this.key, path, `${this.key}/${path}`, size);
  }

  /** Downloads the rest of `path` into the cache. Returns its size, or null when the repo has no such file. */
  private async download(path: string, meter: ProgressMeter): Promise<number | null> {
    const cached = await this.cache.file(this.key, path);
    const have = cached && !cached.missing ? cached.done : 0;
    // Only a plain single range: "Range: bytes=N-" is CORS-safelisted, If-Range is not (it would add a preflight,
    // which the Hub's CDN may not answer). A changed file is caught by comparing ETags below instead.
    let response = await this.request(path, 'GET', have > 0 ? { Range: `bytes=${have}-` } : {});
    const changed = response?.status === 206 && cached?.etag && response.headers.get('ETag') && response.headers.get('ETag') !== cached.etag;
    if (changed || response?.status === 416) {
      // The file changed since the stored bytes were fetched (another ETag, or now shorter than them): start over.
      await response!.body?.cancel();
      response = await this.request(path, 'GET', {});
    }
    if (response === null) {
      await this.cache.markMissing(this.key, path);
      return null;
    }

    // 206 continues the stored bytes; 200 (the server ignored the range) starts over.
    let from = 0;
    let size = contentLength(response);
    if (response.status === 206) {
      const header = response.headers.get('Content-Range');
      const range = parseContentRange(header);
      if (header !== null && range?.start !== have) {
        await response.body?.cancel();
        throw new HubError(`${this.key}: ${path}: the server answered a resume from byte ${have} with "Content-Range: ${header}"`, 206, path);
      }
      // A cross-origin response may hide Content-Range; a 206 to one "bytes=N-" range is that range.
      from = have;
      size = range ? range.total : size === null ? cached!.size : have + size;
    }
    const etag = response.headers.get('ETag');
    if (size !== null && this.cache.checkSpace) {
      const problem = await this.cache.checkSpace(size - from);
      if (problem) {
        await response.body?.cancel();
        throw new HubError(`${this.key}: ${path}: ${problem}`, null, path);
      }
    }

    const writer = await this.cache.writer(this.key, path, { from, size, etag });
    meter.start(from, size);
    let complete = false;
    try {
      if (response.body) {
        const reader = response.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (size !== null && writer.position + value.length > size) {
            throw new HubError(`${this.key}: ${path}: the server sent more than the ${size} bytes it declared`, response.status, path);
          }
          await writer.write(value);
          meter.update(writer.position);
        }
      }
      // A body that ends early without an error is a broken download too: resume it.
      if (size !== null && writer.position < size) throw new TypeError(`connection closed after ${writer.position} of ${size} bytes`);
      complete = true;
    } finally {
      await writer.close(complete);
    }
    meter.finish(writer.position);
    return writer.position;
  }

  /** One request; null for "no such file"; throws HubError on answers that stop the load. */
  private async request(path: string, method: 'GET' | 'HEAD', headers: Record<string, string>): Promise<Response | null> {
    const token = typeof this.options.token === 'function' ? this.options.token() : this.options.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    const policy = this.options.connectSrc === undefined ? builtConnectSrc() : this.options.connectSrc;
    const selfOrigin = (globalThis as { location?: { origin?: string } }).location?.origin ?? null;
    if (policy && !connectSrcAllows(this.url(path), policy, selfOrigin)) {
      const origin = new URL(this.baseUrl).origin;
      throw new HubError(
        `${this.key}: ${origin} is not an address this build of the studio may connect to (its Content-Security-Policy allows ${policy.join(' ')}); to use this Hub, build the studio with LORA_STUDIO_CONNECT_SRC="${origin}"`,
        null,
        path,
      );
    }
    const fetchFn = this.options.fetch ?? globalThis.fetch;
    const response = await fetchFn(this.url(path), { method, headers, signal: this.options.signal });
    const status = response.status;
    if (response.ok) return response;
    if (method === 'GET' && status !== 416) await response.body?.cancel();
    const code = response.headers.get('X-Error-Code');
    if (status === 401 || status === 403) {
      const hint = token
        ? 'gated or private, and the access token was refused: check it has read access and that you accepted the model\'s terms on its Hub page'
        : 'gated or private: add an access token (or check the repo id)';
      throw new HubError(`${this.key}: ${hint} (HTTP ${status} for ${path})`, status, path);
    }
    if (status === 404 && code === 'RepoNotFound') throw new HubError(`${this.key}: no such repository on ${this.baseUrl} (HTTP 404 for ${path})`, status, path);
    if (status === 404 && code === 'RevisionNotFound') throw new HubError(`${this.key}: no revision "${this.revision}" (HTTP 404 for ${path})`, status, path);
    if (status === 404) return null;
    if (status === 416 && headers.Range) return response; // the stored bytes reach past the file's end: it changed
    throw new HubError(`${this.key}: ${path}: HTTP ${status} ${response.statusText} from ${this.url(path)}`, status, path);
  }

  /** Network errors say which file and that the download can resume; HubErrors pass through. */
  private explain(e: unknown, path: string): Error {
    if (e instanceof HubError) return e;
    const error = e as Error;
    if (this.options.signal?.aborted) return new HubError(`${this.key}: download of ${path} stopped; opening it again resumes it`, null, path);
    return new HubError(`${this.key}: download of ${path} failed (${error?.message ?? String(e)}); it is not in the cache yet, so this needs the network. Opening it again resumes it.`, null, path);
  }
}

export function hubModel(repo: string, options: HubOptions = {}): HubModelFiles {
  return new HubModelFiles(repo, options);
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

function checkPath(path: string): void {
  if (path === '' || path.startsWith('/') || path.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new HubError(`"${path}" is not a file path inside the repo`, null, path);
  }
}

function contentLength(response: Response): number | null {
  // A compressed body's Content-Length counts compressed bytes, not the ones the reader gives.
  if (response.headers.get('Content-Encoding')) return null;
  const value = response.headers.get('Content-Length');
  return value !== null && /^\d+$/.test(value) ? Number(value) : null;
}

/** "bytes 100-199/1000" → {start: 100, total: 1000}. */
export function parseContentRange(value: string | null): { start: number; total: number | null } | null {
  const match = value?.match(/^bytes (\d+)-(\d+)\/(\d+|\*)$/);
  if (!match) return null;
  return { start: Number(match[1]), total: match[3] === '*' ? null : Number(match[3]) };
}

// ---------------------------------------------------------------------------------------------------------------
// Progress: bytes, rate over a sliding window, ETA

const RATE_WINDOW_MS = 5000;

class ProgressMeter {
  private samples: { t: number; bytes: number }[] = [];
  private lastEmit = -Infinity;
  private fileTotal: number | null = null;

  constructor(
    private readonly file: string,
    private readonly listener: ProgressListener | undefined,
    private readonly now: () => number = () => performance.now(),
    private readonly intervalMs: number = 100,
  ) {}

  start(from: number, total: number | null): void {
    this.fileTotal = total;
    // A resumed download's first bytes came from the cache, not the network: the rate starts here.
    this.samples = [{ t: this.now(), bytes: from }];
    this.emit(from, true);
  }

  update(done: number): void {
    const t = this.now();
    this.samples.push({ t, bytes: done });
    while (this.samples.length > 2 && this.samples[1].t <= t - RATE_WINDOW_MS) this.samples.shift();
    if (t - this.lastEmit >= this.intervalMs) this.emit(done, false);
  }

  finish(done: number): void {
    this.fileTotal = done;
    this.emit(done, true);
  }

  private emit(done: number, force: boolean): void {
    if (!this.listener) return;
    const t = this.now();
    if (!force && t - this.lastEmit < this.intervalMs) return;
    this.lastEmit = t;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.t - first.t) / 1000;
    const rate = seconds > 0 ? (last.bytes - first.bytes) / seconds : 0;
    this.listener({ file: this.file, fileDone: done, fileTotal: this.fileTotal, bytesDone: done, bytesTotal: this.fileTotal, rate, etaSeconds: eta(done, this.fileTotal, rate) });
  }
}

function eta(done: number, total: number | null, rate: number): number | null {
  if (total === null) return null;
  if (done >= total) return 0;
  return rate > 0 ? (total - done) / rate : null;
}

/** A file's progress as progress over a whole model: `before` bytes of earlier files, `total` for all files. */
function onModelScale(p: DownloadProgress, before: number, total: number | null): DownloadProgress {
  const bytesDone = before + p.fileDone;
  return { ...p, bytesDone, bytesTotal: total, etaSeconds: eta(bytesDone, total, p.rate) };
}

// ---------------------------------------------------------------------------------------------------------------
// Which files make a model

export const CONFIG_FILE = 'config.json';
export const OPTIONAL_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'] as const;

export interface ModelFileList {
  /** Every file of the model that exists, in download order: config, tokenizer files, then the weights. */
  files: string[];
  /** The weights: [model.safetensors], or the index followed by its shards. */
  weights: string[];
  /** Optional files the repo does not have. */
  absent: string[];
}

/** Works out the files of a model on the Hub without downloading the weights (config and index are small and are
 *  downloaded: the index names the shards). Throws naming config.json or the weights when they are missing. */
export async function listModelFiles(hub: HubModelFiles): Promise<ModelFileList & { sizes: Map<string, number | null> }> {
  const sizes = new Map<string, number | null>();
  const found: string[] = [];
  const absent: string[] = [];
  const config = await hub.stat(CONFIG_FILE);
  if (!config) throw new HubError(`${hub.key}: ${CONFIG_FILE} not found (HTTP 404 at ${hub.url(CONFIG_FILE)}): not a transformers model repo?`, 404, CONFIG_FILE);
  sizes.set(CONFIG_FILE, config.size);
  found.push(CONFIG_FILE);
  for (const path of OPTIONAL_FILES) {
    const info = await hub.stat(path);
    if (info) {
      sizes.set(path, info.size);
      found.push(path);
    } else {
      absent.push(path);
    }
  }
  let weights: string[];
  const single = await hub.stat(SINGLE_FILE);
  if (single) {
    sizes.set(SINGLE_FILE, single.size);
    weights = [SINGLE_FILE];
  } else {
    const index = await hub.open(INDEX_FILE);
    if (!index) throw new HubError(`${hub.key}: neither ${SINGLE_FILE} nor ${INDEX_FILE} found (HTTP 404): the weights must be in safetensors format`, 404, SINGLE_FILE);
    sizes.set(INDEX_FILE, index.size);
    let shards: string[];
    try {
      const map = (JSON.parse(await readText(index)) as { weight_map?: Record<string, string> }).weight_map ?? {};
      shards = [...new Set(Object.values(map))];
    } catch (e) {
      throw new HubError(`${hub.key}: ${INDEX_FILE} is not valid JSON (${(e as Error).message})`, null, INDEX_FILE);
    }
    for (const shard of shards) {
      const info = await hub.stat(shard);
      if (!info) throw new HubError(`${hub.key}: shard ${shard} named by ${INDEX_FILE} not found (HTTP 404 at ${hub.url(shard)})`, 404, shard);
      sizes.set(shard, info.size);
    }
    weights = [INDEX_FILE, ...shards];
  }
  return { files: [...found, ...weights], weights, absent, sizes };
}

/** Downloads every file of the model into the cache (resuming partial ones) with one progress stream over all of
 *  them, checking first that the rest fits in the cache's storage. After this the model loads offline. */
export async function downloadModel(hub: HubModelFiles, onProgress?: ProgressListener): Promise<ModelFileList> {
  const list = await listModelFiles(hub);
  const known = [...list.sizes.values()];
  const total = known.every((s) => s !== null) ? known.reduce<number>((a, s) => a + s!, 0) : null;
  if (total !== null && hub.cache.checkSpace) {
    let cached = 0;
    for (const path of list.files) {
      const file = await hub.cache.file(hub.key, path);
      cached += file && !file.missing ? file.done : 0;
    }
    const problem = await hub.cache.checkSpace(total - cached);
    if (problem) throw new HubError(`${hub.key} (${formatBytes(total)}): ${problem}`);
  }
  let before = 0;
  for (const path of list.files) {
    const offset = before;
    // The meter inside `open` measures the rate; here the byte counts move onto the whole model's scale.
    const source = await hub.open(path, onProgress && ((p) => onProgress(onModelScale(p, offset, total))));
    if (!source) throw new HubError(`${hub.key}: ${path} disappeared during the download (HTTP 404)`, 404, path);
    before += source.size;
  }
  return { files: list.files, weights: list.weights, absent: list.absent };
}

// ---------------------------------------------------------------------------------------------------------------
// The cache, as the UI sees it

export function listCachedModels(cache: ModelCache): Promise<CachedModel[]> {
  return cache.list();
}

export function deleteCachedModel(cache: ModelCache, repo: string, options: Pick<HubOptions, 'baseUrl' | 'revision'> = {}): Promise<void> {
  return cache.delete(hubCacheKey(repo, options));
}
