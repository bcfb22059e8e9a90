// The text side of streamed generation, pure so it is tested without a GPU: decoded pieces come in one token at a
// time; what goes out is cut at the first stop string, and a tail that could still turn into one is held back (as
// transformers' StopStringCriteria + TextStreamer behave together), so the UI never shows a stop string it must take
// back. Chunks leave at most every `intervalMs` (the UI appends a few times a second, not once per token).

export interface TextStreamOptions {
  /** Strings that end generation; the text stops before the first one found. Empty strings are ignored. */
  stops?: readonly string[];
  /** Emit at most this often (the first piece and the end always go out). */
  intervalMs?: number;
  now?: () => number;
}

export class TextStream {
  private text = '';
  private sent = 0;
  private lastEmit = -Infinity;
  private readonly stops: string[];
  private readonly holdBack: number;
  private readonly intervalMs: number;
  private readonly now: () => number;
  /** True once a stop string was found: the caller should end generation. */
  stopped = false;

  constructor(o: TextStreamOptions = {}) {
    this.stops = (o.stops ?? []).filter((s) => s.length > 0);
    this.holdBack = Math.max(0, ...this.stops.map((s) => s.length - 1));
    this.intervalMs = o.intervalMs ?? 50;
    this.now = o.now ?? (() => performance.now());
  }

  /** Adds a decoded piece; returns the chunk to send now ('' when it waits for more, or for the interval). */
  push(piece: string): string {
    if (this.stopped) return '';
    this.text += piece;
    // A stop string can straddle the pieces: search from where one could have started.
    const from = Math.max(0, this.text.length - piece.length - this.holdBack);
    let cut = -1;
    for (const s of this.stops) {
      const at = this.text.indexOf(s, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      this.stopped = true;
      return this.take(this.text.length);
    }
    const t = this.now();
    if (t - this.lastEmit < this.intervalMs) return '';
    return this.take(Math.max(this.sent, this.text.length - this.holdBack), t);
  }

  /** Everything not yet sent (call once generation has ended). */
  finish(): string {
    return this.take(this.text.length);
  }

  /** The whole text so far, stop string excluded. */
  get value(): string {
    return this.text;
  }

  private take(end: number, t = this.now()): string {
    const chunk = this.text.slice(this.sent, end);
    if (chunk) {
      this.sent = end;
      this.lastEmit = t;
    }
    return chunk;
  }
}
