// A model folder served over HTTP at a base URL (the bundled demo model under public/, any static file server) as
// ModelFiles. Files are read with HTTP Range requests, so a checkpoint is never held whole in JS memory; a server that
// ignores ranges (answers 200 with the whole file) still works, at the cost of holding that file.
//
// Two quirks of static servers are handled here rather than by callers:
//   - single-page-app fallbacks (Vite's preview and dev servers) answer an unknown path with index.html and 200 when
//     the request accepts HTML or */*: requests here accept only binary or JSON, and an HTML answer counts as
//     "no such file";
//   - compressed answers: fetch inflates them, so sizes come from Content-Range or the bytes received, never from a
//     compressed Content-Length.

import type { ByteSource } from '../safetensors.ts';
import type { ModelFiles } from '../checkpoint.ts';

/** The first request of a file asks for this many bytes: small files (config, tokenizer) arrive in one request. */
export const FIRST_RANGE_BYTES = 1 << 20;

const ACCEPT = 'application/octet-stream, application/json;q=0.9, text/plain;q=0.8';

export interface UrlFolderOptions {
  fetch?: typeof fetch;
  /** Called with the bytes each response delivered (progress of a load over the network). */
  onBytes?: (bytes: number) => void;
}

export class UrlSource implements ByteSource {
  constructor(
    readonly name: string,
    private readonly url: string,
    readonly size: number,
    /** The file's first bytes, already received (all of it when the server ignored the range). */
    private readonly head: Uint8Array,
    private readonly options: UrlFolderOptions,
  ) {}

  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(offset + length, this.size);
    if (end <= offset) return new Uint8Array(0);
    if (end <= this.head.length) return this.head.slice(offset, end);
    const fetchFn = this.options.fetch ?? globalThis.fetch;
    const response = await fetchFn(this.url, { headers: { Accept: ACCEPT, Range: `bytes=${offset}-${end - 1}` } });
    if (response.status !== 206) {
      await response.body?.cancel();
      throw new Error(`${this.name}: the server answered a range request with HTTP ${response.status}; it must support Range`);
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    this.options.onBytes?.(bytes.length);
    if (bytes.length !== end - offset) throw new Error(`${this.name}: asked for ${end - offset} bytes at ${offset}, got ${bytes.length}`);
    return bytes;
  }
}

/** A folder at `baseUrl` (absolute, or relative to the page or worker), e.g. "models/demo-llama/". */
export function urlFolder(baseUrl: string, name: string = baseUrl, options: UrlFolderOptions = {}): ModelFiles {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  return {
    name,
    async open(path: string): Promise<ByteSource | null> {
      if (path === '' || path.startsWith('/') || path.split('/').some((p) => p === '' || p === '.' || p === '..')) return null;
      const url = base + path.split('/').map(encodeURIComponent).join('/');
      const fetchFn = options.fetch ?? globalThis.fetch;
      const response = await fetchFn(url, { headers: { Accept: ACCEPT, Range: `bytes=0-${FIRST_RANGE_BYTES - 1}` } });
      if (response.status === 404 || response.status === 410) {
        await response.body?.cancel();
        return null;
      }
      if (response.status === 416) {
        // An empty file: no byte 0 to give.
        await response.body?.cancel();
        return new UrlSource(`${name}/${path}`, url, 0, new Uint8Array(0), options);
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`${name}/${path}: HTTP ${response.status} ${response.statusText} from ${url}`);
      }
      if ((response.headers.get('Content-Type') ?? '').includes('text/html')) {
        await response.body?.cancel(); // an SPA fallback page, not a model file
        return null;
      }
      const head = new Uint8Array(await response.arrayBuffer());
      options.onBytes?.(head.length);
      let size = head.length;
      if (response.status === 206) {
        const total = /\/(\d+)\s*$/.exec(response.headers.get('Content-Range') ?? '');
        if (!total) throw new Error(`${name}/${path}: the server's 206 answer has no usable Content-Range`);
        size = Number(total[1]);
      }
      return new UrlSource(`${name}/${path}`, url, size, head, options);
    },
  };
}
