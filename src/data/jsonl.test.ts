import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { blobChunks, MAX_LINE_LENGTH, readLines, type Chunk } from './jsonl.ts';

async function collect(source: Parameters<typeof readLines>[0]) {
  const out = [];
  for await (const line of readLines(source)) out.push(line);
  return out;
}

const enc = new TextEncoder();

/** Cut bytes into pieces of the given sizes (cycled), to split characters and "\r\n" anywhere. */
function cut(bytes: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (let k = 0; at < bytes.length; k++) {
    const n = sizes[k % sizes.length];
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe('readLines', () => {
  const text = '\uFEFF{"text":"héllo 👋"}\r\n\n{"text":"機械"}\r\nlast line without newline';
  const expected = ['{"text":"héllo 👋"}', '', '{"text":"機械"}', 'last line without newline'];
  const bytes = enc.encode(text);

  it.each([[[1]], [[2, 3]], [[5, 1, 7]], [[4096]]])('splits lines the same for chunk sizes %j', async (sizes) => {
    const lines = await collect(cut(bytes, sizes));
    expect(lines.map((l) => l.text)).toEqual(expected);
    expect(lines.map((l) => l.lineNumber)).toEqual([1, 2, 3, 4]);
    expect(lines.at(-1)!.bytesRead).toBe(bytes.byteLength);
  });

  it('yields a line over maxLineLength empty with its length, dropping its pieces as they come (issue 14)', async () => {
    const long = 'x'.repeat(1000);
    const source = cut(enc.encode(`{"text":"a"}\n${long}\r\n{"text":"b"}\n${long}`), [7]);
    const lines = [];
    for await (const line of readLines(source, { maxLineLength: 100 })) lines.push(line);
    expect(lines.map((l) => [l.lineNumber, l.text, l.overlong])).toEqual([
      [1, '{"text":"a"}', undefined],
      [2, '', 1001], // counted with its "\r"
      [3, '{"text":"b"}', undefined],
      [4, '', 1000],
    ]);
    // The default limit: 8 Mi characters. A 16 MiB line without a newline, in 64 KiB chunks.
    const chunk = 'y'.repeat(1 << 16);
    const huge = (function* () {
      for (let i = 0; i < 256; i++) yield chunk;
      yield '\n{"text":"c"}';
    })();
    const out = [];
    for await (const line of readLines(huge)) out.push([line.lineNumber, line.text, line.overlong]);
    expect(MAX_LINE_LENGTH).toBe(8 * 1024 * 1024);
    expect(out).toEqual([[1, '', 1 << 24], [2, '{"text":"c"}', undefined]]);
  });

  it('accepts string chunks and a trailing newline adds no empty line', async () => {
    const lines = await collect(['{"a":1}\n{"b"', ':2}\n']);
    expect(lines.map((l) => l.text)).toEqual(['{"a":1}', '{"b":2}']);
    expect(lines[1].bytesRead).toBe(16);
  });

  it('reads a browser Blob through its stream', async () => {
    const blob = new Blob([bytes]);
    const lines = await collect(blobChunks(blob));
    expect(lines.map((l) => l.text)).toEqual(expected);
  });

  it('reads a Node stream and a ReadableStream', async () => {
    const node = Readable.from(cut(bytes, [3]).map((b) => Buffer.from(b)));
    expect((await collect(node)).map((l) => l.text)).toEqual(expected);
    const web = new Blob([bytes]).stream();
    expect((await collect(web)).map((l) => l.text)).toEqual(expected);
  });

  it('streams: lines come out while the source is still producing (no whole-file string)', async () => {
    let produced = 0;
    let maxAhead = 0;
    let consumed = 0;
    async function* source(): AsyncGenerator<Chunk> {
      for (let i = 0; i < 20_000; i++) {
        produced++;
        maxAhead = Math.max(maxAhead, produced - consumed);
        yield enc.encode(`{"text":"row ${i}"}\n`);
      }
    }
    for await (const line of readLines(source())) {
      consumed++;
      if (consumed === 1) expect(produced).toBe(1);
      expect(line.text).toBe(`{"text":"row ${line.lineNumber - 1}"}`);
    }
    expect(consumed).toBe(20_000);
    expect(maxAhead).toBeLessThanOrEqual(2);
  });
});
