// Datasets end to end on the real Qwen3 tokenizer and chat template (and GPT-2 with the ChatML
// fallback): formats, every bad-line case with its message and line number, loss masking, EOS,
// truncation, and a 20k-line stream.

import { describe, expect, it } from 'vitest';
import { ChatTemplate } from '../model/chat-template.ts';
import { loadTestTokenizer } from '../model/testing-tokenizers.ts';
import { DatasetError, loadJsonlDataset, type DatasetOptions, type TokenizedDataset } from './dataset.ts';
import { IGNORE_INDEX, type TokenizedRow } from './encode.ts';

const qwen = loadTestTokenizer('qwen3');
const qwenTemplate = ChatTemplate.forTokenizer(qwen);
const IM_END = 151645;

function jsonl(...rows: unknown[]): string {
  return rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
}

function load(text: string, options: Partial<DatasetOptions> = {}): Promise<TokenizedDataset> {
  return loadJsonlDataset([text], { tokenizer: qwen, maxLength: 512, ...options });
}

/** The text of the trained tokens, and of the ignored ones. */
function split(row: TokenizedRow) {
  const ids = Array.from(row.input_ids);
  const trained = ids.filter((_, t) => row.labels[t] !== IGNORE_INDEX);
  const ignored = ids.filter((_, t) => row.labels[t] === IGNORE_INDEX);
  return { all: qwen.decode(ids), trained: qwen.decode(trained), ignored: qwen.decode(ignored) };
}

