import { describe, expect, it } from 'vitest';
import { TextStream } from './text-stream.ts';

/** Feeds pieces with the clock advancing `step` ms per piece; returns the chunks sent and the final value. */
function feed(pieces: string[], o: { stops?: string[]; intervalMs?: number; step?: number }) {
  let t = 0;
  const s = new TextStream({ stops: o.stops, intervalMs: o.intervalMs ?? 0, now: () => t });
  const chunks: string[] = [];
  for (const p of pieces) {
    t += o.step ?? 1;
    const c = s.push(p);
    if (c) chunks.push(c);
    if (s.stopped) break;
  }
  const rest = s.finish();
  if (rest) chunks.push(rest);
  return { chunks, value: s.value, stopped: s.stopped };
}

describe('TextStream', () => {
  it('passes pieces through when there are no stop strings', () => {
    const r = feed(['Hel', 'lo', ' world'], {});
    expect(r.chunks).toEqual(['Hel', 'lo', ' world']);
    expect(r.value).toBe('Hello world');
    expect(r.stopped).toBe(false);
  });

  it('cuts at a stop string split across pieces and never sends any of it', () => {
    const r = feed(['The sky', ' is blue.\nUs', 'er: more', ' text'], { stops: ['\nUser:'] });
    expect(r.stopped).toBe(true);
    expect(r.value).toBe('The sky is blue.');
    expect(r.chunks.join('')).toBe('The sky is blue.');
    for (const c of r.chunks) expect(c).not.toContain('\n');
  });

  it('takes the earliest of several stop strings', () => {
    const r = feed(['a b END c STOP'], { stops: ['STOP', 'END'] });
    expect(r.value).toBe('a b ');
  });

  it('holds back only what could begin a stop string, and sends it at the end when none came', () => {
    const r = feed(['abc', 'de'], { stops: ['xyz'] });
    expect(r.chunks).toEqual(['a', 'bc', 'de']);
    expect(r.value).toBe('abcde');
  });

  it('batches chunks by the interval: the first piece at once, then at most one chunk per interval', () => {
    const pieces = Array.from({ length: 20 }, (_, i) => String.fromCharCode(97 + i));
    const r = feed(pieces, { intervalMs: 50, step: 10 });
    expect(r.chunks.join('')).toBe(pieces.join(''));
    expect(r.chunks.length).toBeLessThanOrEqual(6);
    expect(r.chunks[0]).toBe('a');
  });
});
