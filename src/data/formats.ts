// Dataset row formats: detection from a row's keys, and validation of each row into one Example.
//
//   text           {"text": "..."}                                   every token trained
//   prompt_completion {"prompt": P, "completion": C}                  P and C strings (raw text, no
//                  template, as TRL) or message lists (rendered through the chat template; only the
//                  completion's assistant messages are trained)
//   alpaca         {"instruction", "input"?, "output", "system"?}    becomes system? + user
//                  (instruction, then "\n\n" + input when non-empty) + assistant(output)
//   sharegpt       {"conversations": [{"from", "value"}]}            from: human/user, gpt/assistant/
//                  model/chatgpt/bard/bing, system, tool/function/observation, function_call
//   messages       {"messages": [{"role", "content"}]}              the OpenAI chat format
//   pretokenized   {"input_ids": [...], "labels"?: [...]}           labels align with input_ids,
//                  -100 = ignored, default = input_ids
//
// Detection (first match wins, so a row carrying several shapes is read the same way every time):
// input_ids, messages, conversations, instruction+output, prompt+completion, text.

import type { ChatMessage } from '../model/chat-template.ts';

export const DATASET_FORMATS = ['text', 'prompt_completion', 'alpaca', 'sharegpt', 'messages', 'pretokenized'] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

export const FORMAT_LABELS: Record<DatasetFormat, string> = {
  text: 'text {"text"}',
  prompt_completion: 'prompt/completion {"prompt", "completion"}',
  alpaca: 'Alpaca {"instruction", "input"?, "output"}',
  sharegpt: 'ShareGPT {"conversations": [{"from", "value"}]}',
  messages: 'OpenAI chat {"messages": [{"role", "content"}]}',
  pretokenized: 'pre-tokenized {"input_ids", "labels"?}',
};

/** One validated row, before tokenization. */
export type Example =
  | { kind: 'text'; text: string }
  | { kind: 'prompt_completion'; prompt: string; completion: string }
  /** Assistant messages at index >= trainFrom are the completion; earlier ones are context. */
  | { kind: 'chat'; messages: ChatMessage[]; trainFrom: number }
  | { kind: 'tokens'; inputIds: number[]; labels: number[] | null };

export type ParseResult = { ok: true; example: Example } | { ok: false; reason: string };

type Json = Record<string, unknown>;

export function isDatasetFormat(x: unknown): x is DatasetFormat {
  return typeof x === 'string' && (DATASET_FORMATS as readonly string[]).includes(x);
}

/** The format a row's keys announce, or null. */
export function detectFormat(row: unknown): DatasetFormat | null {
  if (!isObject(row)) return null;
  if ('input_ids' in row) return 'pretokenized';
  if ('messages' in row) return 'messages';
  if ('conversations' in row) return 'sharegpt';
  if ('instruction' in row && 'output' in row) return 'alpaca';
  if ('prompt' in row && 'completion' in row) return 'prompt_completion';
  if ('text' in row) return 'text';
  return null;
}

/** Validate one parsed JSON value as a row of `format`. Reasons are short and name the field. */
export function parseRow(format: DatasetFormat, row: unknown): ParseResult {
  if (!isObject(row)) return fail(`expected a JSON object, got ${typeName(row)}`);
  switch (format) {
    case 'text': return parseText(row);
    case 'prompt_completion': return parsePromptCompletion(row);
    case 'alpaca': return parseAlpaca(row);
    case 'sharegpt': return parseShareGpt(row);
    case 'messages': return parseMessagesRow(row);
    case 'pretokenized': return parsePretokenized(row);
  }
}

// ---------------------------------------------------------------------------------------------

function parseText(row: Json): ParseResult {
  const missing = requireKeys(row, ['text'], 'text');
  if (missing) return fail(missing);
  if (typeof row.text !== 'string') return fail(`"text" must be a string, got ${typeName(row.text)}`);
  if (row.text.length === 0) return fail('"text" is empty');
  return ok({ kind: 'text', text: row.text });
}

