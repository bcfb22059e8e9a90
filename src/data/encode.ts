// Example → token ids and labels (the loss mask), then truncation.
//
// Labels align with input_ids: labels[t] is the target of the logits at t-1 (the trainer shifts),
// -100 = not trained. labels[0] is never a target, so a "trained token" is a label != -100 at t >= 1.
//
// - text: tokenized with the tokenizer's special tokens (e.g. Llama 3's BOS); every token trained.
//   No EOS is appended, so eval on {"text"} rows equals tokenizer(text) in transformers.
// - prompt/completion strings: [special prefix] prompt completion [EOS]; the prompt is -100 (unless
//   trainOnPrompt). Prompt and completion are tokenized separately, as at generation time.
// - chat (messages, ShareGPT, Alpaca, message-list prompt/completion): the conversation is rendered
//   once; each trained assistant turn starts where render(messages before it, add_generation_prompt)
//   ends, i.e. exactly where generation would start, and ends where render(messages through it)
//   ends. The text is tokenized piece by piece at those boundaries (with no added special tokens:
//   the template writes BOS itself), so a piece boundary is also a token boundary — the prompt's
//   tokens are those the model sees at inference. Within a turn, tokens after its last EOS (Qwen's
//   "\n" after <|im_end|>) are not trained; the conversation's last turn gets an EOS appended when
//   its rendering holds none. Templates that rewrite earlier turns once later ones exist (Qwen3
//   drops <think> from old turns) are handled: a turn whose own rendering is not a prefix of the
//   whole ends after its content, plus an EOS that the template writes right after it.
//
// Truncation keeps the first maxLength tokens; the row survives when a trained token remains.

import type { ChatMessage, ChatTemplate } from '../model/chat-template.ts';
import type { HfTokenizer } from '../model/tokenizer.ts';
import type { Example } from './formats.ts';

export const IGNORE_INDEX = -100;

export interface TokenizedRow {
  input_ids: Int32Array;
  labels: Int32Array;
}

export interface EncodeContext {
  tokenizer: HfTokenizer | null;
  template: ChatTemplate | null;
  maxLength: number;
  /** Train on prompt / user / system tokens too (default false: completions only). */
  trainOnPrompt: boolean;
  /** Vocabulary size for checking pre-tokenized ids (defaults to the tokenizer's). */
  vocabSize?: number;
}

export type EncodeResult =
  | { ok: true; row: TokenizedRow; truncated: boolean; fullLength: number }
  | { ok: false; reason: string };

