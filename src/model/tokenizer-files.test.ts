// A model folder's tokenizer files (tokenizer-files.ts): the cases tokenizer.fuzz.test.ts found, fixed, and the
// size limits. Errors name the folder, the file and the entry.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChatTemplateError, RANGE_BUDGET } from './chat-template.ts';
import { memoryFolder } from './sources/memory.ts';
import { loadTokenizerFiles, TOKENIZER_FILE_LIMITS } from './tokenizer-files.ts';
import { TokenizerError } from './tokenizer.ts';

const DEMO = join(process.cwd(), 'public', 'models', 'demo-llama');
const tokenizerJson = () => JSON.parse(readFileSync(join(DEMO, 'tokenizer.json'), 'utf8')) as { added_tokens: { id: unknown; content: unknown }[] };
const tokenizerConfig = () => JSON.parse(readFileSync(join(DEMO, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;

async function loadError(files: Record<string, string | Uint8Array>): Promise<Error> {
  return loadTokenizerFiles(memoryFolder(files, 'org/model')).then(() => new Error('loaded'), (e: Error) => e);
}

describe('tokenizer files', () => {
  it('loads the demo model\'s tokenizer and template; no tokenizer.json is no tokenizer', async () => {
    const loaded = await loadTokenizerFiles(memoryFolder({ 'tokenizer.json': JSON.stringify(tokenizerJson()), 'tokenizer_config.json': JSON.stringify(tokenizerConfig()) }));
    expect(loaded?.tokenizer.vocabSize).toBe(1619);
    expect(loaded?.template.origin).toBe('tokenizer_config.json');
    expect(await loadTokenizerFiles(memoryFolder({ 'config.json': '{}' }))).toBeNull();
  });

  it('refuses an added token whose id is not an integer (found by fuzzing: encode() gave [] as an id)', async () => {
    for (const [id, shown] of [[[], '[]'], [-1, '-1'], [2 ** 31, '2147483648'], ['2', '"2"'], [0.5, '0.5']] as const) {
      const tok = tokenizerJson();
      tok.added_tokens[2].id = id;
      const err = await loadError({ 'tokenizer.json': JSON.stringify(tok) });
      expect(err).toBeInstanceOf(TokenizerError);
      expect(err.message).toBe(`org/model: tokenizer.json: added_tokens[2].id must be an integer in [0, 2^31), got ${shown}`);
    }
    const tok = tokenizerJson();
    tok.added_tokens[1].content = 7;
    expect((await loadError({ 'tokenizer.json': JSON.stringify(tok) })).message).toBe('org/model: tokenizer.json: added_tokens[1].content must be a string, got 7');
    const cfg = tokenizerConfig();
    cfg.added_tokens_decoder = { '1e3': { content: '<new>' } };
    expect((await loadError({ 'tokenizer.json': JSON.stringify(tokenizerJson()), 'tokenizer_config.json': JSON.stringify(cfg) })).message)
      .toBe('org/model: tokenizer_config.json: added_tokens_decoder key "1e3" is not an id');
  });

  it('bounds range() in a chat template (found by fuzzing: range(1000000000) exhausted a 256 MiB heap)', async () => {
    const cfg = { ...tokenizerConfig(), chat_template: '{% for i in range(1000000000) %}x{% endfor %}' };
    const loaded = await loadTokenizerFiles(memoryFolder({ 'tokenizer.json': JSON.stringify(tokenizerJson()), 'tokenizer_config.json': JSON.stringify(cfg) }));
    const render = () => loaded!.template.render([{ role: 'user', content: 'hi' }]);
    expect(render).toThrow(ChatTemplateError);
    expect(render).toThrow(`chat template (tokenizer_config.json): range(1000000000) would make 1000000000 numbers: one rendering may make at most ${RANGE_BUDGET} in all (0 made so far)`);
    // Nested ranges count together: 400 × 400 = 160 000 numbers, over the budget, refused part way.
    const nested = { ...tokenizerConfig(), chat_template: '{% for i in range(400) %}{% for j in range(400) %}{% endfor %}{% endfor %}' };
    const t2 = await loadTokenizerFiles(memoryFolder({ 'tokenizer.json': JSON.stringify(tokenizerJson()), 'tokenizer_config.json': JSON.stringify(nested) }));
    expect(() => t2!.template.render([])).toThrow(/range\(400\) would make 400 numbers: .* \(100000 made so far\)/);
    // Within the budget, Python's semantics; non-integers refused as Python does.
    const ok = { ...tokenizerConfig(), chat_template: '{{ range(5) | join(",") }}|{{ range(10, 0, -3) | join(",") }}|{{ range(2, 2) | length }}' };
    const t3 = await loadTokenizerFiles(memoryFolder({ 'tokenizer.json': JSON.stringify(tokenizerJson()), 'tokenizer_config.json': JSON.stringify(ok) }));
    expect(t3!.template.render([])).toBe('0,1,2,3,4|10,7,4,1|0');
    const bad = { ...tokenizerConfig(), chat_template: '{{ range(0.5) }}' };
    const t4 = await loadTokenizerFiles(memoryFolder({ 'tokenizer.json': JSON.stringify(tokenizerJson()), 'tokenizer_config.json': JSON.stringify(bad) }));
    expect(() => t4!.template.render([])).toThrow('chat template (tokenizer_config.json): range(0.5) needs integer arguments, got 0.5');
  });

  it('refuses a file over its size limit before reading it', async () => {
    const files = memoryFolder({ 'tokenizer.json': JSON.stringify(tokenizerJson()) }, 'org/model');
    const big = {
      name: 'org/model',
      async open(path: string) {
        const real = await files.open(path);
        return real && { ...real, name: real.name, size: TOKENIZER_FILE_LIMITS['tokenizer.json'] + 1, read: async () => { throw new Error('read past the check'); } };
      },
    };
    const err = await loadTokenizerFiles(big).catch((e: Error) => e);
    expect(err).toBeInstanceOf(TokenizerError);
    expect((err as Error).message).toBe(`org/model: tokenizer.json: ${TOKENIZER_FILE_LIMITS['tokenizer.json'] + 1} bytes, more than the 134217728 bytes a tokenizer.json may take (is it the right file?)`);
  });
});
