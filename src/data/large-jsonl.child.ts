// Child process of large-jsonl.test.ts (run with a small heap); arguments: path rows tokenizer-folder. Writes a JSONL file of `rows` prompt/completion
// rows (~500 bytes each) to `path`, streams it through loadJsonlDataset (format detection and tokenization with the
// demo model's tokenizer) and prints one JSON line: the rows, the token bytes kept (input_ids + labels) and the JS
// memory (V8 heap used + ArrayBuffers) above the baseline, sampled every 1000 lines.
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { HfTokenizer } from '../model/tokenizer.ts';
import { loadJsonlDataset } from './dataset.ts';

const [path, rowsArg, tokenizerDir] = process.argv.slice(2);
const rows = Number(rowsArg);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const used = () => {
  const m = process.memoryUsage();
  return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers };
};

const WORDS = 'arr matey the ship sails at dawn with a crew of salty dogs and barrels of rum below deck where the gold lies hidden from the navy captain parrot plank treasure map island storm sea'.split(' ');

/** Row i: a prompt and a completion of words picked by i (no two rows alike), ~500 bytes of JSON. */
function row(i: number): string {
  let x = i * 2654435761 >>> 0;
  const words = (n: number) => {
    const out: string[] = [];
    for (let k = 0; k < n; k++) {
      x = (x * 1103515245 + 12345) >>> 0;
      out.push(WORDS[x % WORDS.length]);
    }
    return out.join(' ');
  };
  return JSON.stringify({ prompt: `Question ${i}: ${words(24)}?`, completion: ` ${words(60)}. Row ${i} ends here.` });
}

async function writeFile(): Promise<number> {
  const out = createWriteStream(path);
  let bytes = 0;
  for (let i = 0; i < rows; i++) {
    const line = `${row(i)}\n`;
    bytes += Buffer.byteLength(line);
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return bytes;
}

const fileBytes = await writeFile();
const tokenizer = HfTokenizer.fromJson(readFileSync(join(tokenizerDir, 'tokenizer.json'), 'utf8'), readFileSync(join(tokenizerDir, 'tokenizer_config.json'), 'utf8'));
gc();
const base = used();
let peak = { heap: 0, arrayBuffers: 0, total: 0 };
const sample = () => {
  const u = used();
  const heap = u.heap - base.heap;
  const arrayBuffers = u.arrayBuffers - base.arrayBuffers;
  if (heap + arrayBuffers > peak.total) peak = { heap, arrayBuffers, total: heap + arrayBuffers };
};
const started = performance.now();
const { rows: loaded, report } = await loadJsonlDataset(createReadStream(path, { highWaterMark: 64 * 1024 }), {
  tokenizer, maxLength: 512, fileName: 'large.jsonl', totalBytes: fileBytes, progressEveryLines: 1000, onProgress: sample,
});
const seconds = (performance.now() - started) / 1000;
sample();
let tokenBytes = 0;
for (const r of loaded) tokenBytes += r.input_ids.byteLength + r.labels.byteLength;
gc();
const after = used();
console.log(JSON.stringify({
  fileBytes, rows: report.rows, skipped: report.skipped, format: report.format, tokens: report.totalTokens, tokenBytes, seconds,
  peakHeap: peak.heap, peakArrayBuffers: peak.arrayBuffers, peak: peak.total,
  retained: after.heap - base.heap + after.arrayBuffers - base.arrayBuffers, kept: loaded.length,
}));
