import { expect, it } from 'vitest';
import { formatBytes } from './format.ts';

it('formats byte counts in binary units', () => {
  expect(formatBytes(0)).toBe('0 B');
  expect(formatBytes(1536)).toBe('1.5 KiB');
  expect(formatBytes(128 * 1024 * 1024)).toBe('128 MiB');
  expect(formatBytes(4 * 1024 ** 3)).toBe('4.0 GiB');
});