function parsePromptCompletion(row: Json): ParseResult {
  const missing = requireKeys(row, ['prompt', 'completion'], 'prompt_completion');
  if (missing) return fail(missing);
  const { prompt, completion } = row;
  if (typeof prompt === 'string') {
    if (typeof completion !== 'string') {
      return fail(`"completion" must be a string when "prompt" is a string, got ${typeName(completion)}`);
    }
    if (completion.length === 0) return fail('empty completion');
    return ok({ kind: 'prompt_completion', prompt, completion });
  }
  if (!Array.isArray(prompt)) return fail(`"prompt" must be a string or a list of messages, got ${typeName(prompt)}`);
  const promptMessages = parseMessageList(prompt, 'prompt', 'role', 'content');
  if (typeof promptMessages === 'string') return fail(promptMessages);
  let completionMessages: ChatMessage[];
  if (typeof completion === 'string') {
    completionMessages = [{ role: 'assistant', content: completion }];
  } else if (Array.isArray(completion)) {
    const parsed = parseMessageList(completion, 'completion', 'role', 'content');
    if (typeof parsed === 'string') return fail(parsed);
    completionMessages = parsed;
  } else {
    return fail(`"completion" must be a string or a list of messages, got ${typeName(completion)}`);
  }
  const trained = completionMessages.filter((m) => m.role === 'assistant');
  if (trained.length === 0) return fail('"completion" has no assistant message');
  if (trained.every((m) => m.content.length === 0)) return fail('empty completion');
  return ok({ kind: 'chat', messages: [...promptMessages, ...completionMessages], trainFrom: promptMessages.length });
}

function parseAlpaca(row: Json): ParseResult {
  const missing = requireKeys(row, ['instruction', 'output'], 'alpaca');
  if (missing) return fail(missing);
  for (const key of ['instruction', 'output']) {
    if (typeof row[key] !== 'string') return fail(`"${key}" must be a string, got ${typeName(row[key])}`);
  }
  for (const key of ['input', 'system']) {
    if (row[key] !== undefined && row[key] !== null && typeof row[key] !== 'string') {
      return fail(`"${key}" must be a string when present, got ${typeName(row[key])}`);
    }
  }
  const instruction = row.instruction as string;
  const output = row.output as string;
  const input = (row.input as string | undefined | null) ?? '';
  const system = (row.system as string | undefined | null) ?? '';
  if (instruction.trim() === '') return fail('"instruction" is empty');
  if (output.length === 0) return fail('empty completion ("output" is empty)');
  const messages: ChatMessage[] = [];
  if (system !== '') messages.push({ role: 'system', content: system });
  messages.push({ role: 'user', content: input.trim() === '' ? instruction : `${instruction}\n\n${input}` });
  messages.push({ role: 'assistant', content: output });
  return ok({ kind: 'chat', messages, trainFrom: 0 });
}

const SHAREGPT_ROLES: Record<string, string> = {
  human: 'user', user: 'user',
  gpt: 'assistant', assistant: 'assistant', model: 'assistant', chatgpt: 'assistant', bard: 'assistant', bing: 'assistant',
  function_call: 'assistant',
  system: 'system',
  tool: 'tool', function: 'tool', observation: 'tool',
};

function parseShareGpt(row: Json): ParseResult {
  const missing = requireKeys(row, ['conversations'], 'sharegpt');
  if (missing) return fail(missing);
  if (!Array.isArray(row.conversations)) return fail(`"conversations" must be a list, got ${typeName(row.conversations)}`);
  const messages = parseMessageList(row.conversations, 'conversations', 'from', 'value', SHAREGPT_ROLES);
  if (typeof messages === 'string') return fail(messages);
  return chatExample(messages, 'conversations');
}