export function encodeExample(example: Example, ctx: EncodeContext): EncodeResult {
  let ids: number[];
  let labels: number[];
  try {
    switch (example.kind) {
      case 'text': {
        ids = need(ctx.tokenizer).encode(example.text, { addSpecialTokens: true });
        labels = ids.slice();
        break;
      }
      case 'prompt_completion': {
        const r = encodePromptCompletion(example.prompt, example.completion, ctx);
        ids = r.ids;
        labels = r.labels;
        break;
      }
      case 'chat': {
        const r = encodeChat(example.messages, example.trainFrom, ctx);
        if ('reason' in r) return { ok: false, reason: r.reason };
        ids = r.ids;
        labels = r.labels;
        break;
      }
      case 'tokens': {
        const reason = checkTokenIds(example.inputIds, example.labels, ctx);
        if (reason) return { ok: false, reason };
        ids = example.inputIds;
        labels = example.labels ?? example.inputIds.slice();
        break;
      }
    }
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  return truncate(ids, labels, ctx.maxLength);
}

function need(tokenizer: HfTokenizer | null): HfTokenizer {
  if (!tokenizer) throw new Error('this format needs a tokenizer, and none was given');
  return tokenizer;
}

function encodePromptCompletion(prompt: string, completion: string, ctx: EncodeContext) {
  const tok = need(ctx.tokenizer);
  const promptIds = [...tok.specialPrefix, ...tok.encode(prompt, { addSpecialTokens: false })];
  const completionIds = tok.encode(completion, { addSpecialTokens: false });
  const eos = tok.eosId;
  if (eos !== null && completionIds.at(-1) !== eos) completionIds.push(eos);
  const ids = [...promptIds, ...completionIds];
  const labels = ctx.trainOnPrompt ? ids.slice() : [...promptIds.map(() => IGNORE_INDEX), ...completionIds];
  return { ids, labels };
}

interface Span { start: number; end: number; last: boolean }

function encodeChat(messages: ChatMessage[], trainFrom: number, ctx: EncodeContext): { ids: number[]; labels: number[] } | { reason: string } {
  const tok = need(ctx.tokenizer);
  const template = ctx.template;
  if (!template) throw new Error('conversational rows need a chat template, and none was given');
  const full = template.render(messages, { addGenerationPrompt: false });
  const eosText = tok.special.eos?.content ?? null;

  const trained: number[] = [];
  for (let i = trainFrom; i < messages.length; i++) if (messages[i].role === 'assistant') trained.push(i);

  const spans: Span[] = [];
  let cursor = 0;
  for (const i of trained) {
    const prefix = template.render(messages.slice(0, i), { addGenerationPrompt: true });
    if (!full.startsWith(prefix) || prefix.length < cursor) {
      return { reason: `the chat template renders messages before message ${i} (with add_generation_prompt) as text that does not start the full conversation, so the assistant turn cannot be located` };
    }
    const start = prefix.length;
    const through = template.render(messages.slice(0, i + 1), { addGenerationPrompt: false });
    let end: number;
    if (full.startsWith(through) && through.length >= start) {
      end = through.length;
    } else {
      const content = messages[i].content;
      const at = full.indexOf(content, start);
      if (at < 0) return { reason: `the chat template does not render the content of message ${i} after its prompt` };
      end = at + content.length;
      if (eosText && full.startsWith(eosText, end)) end += eosText.length;
    }
    spans.push({ start, end, last: i === trained.at(-1) });
    cursor = end;
  }

  const ids: number[] = [];
  const labels: number[] = [];
  const eos = tok.eosId;
  const pushPiece = (text: string, train: boolean) => {
    if (text.length === 0) return;
    const pieceIds = tok.encode(text, { addSpecialTokens: false });
    for (const id of pieceIds) {
      ids.push(id);
      labels.push(train || ctx.trainOnPrompt ? id : IGNORE_INDEX);
    }
  };
  cursor = 0;
  for (const span of spans) {
    pushPiece(full.slice(cursor, span.start), false);
    const pieceIds = tok.encode(full.slice(span.start, span.end), { addSpecialTokens: false });
    const lastEos = eos === null ? -1 : pieceIds.lastIndexOf(eos);
    for (let k = 0; k < pieceIds.length; k++) {
      ids.push(pieceIds[k]);
      const train = lastEos < 0 || k <= lastEos;
      labels.push(train || ctx.trainOnPrompt ? pieceIds[k] : IGNORE_INDEX);
    }
    if (span.last && lastEos < 0 && eos !== null) {
      ids.push(eos);
      labels.push(eos);
    }
    cursor = span.end;
  }
  pushPiece(full.slice(cursor), false);
  return { ids, labels };
}

function checkTokenIds(ids: number[], labels: number[] | null, ctx: EncodeContext): string | null {
  const vocab = ctx.vocabSize ?? ctx.tokenizer?.vocabSize;
  if (vocab !== undefined) {
    const bad = ids.findIndex((id) => id < 0 || id >= vocab);
    if (bad >= 0) return `"input_ids"[${bad}] = ${ids[bad]} is outside the vocabulary [0, ${vocab})`;
    if (labels) {
      const badLabel = labels.findIndex((l) => l !== IGNORE_INDEX && (l < 0 || l >= vocab));
      if (badLabel >= 0) return `"labels"[${badLabel}] = ${labels[badLabel]} is neither -100 nor a token id in [0, ${vocab})`;
    }
  } else {
    const bad = ids.findIndex((id) => id < 0);
    if (bad >= 0) return `"input_ids"[${bad}] = ${ids[bad]} is negative`;
  }
  return null;
}

function countTrained(labels: ArrayLike<number>, length: number): number {
  let n = 0;
  for (let t = 1; t < length; t++) if (labels[t] !== IGNORE_INDEX) n++;
  return n;
}

function truncate(ids: number[], labels: number[], maxLength: number): EncodeResult {
  const fullLength = ids.length;
  if (countTrained(labels, fullLength) === 0) {
    return { ok: false, reason: fullLength <= 1 ? `only ${fullLength} token, nothing to predict` : 'no trained token (every label is -100)' };
  }
  const length = Math.min(fullLength, maxLength);
  if (countTrained(labels, length) === 0) {
    const firstTrained = labels.findIndex((l, t) => t >= 1 && l !== IGNORE_INDEX);
    return { ok: false, reason: `no trained token left after truncation to ${maxLength} tokens (the row has ${fullLength} tokens; the first trained one is at position ${firstTrained})` };
  }
  return {
    ok: true,
    row: { input_ids: Int32Array.from(ids.slice(0, length)), labels: Int32Array.from(labels.slice(0, length)) },
    truncated: length < fullLength,
    fullLength,
  };
}

/** Trained positions of a row under the loss contract (labels[t] != -100 for t >= 1). */
export function trainedTokenCount(row: TokenizedRow): number {
  return countTrained(row.labels, row.labels.length);
}
