// Child process of tokenizer.fuzz.test.ts (run with a 256 MiB heap, so a hostile file that makes loading allocate
// without bound crashes this process and fails the test): fuzzes loading a model folder's tokenizer.json,
// tokenizer_config.json and chat_template.jinja (loadTokenizerFiles), then encoding, decoding and rendering a
// conversation with what loaded. Every case either works within the contract (ids in the vocabulary) or ends in a
// TokenizerError / ChatTemplateError naming the folder and the file. Argument: the property ('files' or
// 'templates') and the demo model's folder; FUZZ_SEED / FUZZ_RUNS from the environment (testing-fuzz.ts). Prints one
// JSON line: { property, seed, runs, ok, error? }.
import fc from 'fast-check';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChatTemplateError } from './chat-template.ts';
import { memoryFolder } from './sources/memory.ts';
import { FUZZ_RUNS, FUZZ_SEED, fuzzParams } from './testing-fuzz.ts';
import { loadTokenizerFiles } from './tokenizer-files.ts';
import { TokenizerError } from './tokenizer.ts';

const [property, demoDir] = process.argv.slice(2);
const baseTokenizer = JSON.parse(readFileSync(join(demoDir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
const baseConfig = JSON.parse(readFileSync(join(demoDir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
const FOLDER = 'fuzz-model';

// ---------------------------------------------------------------------------------------------------------------
// Hostile pieces

const hostileNumber = fc.constantFrom(-1, 0, 1, 2, 0.5, -0, 2 ** 31, 2 ** 32, 2 ** 53, 1e300, Number.MAX_SAFE_INTEGER);
const hostileString = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('', ' ', '<|im_end|>', '<|im_start|>', '<unk>', 'NaN', '\u0000', '\ud800', 'Ġ', '▁', '{{', '%}'));
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileNumber, hostileString, fc.constant(null), fc.boolean(), fc.constant([]), fc.constant({}),
  fc.array(fc.oneof(hostileNumber, hostileString), { maxLength: 3 }),
  fc.dictionary(hostileString, fc.oneof(hostileNumber, hostileString, fc.constant(null)), { maxKeys: 3 }),
);
const typeName = fc.constantFrom('BPE', 'WordPiece', 'Unigram', 'WordLevel', 'ByteLevel', 'Metaspace', 'Sequence', 'TemplateProcessing', 'Split', 'NFC', 'Replace', 'Strip', '', 'Nope');

/** Paths into an object (keys and array indexes), the first few entries of big maps and lists only. */
function paths(value: unknown, prefix: (string | number)[] = [], depth = 0, out: (string | number)[][] = []): (string | number)[][] {
  if (depth > 4 || value === null || typeof value !== 'object') return out;
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value as object);
  for (const [k, v] of entries.slice(0, 6)) {
    out.push([...prefix, k]);
    paths(v, [...prefix, k], depth + 1, out);
  }
  return out;
}

function setPath(root: Record<string, unknown>, path: (string | number)[], value: unknown, remove: boolean): void {
  let node = root as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) {
    const next = node[k];
    if (next === null || typeof next !== 'object') return;
    node = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1];
  value = structuredClone(value); // a value put twice must not make the structure cyclic
  if (remove) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete node[last];
  } else {
    node[last] = value;
  }
}

const tokenizerPaths = paths(baseTokenizer);
const configPaths = paths(baseConfig);

const edit = (count: number) =>
  fc.array(fc.record({ at: fc.nat(), remove: fc.boolean(), value: fc.oneof(hostileValue, typeName) }), { maxLength: count });

const byteMutations = fc.array(fc.record({ kind: fc.constantFrom('flip', 'cut', 'insert'), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 3 });

function mutateBytes(text: string, mutations: { kind: string; at: number; value: number }[]): Uint8Array {
  let bytes = new TextEncoder().encode(text);
  for (const m of mutations) {
    const at = m.at % Math.max(1, bytes.length);
    if (m.kind === 'flip') bytes[at] = m.value;
    else if (m.kind === 'cut') bytes = bytes.slice(0, at);
    else bytes = new Uint8Array([...bytes.subarray(0, at), m.value, ...bytes.subarray(at)]);
  }
  return bytes;
}

// Chat templates: valid pieces and hostile ones (unparsable, raising, huge ranges, deep recursion, odd accesses).
const rangeArg = fc.constantFrom('3', '0', '-5', '1000', '10000000', '1000000000', '9007199254740992', "'a'", '0.5', 'none', '1e300');
const templatePiece = fc.oneof(
  fc.constantFrom(
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}",
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    '{{ bos_token }}', '{{ eos_token + pad_token }}', "{{ raise_exception('no system messages') }}", '{{ messages[9].content }}',
    '{{ x.y.z }}', "{{ 'ab' * 100000000 }}", '{{ messages | tojson }}', '{{ 1 | nope }}', '{% for %}', '{{', '{% endif %}',
    '{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}', "{{ strftime_now('%Y-%m-%d') }}", '{{ messages[0].content | upper }}',
    '{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}', '{{ 1 / 0 }}',
    "{{ messages[0]['content'].split(' ') | length }}", '{{ none.x }}',
  ),
  fc.tuple(rangeArg, rangeArg).map(([a, b]) => `{% for i in range(${a}) %}{% for j in range(${b}) %}x{% endfor %}{% endfor %}`),
  rangeArg.map((a) => `{{ range(${a}) | length }}`),
  fc.tuple(rangeArg, rangeArg, rangeArg).map(([a, b, c]) => `{{ range(${a}, ${b}, ${c}) | length }}`),
  hostileString,
);
const template = fc.array(templatePiece, { minLength: 1, maxLength: 4 }).map((p) => p.join(''));
const chatTemplateValue: fc.Arbitrary<unknown> = fc.oneof(
  template, hostileValue,
  fc.array(fc.record({ name: fc.oneof(fc.constantFrom('default', 'tool_use'), hostileString), template: fc.oneof(template, hostileValue) }), { maxLength: 3 }),
);
const role = fc.constantFrom('system', 'user', 'assistant', 'tool', '', 'x');
const messages = fc.array(fc.record({ role, content: fc.oneof(hostileString, fc.string({ maxLength: 40 })) }), { maxLength: 4 });

// ---------------------------------------------------------------------------------------------------------------
// The contract

function typedFailure(e: unknown): void {
  if (!(e instanceof TokenizerError || e instanceof ChatTemplateError)) throw new Error(`untyped failure: ${String(e)}`, { cause: e });
  if (!e.message.startsWith(`${FOLDER}: `)) throw new Error(`the error does not name the folder: ${e.message}`);
  if (!/tokenizer\.json|tokenizer_config\.json|chat_template\.jinja|chat template/.test(e.message)) throw new Error(`the error names no file: ${e.message}`);
}

/** Where each case is written before it runs (FUZZ_CASE_FILE): the one that crashes the process is named by it. */
const caseFile = process.env.FUZZ_CASE_FILE;

async function check(files: Record<string, Uint8Array | string>, conversation: { role: string; content: string }[]): Promise<void> {
  if (caseFile) {
    const shown = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? v : new TextDecoder().decode(v)]));
    writeFileSync(caseFile, JSON.stringify({ files: shown, conversation }));
  }
  let loaded;
  try {
    loaded = await loadTokenizerFiles(memoryFolder(files, FOLDER));
  } catch (e) {
    typedFailure(e);
    return;
  }
  if (!loaded) throw new Error('a folder with a tokenizer.json loaded no tokenizer');
  const { tokenizer, template: chat } = loaded;
  for (const text of ['Hello, matey! <|im_end|> 👋', '', ' \u0000 ']) {
    const ids = tokenizer.encode(text);
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize) throw new Error(`encode gave id ${id} outside [0, ${tokenizer.vocabSize})`);
    tokenizer.decode(ids);
    tokenizer.decode(ids, { skipSpecialTokens: true });
  }
  try {
    const text = chat.render(conversation, { addGenerationPrompt: true });
    if (typeof text !== 'string') throw new Error('render gave no string');
    tokenizer.encode(text, { addSpecialTokens: false });
  } catch (e) {
    if (!(e instanceof ChatTemplateError)) throw new Error(`untyped render failure: ${String(e)}`, { cause: e });
    if (!/^chat template.*\((chat_template\.jinja|tokenizer_config\.json|fallback)\)/s.test(e.message)) throw new Error(`the render error names no file: ${e.message}`);
  }
}