function parseMessagesRow(row: Json): ParseResult {
  const missing = requireKeys(row, ['messages'], 'messages');
  if (missing) return fail(missing);
  if (!Array.isArray(row.messages)) return fail(`"messages" must be a list, got ${typeName(row.messages)}`);
  const messages = parseMessageList(row.messages, 'messages', 'role', 'content');
  if (typeof messages === 'string') return fail(messages);
  return chatExample(messages, 'messages');
}

function chatExample(messages: ChatMessage[], field: string): ParseResult {
  if (messages.length === 0) return fail(`"${field}" is empty`);
  const assistant = messages.filter((m) => m.role === 'assistant');
  if (assistant.length === 0) return fail(`"${field}" has no assistant message to train on`);
  if (assistant.every((m) => m.content.length === 0)) return fail('empty completion (every assistant message is empty)');
  return ok({ kind: 'chat', messages, trainFrom: 0 });
}

/** A list of {roleKey, contentKey} objects → messages, or the reason it is not one. */
function parseMessageList(
  list: unknown[],
  field: string,
  roleKey: string,
  contentKey: string,
  roleMap?: Record<string, string>,
): ChatMessage[] | string {
  const out: ChatMessage[] = [];
  for (let i = 0; i < list.length; i++) {
    const m = list[i];
    const where = `${field}[${i}]`;
    if (!isObject(m)) return `${where} must be an object with "${roleKey}" and "${contentKey}", got ${typeName(m)}`;
    const role = m[roleKey];
    const content = m[contentKey];
    if (typeof role !== 'string') return `${where}.${roleKey} must be a string, got ${typeName(role)}`;
    if (typeof content !== 'string') return `${where}.${contentKey} must be a string, got ${typeName(content)}`;
    let mapped = role;
    if (roleMap) {
      const r = roleMap[role.toLowerCase()];
      if (r === undefined) {
        return `${where}.${roleKey} "${role}" is not a known speaker. Should be one of: ${Object.keys(roleMap).join(', ')}`;
      }
      mapped = r;
    }
    out.push({ role: mapped, content });
  }
  return out;
}

function parsePretokenized(row: Json): ParseResult {
  const missing = requireKeys(row, ['input_ids'], 'pretokenized');
  if (missing) return fail(missing);
  const ids = integerList(row.input_ids, 'input_ids');
  if (typeof ids === 'string') return fail(ids);
  if (ids.length === 0) return fail('"input_ids" is empty');
  if (row.labels === undefined || row.labels === null) return ok({ kind: 'tokens', inputIds: ids, labels: null });
  const labels = integerList(row.labels, 'labels');
  if (typeof labels === 'string') return fail(labels);
  if (labels.length !== ids.length) {
    return fail(`"labels" has ${labels.length} entries but "input_ids" has ${ids.length}; they must align`);
  }
  return ok({ kind: 'tokens', inputIds: ids, labels });
}

function integerList(value: unknown, field: string): number[] | string {
  if (!Array.isArray(value)) return `"${field}" must be a list of integers, got ${typeName(value)}`;
  for (let i = 0; i < value.length; i++) {
    if (!Number.isInteger(value[i])) return `"${field}"[${i}] must be an integer, got ${JSON.stringify(value[i])}`;
  }
  return value as number[];
}

// ---------------------------------------------------------------------------------------------

function requireKeys(row: Json, keys: string[], format: DatasetFormat): string | null {
  const absent = keys.filter((k) => !(k in row));
  if (absent.length === 0) return null;
  const found = Object.keys(row);
  return `missing ${absent.map((k) => `"${k}"`).join(' and ')} for format ${FORMAT_LABELS[format]} ` +
    `(row keys: ${found.length ? found.join(', ') : 'none'})`;
}

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

export function typeName(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'a list';
  return typeof x === 'object' ? 'an object' : typeof x;
}

function ok(example: Example): ParseResult {
  return { ok: true, example };
}

function fail(reason: string): ParseResult {
  return { ok: false, reason };
}
