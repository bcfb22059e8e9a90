// Fuzzing tokenizer loading (issue 14): tokenizer.json, tokenizer_config.json and chat templates (from
// tokenizer_config.json or chat_template.jinja), each property in a child process with a 256 MiB heap
// (tokenizer.fuzz.child.ts), so a hostile file that makes loading or rendering allocate without bound fails the test
// instead of taking the runner down. Seeds and case counts: testing-fuzz.ts (the seed goes to the child).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleForNode, removeBundle, runWithHeapLimit } from './testing-child.ts';
import { FUZZ_RUNS, FUZZ_SEED, fuzzBanner } from './testing-fuzz.ts';

const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');
/** A case takes ~12 ms on the build machines (loading a 94 KB tokenizer.json); room for a loaded machine. */
const CHILD_TIMEOUT = 20_000 + FUZZ_RUNS * 40;
let script = '';
beforeAll(async () => {
  script = await bundleForNode('src/model/tokenizer.fuzz.child.ts');
}, 60_000);
afterAll(() => removeBundle(script));

function runProperty(property: string): void {
  const caseFile = join(mkdtempSync(join(tmpdir(), 'fuzz-case-')), 'case.json');
  const env = { ...process.env, FUZZ_SEED: String(FUZZ_SEED), FUZZ_RUNS: String(FUZZ_RUNS), FUZZ_CASE_FILE: caseFile };
  const res = runWithHeapLimit(script, [property, DEMO], 256, CHILD_TIMEOUT, env);
  const report = res.report as { ok?: boolean; error?: string; seconds?: number } | null;
  console.log(`${fuzzBanner(`tokenizer files (${property})`)}: ${report?.ok ? `${FUZZ_RUNS} cases passed in ${report.seconds?.toFixed(1)} s` : 'failed'}`);
  // A crash (out of memory, a hang past the timeout) leaves no report: the case it died on is in the case file.
  const crashed = `child exited ${res.status} (${res.signal}) without a report on the case ${existsSync(caseFile) ? readFileSync(caseFile, 'utf8').slice(0, 3000) : '(none)'}: ${res.stderr.slice(-1500)}`;
  rmSync(dirname(caseFile), { recursive: true, force: true });
  expect(report?.error ?? (report ? '' : crashed)).toBe('');
  expect(res.status).toBe(0);
}

describe(`tokenizer files, fuzzed (FUZZ_SEED=${FUZZ_SEED}, ${FUZZ_RUNS} cases each, 256 MiB heap)`, () => {
  it('mutated tokenizer.json and tokenizer_config.json load and encode, or end in a typed error naming the folder and the file', () => {
    runProperty('files');
  }, CHILD_TIMEOUT + 5_000);

  it('hostile chat templates and special tokens render, or end in a ChatTemplateError naming the file, within the heap', () => {
    runProperty('templates');
  }, CHILD_TIMEOUT + 5_000);
});
