// A tiny stand-in for the Hugging Face Hub on 127.0.0.1 (random port), for tests: serves repos from memory at
// /<repo>/resolve/<revision>/<path> with HEAD, Range (206 + Content-Range), If-Range on ETags, token checks, the
// Hub's 404 / X-Error-Code answers, and connection drops injected in the middle of a body. It counts the body bytes
// it sends, so tests can check a resume asks only for what is missing.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface ServedRequest {
  method: string;
  repo: string;
  path: string;
  range: string | null;
  authorization: string | null;
  status: number;
  /** Body bytes written (those that reached the socket before a drop included). */
  bytes: number;
}

export interface FakeRepo {
  files: Record<string, Uint8Array | string>;
  /** When set, requests must carry "Authorization: Bearer <token>" (a gated repo). */
  token?: string;
  revision?: string;
}

export class FakeHub {
  readonly requests: ServedRequest[] = [];
  readonly repos = new Map<string, FakeRepo>();
  /** Drops the connection after this many body bytes of the next GET of `path` (once). */
  private drops: { path: string; after: number }[] = [];
  private server: Server | null = null;
  baseUrl = '';

  addRepo(id: string, repo: FakeRepo): void {
    this.repos.set(id, repo);
  }

  dropNext(path: string, after: number): void {
    this.drops.push({ path, after });
  }

  bytesServed(path?: string): number {
    return this.requests.filter((r) => path === undefined || r.path === path).reduce((sum, r) => sum + r.bytes, 0);
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const match = url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/);
    const record: ServedRequest = {
      method: req.method ?? 'GET',
      repo: match?.[1] ?? '',
      path: match ? decodeURIComponent(match[3]) : url.pathname,
      range: (req.headers.range as string | undefined) ?? null,
      authorization: (req.headers.authorization as string | undefined) ?? null,
      status: 0,
      bytes: 0,
    };
    this.requests.push(record);
    const answer = (status: number, headers: Record<string, string | number> = {}, body?: Uint8Array): void => {
      record.status = status;
      res.writeHead(status, headers);
      if (body && req.method !== 'HEAD') {
        record.bytes += body.length;
        res.end(body);
      } else {
        res.end();
      }
    };

    const repo = match ? this.repos.get(match[1]) : undefined;
    // Like the Hub: an unknown repo without a token is a 401 (it may be private), with one a 404.
    if (!match || !repo) return answer(record.authorization ? 404 : 401, { 'X-Error-Code': 'RepoNotFound' });
    if (repo.token && record.authorization !== `Bearer ${repo.token}`) return answer(401, { 'X-Error-Code': 'GatedRepo' });
    if (decodeURIComponent(match[2]) !== (repo.revision ?? 'main')) return answer(404, { 'X-Error-Code': 'RevisionNotFound' });
    const content = repo.files[record.path];
    if (content === undefined) return answer(404, { 'X-Error-Code': 'EntryNotFound' });
    const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
    const etag = `"${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}"`;

    let start = 0;
    let status = 200;
    const range = record.range?.match(/^bytes=(\d+)-$/);
    const ifRange = req.headers['if-range'];
    if (range && (ifRange === undefined || ifRange === etag)) {
      start = Number(range[1]);
      if (start >= bytes.length) return answer(416, { 'Content-Range': `bytes */${bytes.length}` });
      status = 206;
    }
    const body = bytes.subarray(start);
    const headers: Record<string, string | number> = { 'Content-Length': body.length, ETag: etag, 'Accept-Ranges': 'bytes' };
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${bytes.length - 1}/${bytes.length}`;

    const drop = req.method === 'GET' ? this.drops.findIndex((d) => d.path === record.path) : -1;
    if (drop < 0) return answer(status, headers, body);
    const after = this.drops.splice(drop, 1)[0].after;
    record.status = status;
    res.writeHead(status, headers);
    const partial = body.subarray(0, after);
    record.bytes += partial.length;
    // Let the partial body reach the client, then cut the connection mid-body.
    res.write(partial, () => setTimeout(() => res.socket?.destroy(), 30));
  }
}
