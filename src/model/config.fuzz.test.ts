// Fuzzing the config.json mapping (issue 14) with fast-check: real configs with fields removed, replaced by values of
// other types or extreme numbers either map to a ModelConfig with positive integer sizes or end in a ConfigError
// naming the file — never another exception. Seeds and case counts: testing-fuzz.ts.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseModelConfig } from './config.ts';
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TEST_TIMEOUT, fuzzBanner, fuzzParams } from './testing-fuzz.ts';

const FIXTURES = join(process.cwd(), 'tests', 'fixtures', 'models');
const configs = readdirSync(FIXTURES).map((name) => JSON.parse(readFileSync(join(FIXTURES, name, 'config.json'), 'utf8')) as Record<string, unknown>);

const hostile = fc.oneof(
  fc.constantFrom(null, true, '', 'llama', [], {}, 0, -1, 0.5, 1e308, -1e308, 2 ** 53, Number.MAX_SAFE_INTEGER, 1e-300, '32'),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 8 }),
  fc.array(fc.integer({ min: -2, max: 64 }), { maxLength: 4 }),
  fc.dictionary(fc.constantFrom('type', 'rope_type', 'factor', 'original_max_position_embeddings', 'x'), fc.oneof(fc.integer(), fc.string({ maxLength: 6 }), fc.double())),
);

describe(`config.json, fuzzed (FUZZ_SEED=${FUZZ_SEED}, ${FUZZ_RUNS} cases)`, () => {
  it('a mutated config maps to positive integer sizes or ends in a ConfigError naming the file', () => {
    console.log(fuzzBanner('config.json'));
    const edit = fc.record({ key: fc.nat(), remove: fc.boolean(), value: hostile });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: configs.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 5 }), (which, edits) => {
        const json: Record<string, unknown> = structuredClone(configs[which]);
        for (const e of edits) {
          const keys = Object.keys(json);
          const key = keys[e.key % keys.length];
          if (e.remove) delete json[key];
          else json[key] = e.value;
        }
        try {
          const c = parseModelConfig(json, 'fuzz/config.json');
          for (const [field, v] of Object.entries({ hiddenSize: c.hiddenSize, numLayers: c.numLayers, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim, vocabSize: c.vocabSize, intermediateSize: c.intermediateSize })) {
            expect(Number.isSafeInteger(v) && v > 0, `${field} = ${v}`).toBe(true);
          }
        } catch (e) {
          if (!(e instanceof ConfigError)) throw new Error(`untyped failure: ${String(e)}`, { cause: e });
          expect(e.message.startsWith('fuzz/config.json: ')).toBe(true);
        }
      }),
      fuzzParams(),
    );
  }, FUZZ_TEST_TIMEOUT);
});
