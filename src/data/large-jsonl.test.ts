// A large JSONL file streams through format detection and tokenization in a child process with a 256 MiB heap, and
// the JS memory it takes (V8 heap used + ArrayBuffers, above the baseline, sampled every 1000 lines) stays within
// 2 × the token bytes kept (input_ids + labels, Int32) + 64 MiB (issue 14 part 4). The child: large-jsonl.child.ts;
// the measurement is printed. 100 000 rows (~50 MB) take ~70 s of tokenizing on the build machines, so the unit suite
// runs 10 000 (~5 MB); LARGE_JSONL_ROWS=100000 (or `npm run fuzz`, which includes this file) runs the full size.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleForNode, removeBundle, runWithHeapLimit } from '../model/testing-child.ts';

const ROWS = Number(process.env.LARGE_JSONL_ROWS ?? (process.env.npm_lifecycle_event === 'fuzz' ? 100_000 : 10_000));
const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'large-jsonl-'));
let script = '';
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  removeBundle(script);
});

describe('a large JSONL file', () => {
  it(`streams ${ROWS} rows (~${ROWS / 2000} MB) through detection and tokenization within 2 × the token bytes + 64 MiB of JS memory`, async () => {
    script = await bundleForNode('src/data/large-jsonl.child.ts');
    const res = runWithHeapLimit(script, [join(dir, 'large.jsonl'), String(ROWS), join(process.cwd(), 'public', 'models', 'demo-llama')], 256, 30_000 + ROWS * 2);
    expect(res.status, `child exited ${res.status} (${res.signal}): ${res.stderr.slice(-2000)}`).toBe(0);
    const r = res.report as Record<string, number>;
    const bound = 2 * r.tokenBytes + 64 * MiB;
    console.log(
      `large JSONL: ${r.rows} rows, ${(r.fileBytes / 1e6).toFixed(1)} MB, ${r.tokens} tokens (${(r.tokenBytes / MiB).toFixed(1)} MiB as Int32) in ${r.seconds.toFixed(1)} s; ` +
        `peak JS memory ${(r.peak / MiB).toFixed(1)} MiB (heap ${(r.peakHeap / MiB).toFixed(1)} + ArrayBuffers ${(r.peakArrayBuffers / MiB).toFixed(1)}), ` +
        `retained ${(r.retained / MiB).toFixed(1)} MiB; bound 2 × tokens + 64 MiB = ${(bound / MiB).toFixed(1)} MiB`,
    );
    expect(r.rows).toBe(ROWS);
    expect(r.skipped).toBe(0);
    expect(r.format).toBe('prompt_completion');
    expect(r.fileBytes).toBeGreaterThan(ROWS * 450);
    expect(r.peak).toBeLessThanOrEqual(bound);
    expect(r.retained).toBeLessThanOrEqual(bound);
  }, 60_000 + ROWS * 2);
});
