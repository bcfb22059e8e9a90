import { describe, expect, it } from 'vitest';
import { detectFormat, parseRow } from './formats.ts';

describe('format detection', () => {
  it.each([
    [{ text: 'x' }, 'text'],
    [{ prompt: 'p', completion: 'c' }, 'prompt_completion'],
    [{ instruction: 'i', output: 'o' }, 'alpaca'],
    [{ instruction: 'i', input: '', output: 'o', system: 's' }, 'alpaca'],
    [{ conversations: [] }, 'sharegpt'],
    [{ messages: [] }, 'messages'],
    [{ input_ids: [1], labels: [1] }, 'pretokenized'],
    // Several shapes at once: the most specific wins, the same way for every row.
    [{ messages: [], text: 'x' }, 'messages'],
    [{ prompt: 'p', completion: 'c', text: 'x' }, 'prompt_completion'],
    [{ input_ids: [1], text: 'x' }, 'pretokenized'],
    [{ prompt: 'p' }, null],
    [{ instruction: 'i' }, null],
    [[1], null],
    ['text', null],
    [null, null],
  ])('%j → %s', (row, format) => {
    expect(detectFormat(row)).toBe(format);
  });
});

describe('row parsing', () => {
  it('ShareGPT speakers are case-insensitive and map to chat roles', () => {
    const r = parseRow('sharegpt', { conversations: [{ from: 'Human', value: 'q' }, { from: 'GPT', value: 'a' }, { from: 'observation', value: 't' }] });
    expect(r).toEqual({ ok: true, example: { kind: 'chat', trainFrom: 0, messages: [
      { role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }, { role: 'tool', content: 't' },
    ] } });
  });

  it('a message-list prompt with a string completion becomes one assistant turn after the prompt', () => {
    const r = parseRow('prompt_completion', { prompt: [{ role: 'user', content: 'q' }], completion: 'a' });
    expect(r).toEqual({ ok: true, example: { kind: 'chat', trainFrom: 1, messages: [
      { role: 'user', content: 'q' }, { role: 'assistant', content: 'a' },
    ] } });
    expect(parseRow('prompt_completion', { prompt: [{ role: 'user', content: 'q' }], completion: [{ role: 'user', content: 'x' }] }))
      .toEqual({ ok: false, reason: '"completion" has no assistant message' });
  });

  it('Alpaca rejects non-string optional fields and an empty instruction', () => {
    expect(parseRow('alpaca', { instruction: 'i', output: 'o', input: 3 })).toEqual({ ok: false, reason: '"input" must be a string when present, got number' });
    expect(parseRow('alpaca', { instruction: ' ', output: 'o' })).toEqual({ ok: false, reason: '"instruction" is empty' });
  });

  it('pre-tokenized rows need a non-empty integer list', () => {
    expect(parseRow('pretokenized', { input_ids: [] })).toEqual({ ok: false, reason: '"input_ids" is empty' });
    expect(parseRow('pretokenized', { input_ids: 'abc' })).toEqual({ ok: false, reason: '"input_ids" must be a list of integers, got string' });
    expect(parseRow('pretokenized', { input_ids: [1, 2], labels: [1, 'x'] })).toEqual({ ok: false, reason: '"labels"[1] must be an integer, got "x"' });
  });
});
