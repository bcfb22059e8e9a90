// JSONL as a stream: chunks of bytes (or text) in, numbered lines out, with byte progress.
//
// Nothing here holds more than one line plus one chunk: a 200 MB file goes through in pieces. Works
// on a browser File/Blob (blobChunks reads its ReadableStream), a Node stream (fs.createReadStream
// is an async iterable of Buffers, which are Uint8Arrays) or any async iterable of strings.
// UTF-8 is decoded in streaming mode, so a character split across chunks survives; a leading BOM is
// dropped; "\r\n" and "\n" both end a line. A line longer than maxLineLength characters (MAX_LINE_LENGTH unless
// given) is not kept: its pieces are dropped as they come and it is yielded empty with `overlong` set to its length,
// so one enormous line (a file without newlines, a pasted blob) costs at most that many characters plus one chunk.

export type Chunk = string | Uint8Array;
export type ChunkSource = AsyncIterable<Chunk> | Iterable<Chunk> | ReadableStream<Chunk>;

export interface JsonlLine {
  /** 1-based, as editors count. */
  lineNumber: number;
  /** The line without its terminator. */
  text: string;
  /** Bytes of input consumed when this line was yielded (chunk granularity; exact at the end). */
  bytesRead: number;
  /** Set when the line was longer than maxLineLength: its length in characters (`text` is then empty). */
  overlong?: number;
}

/** The longest line kept, in characters (UTF-16 code units): 8 Mi, far beyond any row a model can train on. */
export const MAX_LINE_LENGTH = 8 * 1024 * 1024;

export interface ReadLinesOptions {
  /** Longer lines are yielded empty with `overlong` set. Default MAX_LINE_LENGTH. */
  maxLineLength?: number;
}

/** The bytes of a Blob/File, chunk by chunk, without reading it whole. */
export async function* blobChunks(blob: Blob): AsyncGenerator<Uint8Array> {
  yield* readableStreamChunks(blob.stream() as ReadableStream<Uint8Array>);
}

/** Async iteration over a ReadableStream through its reader (not every browser iterates streams). */
export async function* readableStreamChunks<T>(stream: ReadableStream<T>): AsyncGenerator<T> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

function isReadableStream(x: unknown): x is ReadableStream<Chunk> {
  return typeof (x as ReadableStream)?.getReader === 'function';
}

/** Split a chunk stream into lines. The last line needs no terminator; an empty final line is not yielded. */
export async function* readLines(source: ChunkSource, options: ReadLinesOptions = {}): AsyncGenerator<JsonlLine> {
  const chunks: AsyncIterable<Chunk> | Iterable<Chunk> = isReadableStream(source) ? readableStreamChunks(source) : source;
  const maxLength = options.maxLineLength ?? MAX_LINE_LENGTH;
  const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: false });
  const encoder = new TextEncoder();
  let pending: string[] = []; // pieces of the current, unfinished line
  let pendingLength = 0; // its length so far, kept on counting once the pieces are dropped
  let lineNumber = 0;
  let bytesRead = 0;
  let first = true;

  const add = (piece: string) => {
    pendingLength += piece.length;
    if (pendingLength > maxLength) pending = []; // overlong: stop holding it
    else pending.push(piece);
  };
  const finish = (): JsonlLine => {
    const length = pendingLength;
    let line = length > maxLength ? '' : pending.length === 1 ? pending[0] : pending.join('');
    pending = [];
    pendingLength = 0;
    if (length > maxLength) return { lineNumber: ++lineNumber, text: '', bytesRead, overlong: length };
    if (line.endsWith('\r')) line = line.slice(0, -1);
    return { lineNumber: ++lineNumber, text: line, bytesRead };
  };

  function* split(text: string): Generator<JsonlLine> {
    if (first && text.length > 0) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // BOM (string chunks keep it)
    }
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      add(text.slice(start, nl));
      yield finish();
      start = nl + 1;
    }
    if (start < text.length) add(text.slice(start));
  }

  for await (const chunk of chunks) {
    if (typeof chunk === 'string') {
      bytesRead += utf8Length(chunk, encoder);
      yield* split(chunk);
    } else {
      bytesRead += chunk.byteLength;
      yield* split(decoder.decode(chunk, { stream: true }));
    }
  }
  yield* split(decoder.decode());
  if (pendingLength > 0) yield finish();
}

function utf8Length(s: string, encoder: TextEncoder): number {
  // Fast path for ASCII; otherwise let the encoder count (strings here are chunk-sized).
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return encoder.encode(s).byteLength;
  return s.length;
}
