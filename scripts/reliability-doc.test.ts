// RELIABILITY.md names the test that proves each row: `path/to/file.test.ts` "the test's name (or its start)". Each
// named file must exist and contain that name, so a renamed or deleted test shows up here.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..');
const doc = readFileSync(join(ROOT, 'RELIABILITY.md'), 'utf8');
// A test file in backticks, then optionally a quoted name after spaces/colons.
const REF = /`((?:src|e2e|scripts)\/[\w./-]+\.(?:test|e2e)\.ts)`\s*:?\s*(?:"([^"]+)")?/g;

describe('RELIABILITY.md', () => {
  const refs = [...doc.matchAll(REF)].map((m) => ({ file: m[1], name: m[2] ?? null }));

  it('names tests', () => {
    expect(refs.length).toBeGreaterThan(5);
  });

  it.each(refs.map((r) => [`${r.file} ${r.name ?? ''}`, r] as const))('names a test that exists: %s', (_, { file, name }) => {
    expect(existsSync(join(ROOT, file)), file).toBe(true);
    if (name) expect(readFileSync(join(ROOT, file), 'utf8'), `${file} has no test named "${name}…"`).toContain(name);
  });
});
