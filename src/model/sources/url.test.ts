import { describe, expect, it } from 'vitest';
import { FIRST_RANGE_BYTES, urlFolder } from './url.ts';

/** A static server in a function: Range support optional, an SPA fallback for unknown paths. */
function fakeServer(files: Record<string, Uint8Array>, o: { ranges?: boolean; spaFallback?: boolean } = {}) {
  const requests: { url: string; range: string | null }[] = [];
  const fetchFn = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    const headers = new Headers(init?.headers);
    const range = headers.get('Range');
    requests.push({ url, range });
    const path = url.replace('http://test/m/', '');
    const body = files[decodeURIComponent(path)];
    if (!body) {
      if (o.spaFallback && (headers.get('Accept') ?? '*/*').includes('*/*')) {
        return new Response('<!doctype html>', { status: 200, headers: { 'Content-Type': 'text/html' } });
      }
      return new Response('not found', { status: 404 });
    }
    const m = range && o.ranges !== false ? /^bytes=(\d+)-(\d+)$/.exec(range) : null;
    if (!m) return new Response(body.slice(), { status: 200, headers: { 'Content-Type': 'application/octet-stream' } });
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), body.length - 1);
    if (start >= body.length) return new Response(null, { status: 416 });
    return new Response(body.slice(start, end + 1), {
      status: 206,
      headers: { 'Content-Range': `bytes ${start}-${end}/${body.length}`, 'Content-Type': 'application/octet-stream' },
    });
  }) as typeof fetch;
  return { fetchFn, requests };
}

const big = new Uint8Array(FIRST_RANGE_BYTES + 1000).map((_, i) => (i * 7) & 255);
const small = new TextEncoder().encode('{"model_type": "llama"}');

describe('urlFolder', () => {
  it('reads small files in one request and large ones by ranges', async () => {
    const { fetchFn, requests } = fakeServer({ 'config.json': small, 'model.safetensors': big });
    let received = 0;
    const folder = urlFolder('http://test/m', 'demo', { fetch: fetchFn, onBytes: (n) => (received += n) });
    const config = (await folder.open('config.json'))!;
    expect(config.size).toBe(small.length);
    expect(new TextDecoder().decode(await config.read(0, config.size))).toBe('{"model_type": "llama"}');
    expect(requests).toHaveLength(1);

    const weights = (await folder.open('model.safetensors'))!;
    expect(weights.size).toBe(big.length);
    const tail = await weights.read(FIRST_RANGE_BYTES - 10, 500);
    expect(Array.from(tail)).toEqual(Array.from(big.slice(FIRST_RANGE_BYTES - 10, FIRST_RANGE_BYTES + 490)));
    expect(requests.at(-1)!.range).toBe(`bytes=${FIRST_RANGE_BYTES - 10}-${FIRST_RANGE_BYTES + 489}`);
    expect(received).toBe(small.length + FIRST_RANGE_BYTES + 500);
  });

  it('treats 404 and an SPA fallback page as no such file', async () => {
    const { fetchFn } = fakeServer({ 'config.json': small }, { spaFallback: true });
    const folder = urlFolder('http://test/m/', 'demo', { fetch: fetchFn });
    expect(await folder.open('model.safetensors.index.json')).toBeNull();
    const html = fakeServer({}, { spaFallback: true });
    // Even a server that falls back for any Accept header is caught by the HTML content type.
    const anyAccept = (async (u: RequestInfo | URL, init?: RequestInit) =>
      html.fetchFn(u, { ...init, headers: { Accept: '*/*' } })) as typeof fetch;
    expect(await urlFolder('http://test/m', 'demo', { fetch: anyAccept }).open('chat_template.jinja')).toBeNull();
  });

  it('works with a server that ignores ranges (whole file held)', async () => {
    const { fetchFn, requests } = fakeServer({ 'model.safetensors': big }, { ranges: false });
    const source = (await urlFolder('http://test/m', 'demo', { fetch: fetchFn }).open('model.safetensors'))!;
    expect(source.size).toBe(big.length);
    expect(Array.from(await source.read(big.length - 3, 3))).toEqual(Array.from(big.slice(-3)));
    expect(requests).toHaveLength(1);
  });

  it('rejects paths that leave the folder', async () => {
    const { fetchFn, requests } = fakeServer({});
    const folder = urlFolder('http://test/m', 'demo', { fetch: fetchFn });
    expect(await folder.open('../secret')).toBeNull();
    expect(await folder.open('/etc/passwd')).toBeNull();
    expect(requests).toHaveLength(0);
  });
});