describe('formats', () => {
  it('text rows train on every token, with no EOS appended', async () => {
    const { rows, report } = await load(jsonl({ text: 'Hello world, this is text.' }));
    expect(report.format).toBe('text');
    expect(report.formatSource).toBe('detected');
    expect(Array.from(rows[0].input_ids)).toEqual(qwen.encode('Hello world, this is text.'));
    expect(Array.from(rows[0].labels)).toEqual(Array.from(rows[0].input_ids));
    expect(report.trainedTokens).toBe(rows[0].input_ids.length - 1);
  });

  it('prompt/completion strings: prompt masked, EOS appended once', async () => {
    const { rows } = await load(jsonl(
      { prompt: 'Capital of France?', completion: ' Paris.' },
      { prompt: 'Capital of Spain?', completion: ' Madrid.<|im_end|>' },
    ));
    for (const [row, answer] of [[rows[0], ' Paris.'], [rows[1], ' Madrid.']] as const) {
      const s = split(row);
      expect(s.trained).toBe(`${answer}<|im_end|>`);
      expect(row.input_ids.at(-1)).toBe(IM_END);
      expect(Array.from(row.input_ids).filter((id) => id === IM_END)).toHaveLength(1);
    }
    expect(split(rows[0]).ignored).toBe('Capital of France?');
  });

  it('OpenAI messages: only the assistant reply (through <|im_end|>) is trained', async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Capital of France?' },
      { role: 'assistant', content: 'Paris.' },
    ];
    const { rows, report } = await load(jsonl({ messages }));
    expect(report.format).toBe('messages');
    const s = split(rows[0]);
    expect(s.all).toBe(qwenTemplate.render(messages));
    expect(s.trained).toBe('<think>\n\n</think>\n\nParis.<|im_end|>');
    // The template already ends the turn with EOS (<|im_end|>): nothing appended, the "\n" after it is context.
    expect(rows[0].input_ids.at(-1)).toBe(qwen.encode('\n', { addSpecialTokens: false })[0]);
    expect(rows[0].labels.at(-1)).toBe(IGNORE_INDEX);
    // The prompt tokens are exactly what generation sees: render(prefix, add_generation_prompt) tokenized alone.
    const prompt = qwen.encode(qwenTemplate.render(messages.slice(0, 2), { addGenerationPrompt: true }), { addSpecialTokens: false });
    expect(Array.from(rows[0].input_ids.subarray(0, prompt.length))).toEqual(prompt);
    expect(Array.from(rows[0].labels.subarray(0, prompt.length)).every((l) => l === IGNORE_INDEX)).toBe(true);
    expect(rows[0].labels[prompt.length]).not.toBe(IGNORE_INDEX);
  });

  it('multi-turn: every assistant turn is trained, even when the template rewrites old turns', async () => {
    const messages = [
      { role: 'user', content: 'Hi!' },
      { role: 'assistant', content: 'Hello! How can I help?' },
      { role: 'user', content: 'Name a colour.' },
      { role: 'assistant', content: 'Blue.' },
    ];
    const { rows } = await load(jsonl({ messages }));
    const s = split(rows[0]);
    expect(s.all).toBe(qwenTemplate.render(messages));
    expect(s.trained).toBe('Hello! How can I help?<|im_end|><think>\n\n</think>\n\nBlue.<|im_end|>');
  });

  it('ShareGPT maps speakers to roles', async () => {
    const { rows, report } = await load(jsonl({ conversations: [
      { from: 'system', value: 'S' }, { from: 'human', value: 'Q?' }, { from: 'gpt', value: 'A.' },
    ] }));
    expect(report.format).toBe('sharegpt');
    expect(split(rows[0]).all).toBe(qwenTemplate.render([
      { role: 'system', content: 'S' }, { role: 'user', content: 'Q?' }, { role: 'assistant', content: 'A.' },
    ]));
    expect(split(rows[0]).trained).toBe('<think>\n\n</think>\n\nA.<|im_end|>');
  });

  it('Alpaca becomes system + user(instruction, input) + assistant(output)', async () => {
    const { rows, report } = await load(jsonl(
      { instruction: 'Translate.', input: 'bonjour', output: 'hello', system: 'You translate.' },
      { instruction: 'Say hi.', input: '', output: 'hi' },
    ));
    expect(report.format).toBe('alpaca');
    expect(split(rows[0]).all).toBe(qwenTemplate.render([
      { role: 'system', content: 'You translate.' }, { role: 'user', content: 'Translate.\n\nbonjour' },
      { role: 'assistant', content: 'hello' },
    ]));
    expect(split(rows[1]).all).toBe(qwenTemplate.render([{ role: 'user', content: 'Say hi.' }, { role: 'assistant', content: 'hi' }]));
  });

  it('prompt/completion message lists train only the completion', async () => {
    const { rows } = await load(jsonl({
      prompt: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hey.' }, { role: 'user', content: 'Bye' }],
      completion: [{ role: 'assistant', content: 'Goodbye.' }],
    }));
    expect(split(rows[0]).trained).toBe('<think>\n\n</think>\n\nGoodbye.<|im_end|>');
  });

  it('pre-tokenized rows keep their labels; labels default to input_ids', async () => {
    const { rows, report } = await loadJsonlDataset([jsonl(
      { input_ids: [5, 6, 7, 8], labels: [-100, -100, 7, 8] },
      { input_ids: [1, 2, 3] },
    )], { maxLength: 16, vocabSize: 10 });
    expect(report.format).toBe('pretokenized');
    expect(Array.from(rows[0].labels)).toEqual([-100, -100, 7, 8]);
    expect(Array.from(rows[1].labels)).toEqual([1, 2, 3]);
    expect(report.trainedTokens).toBe(2 + 2);
  });

  it('trainOnPrompt trains every token', async () => {
    const { rows } = await load(jsonl({ messages: [{ role: 'user', content: 'Q' }, { role: 'assistant', content: 'A' }] }), { trainOnPrompt: true });
    expect(Array.from(rows[0].labels)).toEqual(Array.from(rows[0].input_ids));
  });

  it('the detected format can be overridden', async () => {
    const row = { text: 'plain text here', prompt: 'p', completion: 'c' };
    expect((await load(jsonl(row))).report.format).toBe('prompt_completion');
    const { report, rows } = await load(jsonl(row), { format: 'text' });
    expect(report).toMatchObject({ format: 'text', formatSource: 'override' });
    expect(split(rows[0]).all).toBe('plain text here');
  });

  it('a model without a chat template uses the ChatML fallback; EOS is appended after the last turn', async () => {
    const gpt2 = loadTestTokenizer('gpt2');
    const { rows, report } = await loadJsonlDataset([jsonl({ messages: [{ role: 'user', content: 'Q' }, { role: 'assistant', content: 'A' }] })],
      { tokenizer: gpt2, maxLength: 64 });
    expect(report.usedFallbackTemplate).toBe(true);
    const ids = Array.from(rows[0].input_ids);
    const trained = ids.filter((_, t) => rows[0].labels[t] !== IGNORE_INDEX);
    expect(gpt2.decode(ids)).toBe('<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|endoftext|>');
    expect(gpt2.decode(trained)).toBe('A<|im_end|>\n<|endoftext|>');
  });
});

