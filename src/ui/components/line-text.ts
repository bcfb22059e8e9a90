// The text of chosen lines of a JSONL file, so a rejected line can be shown beside its reason. Reads the file in
// chunks and keeps only the lines asked for (each cut to `maxChars`), so a large file is never held whole.
import { readLines, type ChunkSource } from '../../data/jsonl.ts';

export async function linesAt(source: ChunkSource, wanted: Iterable<number>, maxChars = 300): Promise<Map<number, string>> {
  const want = new Set(wanted);
  const out = new Map<number, string>();
  if (want.size === 0) return out;
  const last = Math.max(...want);
  for await (const { lineNumber, text, overlong } of readLines(source)) {
    if (want.has(lineNumber)) out.set(lineNumber, overlong !== undefined ? `(${overlong} characters, not shown)` : text.length > maxChars ? `${text.slice(0, maxChars)}…` : text);
    if (lineNumber >= last) break;
  }
  return out;
}