const properties = {
  /** tokenizer.json and tokenizer_config.json: keys removed or given hostile values, and bytes flipped, cut, inserted. */
  files: () => fc.asyncProperty(edit(4), edit(4), byteMutations, byteMutations, fc.boolean(), messages, async (tokEdits, cfgEdits, tokBytes, cfgBytes, withConfig, conversation) => {
    const tok = structuredClone(baseTokenizer);
    for (const e of tokEdits) setPath(tok, tokenizerPaths[e.at % tokenizerPaths.length], e.value, e.remove);
    const cfg = structuredClone(baseConfig);
    for (const e of cfgEdits) setPath(cfg, configPaths[e.at % configPaths.length], e.value, e.remove);
    const files: Record<string, Uint8Array> = { 'tokenizer.json': mutateBytes(JSON.stringify(tok), tokBytes) };
    if (withConfig) files['tokenizer_config.json'] = mutateBytes(JSON.stringify(cfg), cfgBytes);
    await check(files, conversation);
  }),
  /** Chat templates from tokenizer_config.json (a string, a list, anything) or chat_template.jinja, and hostile special tokens. */
  templates: () => fc.asyncProperty(chatTemplateValue, fc.option(template), fc.record({ bos: hostileValue, eos: hostileValue, pad: hostileValue }), fc.boolean(), messages, async (value, jinja, special, keepSpecial, conversation) => {
    const cfg: Record<string, unknown> = { ...baseConfig, chat_template: value };
    if (!keepSpecial) Object.assign(cfg, { bos_token: special.bos, eos_token: special.eos, pad_token: special.pad });
    const files: Record<string, string> = { 'tokenizer.json': JSON.stringify(baseTokenizer), 'tokenizer_config.json': JSON.stringify(cfg) };
    if (jinja !== null) files['chat_template.jinja'] = jinja;
    await check(files, conversation);
  }),
};

const prop = properties[property as keyof typeof properties];
if (!prop) throw new Error(`unknown property ${property}: one of ${Object.keys(properties).join(', ')}`);
const started = performance.now();
try {
  if (property === 'files') await fc.assert(properties.files(), fuzzParams());
  else await fc.assert(properties.templates(), fuzzParams());
  console.log(JSON.stringify({ property, seed: FUZZ_SEED, runs: FUZZ_RUNS, ok: true, seconds: (performance.now() - started) / 1000 }));
} catch (e) {
  const cause = (e as Error).cause;
  const why = cause instanceof Error ? `${cause.message}${cause.cause instanceof Error ? ` (${cause.cause.stack?.split('\n').slice(0, 4).join(' ')})` : ''}` : '';
  console.log(JSON.stringify({ property, seed: FUZZ_SEED, runs: FUZZ_RUNS, ok: false, error: `${String((e as Error).message).slice(0, 3000)}\n${why}` }));
  process.exitCode = 1;
}