describe('bad lines are reported with line number and reason, skipped and counted', () => {
  const cases: [string, string, RegExp][] = [
    ['invalid JSON', '{"text": "unterminated', /^invalid JSON: /],
    ['not an object', '[1, 2, 3]', /^expected a JSON object, got a list$/],
    ['wrong type', '{"text": 42}', /^"text" must be a string, got number$/],
    ['empty text', '{"text": ""}', /^"text" is empty$/],
    ['another format\'s shape', '{"prompt": "p", "completion": "c"}', /^missing "text" for format text .*\(row keys: prompt, completion\)$/],
    ['nothing to predict', '{"text": "a"}', /^only 1 token, nothing to predict$/],
  ];
  it.each(cases)('%s', async (_name, line, reason) => {
    const { rows, report } = await load(['{"text": "a good first row"}', '', line, '{"text": "a good last row"}'].join('\n'));
    expect(rows.map((r) => r.line)).toEqual([1, 4]);
    expect(report).toMatchObject({ lines: 4, blankLines: 1, rows: 2, skipped: 1 });
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0].line).toBe(3);
    expect(report.errors[0].reason).toMatch(reason);
  });

  const chatCases: [string, unknown, RegExp][] = [
    ['empty completion', { prompt: 'p', completion: '' }, /^empty completion$/],
    ['completion of the wrong type', { prompt: 'p', completion: 3 }, /^"completion" must be a string when "prompt" is a string, got number$/],
    ['no assistant message', { messages: [{ role: 'user', content: 'hi' }] }, /^"messages" has no assistant message to train on$/],
    ['content not a string', { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null }] }, /^messages\[1\]\.content must be a string, got null$/],
    ['message not an object', { messages: ['hi'] }, /^messages\[0\] must be an object with "role" and "content", got string$/],
    ['unknown ShareGPT speaker', { conversations: [{ from: 'robot', value: 'x' }] }, /^conversations\[0\]\.from "robot" is not a known speaker/],
    ['empty Alpaca output', { instruction: 'do', output: '' }, /^empty completion \("output" is empty\)$/],
    ['labels misaligned', { input_ids: [1, 2, 3], labels: [1, 2] }, /^"labels" has 2 entries but "input_ids" has 3; they must align$/],
    ['id outside the vocabulary', { input_ids: [1, 999999999] }, /^"input_ids"\[1\] = 999999999 is outside the vocabulary \[0, 151669\)$/],
    ['non-integer id', { input_ids: [1, 2.5] }, /^"input_ids"\[1\] must be an integer, got 2\.5$/],
    ['every label ignored', { input_ids: [1, 2], labels: [-100, -100] }, /^no trained token \(every label is -100\)$/],
  ];
  it.each(chatCases)('%s', async (_name, row, reason) => {
    const { report } = await load(jsonl(row, { text: 'ok' }), { format: formatOf(row) }).catch((e: DatasetError) => ({ report: e.report }));
    expect(report.errors[0]).toMatchObject({ line: 1 });
    expect(report.errors[0].reason).toMatch(reason);
  });

  it('a first line matching no format is reported with the formats it should be', async () => {
    const { report } = await load(jsonl({ question: 'q', answer: 'a' }, { text: 'fine row' }));
    expect(report.errors[0].line).toBe(1);
    expect(report.errors[0].reason).toMatch(/^the row matches no dataset format \(keys: question, answer\)\. Should be one of: text/);
    expect(report.format).toBe('text');
    expect(report.rows).toBe(1);
  });

  it('truncation: long rows are cut and counted; rows with no trained token left are skipped', async () => {
    const longPrompt = 'word '.repeat(40);
    const { rows, report } = await load(jsonl(
      { prompt: 'short question', completion: ' a long answer that goes on and on and on' },
      { prompt: longPrompt, completion: ' answer' },
    ), { maxLength: 8 });
    expect(rows).toHaveLength(1);
    expect(rows[0].input_ids.length).toBe(8);
    expect(report.truncated).toBe(1);
    expect(report.errors).toEqual([{ line: 2, reason: expect.stringMatching(/^no trained token left after truncation to 8 tokens \(the row has \d+ tokens; the first trained one is at position \d+\)$/) }]);
  });

  it('a file with no usable row is refused with the reasons', async () => {
    const err = await load(jsonl('not json', { text: 5 }, { foo: 1 })).catch((e) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect(err.message).toMatch(/^dataset: no usable row — every line was rejected: line 1: invalid JSON: .*; line 2: "text" must be a string, got number; line 3: missing "text"/);
    expect(err.report.skipped).toBe(3);
    const empty = await load('\n  \n').catch((e) => e);
    expect(empty).toBeInstanceOf(DatasetError);
    expect(empty.message).toBe('dataset: no usable row — the file is empty');
  });
});

