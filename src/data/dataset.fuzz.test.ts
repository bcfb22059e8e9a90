// Fuzzing JSONL loading (issue 14) with fast-check: streaming, format detection, chat templates and masking on rows
// built from every format's pieces with hostile values (wrong types, empty and odd strings, unknown roles, ids out of
// range), cut into chunks anywhere. Every load either gives rows within the contract (ids in the vocabulary, labels
// -100 or in it, one label per id, lengths ≤ maxLength) or ends in a DatasetError naming the file — never another
// exception.
// Seeds and case counts: src/model/testing-fuzz.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadTestTokenizer } from '../model/testing-tokenizers.ts';
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TEST_TIMEOUT, fuzzBanner, fuzzParams } from '../model/testing-fuzz.ts';
import { DatasetError, loadJsonlDataset } from './dataset.ts';
import { IGNORE_INDEX } from './encode.ts';

const qwen = loadTestTokenizer('qwen3');

const text = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('', ' ', '<|im_end|>', '{{ x }}', '\u0000', '\ud800', '👋'.repeat(5)));
const odd = fc.oneof(text, fc.integer(), fc.constant(null), fc.boolean(), fc.array(fc.integer({ min: -5, max: 200_000 }), { maxLength: 6 }), fc.constant({}));
const role = fc.constantFrom('system', 'user', 'assistant', 'human', 'gpt', 'tool', 'bot', '');
const row = fc.oneof(
  fc.record({ text: fc.oneof(text, odd) }),
  fc.record({ prompt: fc.oneof(text, odd), completion: fc.oneof(text, odd) }),
  fc.record({ instruction: text, input: fc.oneof(text, odd), output: fc.oneof(text, odd) }),
  fc.record({ messages: fc.oneof(fc.array(fc.record({ role, content: fc.oneof(text, odd) }), { maxLength: 4 }), odd) }),
  fc.record({ conversations: fc.array(fc.record({ from: role, value: fc.oneof(text, odd) }), { maxLength: 4 }) }),
  fc.record({ input_ids: fc.array(fc.integer({ min: -3, max: 200_000 }), { maxLength: 12 }), labels: fc.option(fc.array(fc.integer({ min: -101, max: 200_000 }), { maxLength: 12 })) }),
  odd,
);
const line = fc.oneof({ weight: 8, arbitrary: row.map((r) => JSON.stringify(r) ?? 'null') }, { weight: 1, arbitrary: fc.string({ maxLength: 30 }) });

describe(`JSONL datasets, fuzzed (FUZZ_SEED=${FUZZ_SEED}, ${FUZZ_RUNS} cases)`, () => {
  it('rows in any format, any chunking: rows under the loss contract, or a DatasetError naming the file', async () => {
    console.log(fuzzBanner('JSONL datasets'));
    await fc.assert(
      fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 64 }), fc.integer({ min: 2, max: 48 }), async (lines, chunk, maxLength) => {
        const bytes = new TextEncoder().encode(lines.join('\n'));
        const chunks = Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) => bytes.subarray(i * chunk, (i + 1) * chunk));
        try {
          const { rows } = await loadJsonlDataset(chunks, { tokenizer: qwen, maxLength, vocabSize: qwen.vocabSize, fileName: 'fuzz.jsonl' });
          for (const r of rows) {
            expect(r.input_ids.length).toBeLessThanOrEqual(maxLength);
            expect(r.labels.length).toBe(r.input_ids.length);
            // (Pre-tokenized rows may carry labels other than their ids: only the range is the contract.)
            r.labels.forEach((l) => expect(l === IGNORE_INDEX || (l >= 0 && l < qwen.vocabSize), `label ${l}`).toBe(true));
            r.input_ids.forEach((id) => expect(id >= 0 && id < qwen.vocabSize, `id ${id}`).toBe(true));
          }
        } catch (e) {
          if (!(e instanceof DatasetError)) throw new Error(`untyped failure: ${String(e)}`, { cause: e });
          expect(e.message.startsWith('fuzz.jsonl: ')).toBe(true);
        }
      }),
      fuzzParams(),
    );
  }, FUZZ_TEST_TIMEOUT);
});
