// The CLI's matmul tuning cache: a JSON file that survives between runs and never stops one.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultTuningCachePath, JsonFileTuningCache } from './tuning-cache.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'tuning-'));

describe('JsonFileTuningCache', () => {
  it('remembers values across instances (a new process reads what the last one wrote)', () => {
    const path = join(tmp(), 'sub', 'dir', 'tuning.json');
    const a = new JsonFileTuningCache(path);
    expect(a.get('matmul-variant:x')).toBeUndefined();
    a.set('matmul-variant:x', 'tiled');
    a.set('matmul-variant:y', 'naive');
    const b = new JsonFileTuningCache(path);
    expect(b.get('matmul-variant:x')).toBe('tiled');
    expect(b.get('matmul-variant:y')).toBe('naive');
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ 'matmul-variant:x': 'tiled', 'matmul-variant:y': 'naive' });
  });

  it('keeps entries another process wrote after this one was created', () => {
    const path = join(tmp(), 'tuning.json');
    const a = new JsonFileTuningCache(path);
    new JsonFileTuningCache(path).set('other', 'blocked');
    a.set('mine', 'tiled');
    expect(new JsonFileTuningCache(path).get('other')).toBe('blocked');
  });

  it('treats a corrupt file as empty and replaces it', () => {
    const path = join(tmp(), 'tuning.json');
    writeFileSync(path, '{not json');
    const c = new JsonFileTuningCache(path);
    expect(c.get('k')).toBeUndefined();
    c.set('k', 'naive');
    expect(c.get('k')).toBe('naive');
  });

  it('a failed write is recorded, not thrown', () => {
    const dir = tmp();
    writeFileSync(join(dir, 'a-file'), '');
    const c = new JsonFileTuningCache(join(dir, 'a-file', 'tuning.json')); // its folder is a file: mkdir fails
    expect(() => c.set('k', 'naive')).not.toThrow();
    expect(c.writeError).not.toBeNull();
    expect(c.get('k')).toBeUndefined();
  });

  it('default path: $LORA_STUDIO_CACHE_DIR, else $XDG_CACHE_HOME/lora-studio, else ~/.cache/lora-studio', () => {
    expect(defaultTuningCachePath({ LORA_STUDIO_CACHE_DIR: '/c' })).toBe('/c/tuning.json');
    expect(defaultTuningCachePath({ XDG_CACHE_HOME: '/x' })).toBe('/x/lora-studio/tuning.json');
    expect(defaultTuningCachePath({})).toMatch(/\.cache\/lora-studio\/tuning\.json$/);
  });
});