function formatOf(row: unknown): DatasetOptions['format'] {
  const keys = Object.keys(row as object);
  if (keys.includes('input_ids')) return 'pretokenized';
  if (keys.includes('messages')) return 'messages';
  if (keys.includes('conversations')) return 'sharegpt';
  if (keys.includes('instruction')) return 'alpaca';
  return 'prompt_completion';
}

describe('streaming a large file', () => {
  it('20k generated lines, with progress, never one big string', async () => {
    const encoder = new TextEncoder();
    let maxChunk = 0;
    async function* file(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 20_000; i += 100) {
        let block = '';
        for (let k = i; k < i + 100; k++) {
          block += k % 1000 === 999 ? '{broken\n' : JSON.stringify({ prompt: `Q${k}: what is ${k} + 1?`, completion: ` ${k + 1}` }) + '\n';
        }
        const bytes = encoder.encode(block);
        maxChunk = Math.max(maxChunk, bytes.byteLength);
        yield bytes;
      }
    }
    const progress: number[] = [];
    const { rows, report } = await loadJsonlDataset(file(), {
      tokenizer: qwen, maxLength: 64, onProgress: (p) => progress.push(p.lines), progressEveryLines: 5000,
    });
    expect(report.lines).toBe(20_000);
    expect(report.rows).toBe(19_980);
    expect(report.skipped).toBe(20);
    expect(report.errors[0].line).toBe(1000);
    expect(progress).toEqual([5000, 10000, 15000, 20000, 20000]);
    expect(maxChunk).toBeLessThan(10_000);
    expect(split(rows[5]).trained).toBe(' 6<|im_end|>');
  }, 60_000);
});

describe('overlong lines (issue 14)', () => {
  it('are skipped and reported with their length, the other rows kept', async () => {
    const text = jsonl({ text: 'the first row of text' }, 'z'.repeat(5000), { text: 'the third row of text' });
    const { rows, report } = await load(text, { maxLineLength: 1000 });
    expect(rows).toHaveLength(2);
    expect(report.skipped).toBe(1);
    expect(report.errors).toEqual([{ line: 2, reason: '5000 characters long, over the 1000-character limit for one line (a file without line breaks?)' }]);
  });
});
