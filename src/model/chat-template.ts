// Chat templates from tokenizer_config.json, rendered with @huggingface/jinja as transformers'
// apply_chat_template(tokenize=False) renders them.
//
// Which template:
//   1. the text of a chat_template.jinja file, when the caller has one (newer Hub repos ship the
//      template there; transformers prefers it over tokenizer_config.json);
//   2. tokenizer_config.json "chat_template": a string, or a list of {name, template} from which
//      the one named `name` (default "default") is taken;
//   3. otherwise FALLBACK_CHAT_TEMPLATE, below.
//
// The fallback is ChatML ("<|im_start|>role\ncontent<|im_end|>\n", generation prompt
// "<|im_start|>assistant\n"). Why ChatML: it is what transformers itself used as the class-level
// default_chat_template until it dropped defaults (v4.43), so models trained with it here behave like
// models fine-tuned elsewhere without a template; its role markers are explicit and unambiguous text
// even for tokenizers that lack <|im_start|> as a special token (GPT-2, the bundled demo model),
// and it encodes every role, including system. The studio labels rows rendered this way so users
// know the base model had no template of its own.
//
// Variables given to the template, as transformers gives them: messages, add_generation_prompt,
// bos_token / eos_token / pad_token / unk_token (the token text, or none), tools and documents
// (undefined unless passed), raise_exception(msg) (throws ChatTemplateError with the template's own
// message), strftime_now(fmt), plus any extra variables (e.g. enable_thinking).

import { Environment, Interpreter, Template } from '@huggingface/jinja';
import type { HfTokenizer } from './tokenizer.ts';

export const FALLBACK_CHAT_TEMPLATE =
  "{% for message in messages %}" +
  "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  '{% endfor %}' +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export class ChatTemplateError extends Error {
  override name = 'ChatTemplateError';
}

export interface ChatMessage {
  role: string;
  content: string;
  [extra: string]: unknown;
}

export type ChatTemplateOrigin = 'chat_template.jinja' | 'tokenizer_config.json' | 'fallback';

/** The special-token texts a template may reference (null when the tokenizer has none). */
export interface TemplateSpecialTokens {
  bos_token?: string | null;
  eos_token?: string | null;
  pad_token?: string | null;
  unk_token?: string | null;
}

export interface RenderOptions {
  addGenerationPrompt?: boolean;
  /** Extra template variables (tools, documents, enable_thinking, …). */
  variables?: Record<string, unknown>;
}

export interface SelectOptions {
  /** Text of chat_template.jinja, when the model folder has one. */
  jinjaFile?: string | null;
  /** Which named template to take from a list (default "default"). */
  name?: string;
}

/** Pick the template text and say where it came from (see the file header for the order). */
export function selectChatTemplate(
  tokenizerConfig: Record<string, unknown> | null | undefined,
  options: SelectOptions = {},
): { source: string; origin: ChatTemplateOrigin } {
  if (options.jinjaFile != null && options.jinjaFile.trim() !== '') {
    return { source: options.jinjaFile, origin: 'chat_template.jinja' };
  }
  const value = tokenizerConfig?.chat_template;
  if (typeof value === 'string' && value.trim() !== '') return { source: value, origin: 'tokenizer_config.json' };
  if (Array.isArray(value)) {
    const wanted = options.name ?? 'default';
    const names: string[] = [];
    for (const entry of value) {
      const e = entry as { name?: unknown; template?: unknown };
      if (typeof e?.name !== 'string' || typeof e.template !== 'string') {
        throw new ChatTemplateError('tokenizer_config.json: chat_template list entries must be {name, template} strings');
      }
      names.push(e.name);
      if (e.name === wanted) return { source: e.template, origin: 'tokenizer_config.json' };
    }
    // As transformers: a list without the wanted name is an error, never a silent fallback.
    throw new ChatTemplateError(`tokenizer_config.json: no chat template named "${wanted}". Should be one of: ${names.join(', ')}`);
  }
  if (value !== undefined && value !== null && typeof value !== 'string') {
    throw new ChatTemplateError(`tokenizer_config.json: chat_template must be a string or a list, got ${typeof value}`);
  }
  return { source: FALLBACK_CHAT_TEMPLATE, origin: 'fallback' };
}

export class ChatTemplate {
  readonly source: string;
  readonly origin: ChatTemplateOrigin;
  private readonly program: Template['parsed'];
  private readonly special: TemplateSpecialTokens;

  constructor(source: string, origin: ChatTemplateOrigin, special: TemplateSpecialTokens = {}) {
    this.source = source;
    this.origin = origin;
    this.special = special;
    try {
      this.program = new Template(source).parsed;
    } catch (e) {
      throw new ChatTemplateError(`chat template (${origin}) does not parse: ${(e as Error).message}`);
    }
  }

  /** The template a model's tokenizer_config.json (or chat_template.jinja) selects, or the fallback. */
  static fromTokenizerConfig(
    tokenizerConfig: Record<string, unknown> | null | undefined,
    special: TemplateSpecialTokens,
    options: SelectOptions = {},
  ): ChatTemplate {
    const { source, origin } = selectChatTemplate(tokenizerConfig, options);
    return new ChatTemplate(source, origin, special);
  }

  /** The template for a loaded tokenizer: its tokenizer_config.json and special tokens. */
  static forTokenizer(tokenizer: HfTokenizer, options: SelectOptions = {}): ChatTemplate {
    const s = tokenizer.special;
    return ChatTemplate.fromTokenizerConfig(tokenizer.config, {
      bos_token: s.bos?.content ?? null, eos_token: s.eos?.content ?? null,
      pad_token: s.pad?.content ?? null, unk_token: s.unk?.content ?? null,
    }, options);
  }

  get isFallback(): boolean {
    return this.origin === 'fallback';
  }

  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    const env = new Environment();
    setGlobals(env, this.origin);
    const vars: Record<string, unknown> = {
      bos_token: this.special.bos_token ?? null,
      eos_token: this.special.eos_token ?? null,
      pad_token: this.special.pad_token ?? null,
      unk_token: this.special.unk_token ?? null,
      ...options.variables,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    for (const [key, value] of Object.entries(vars)) if (value !== undefined) env.set(key, value);
    try {
      const out = new Interpreter(env).run(this.program).value;
      return String(out);
    } catch (e) {
      if (e instanceof ChatTemplateError) throw e;
      throw new ChatTemplateError(`chat template (${this.origin}) failed to render: ${(e as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Globals. @huggingface/jinja's own setup cannot be given a different raise_exception, so we declare
// the same set ourselves: constants, range, strftime_now, and a raise_exception that throws our error.

/** The most numbers range() may make in one rendering, all calls together. Templates loop over messages, never
 *  over millions of numbers; without a bound, `range(1000000000)` in a downloaded tokenizer_config.json exhausts the
 *  tab's memory, and nested ranges its time (found by tokenizer.fuzz.test.ts). */
export const RANGE_BUDGET = 100_000;

function setGlobals(env: Environment, origin: ChatTemplateOrigin): void {
  for (const [k, v] of [['false', false], ['true', true], ['False', false], ['True', true]] as const) env.set(k, v);
  env.set('none', null);
  env.set('None', null);
  env.set('raise_exception', (message: unknown) => {
    throw new ChatTemplateError(`chat template raised: ${String(message)} (${origin})`);
  });
  const budget = { left: RANGE_BUDGET };
  env.set('range', (...args: unknown[]) => range(origin, budget, args));
  env.set('strftime_now', (format: unknown) => strftime(new Date(), String(format)));
}

/** Python's range over integers, counted against the rendering's budget before anything is allocated. */
function range(origin: ChatTemplateOrigin, budget: { left: number }, args: unknown[]): number[] {
  const fail = (why: string) => new ChatTemplateError(`chat template (${origin}): range(${args.map(String).join(', ')}) ${why}`);
  if (args.length < 1 || args.length > 3) throw fail(`takes 1 to 3 arguments, got ${args.length}`);
  for (const a of args) if (!Number.isSafeInteger(a)) throw fail(`needs integer arguments, got ${typeof a === 'number' ? a : typeof a}`);
  let [start, stop, step = 1] = args as number[];
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw fail('step must not be zero');
  const count = Math.max(0, Math.ceil((stop - start) / step));
  if (count > budget.left) {
    throw fail(`would make ${count} numbers: one rendering may make at most ${RANGE_BUDGET} in all (${RANGE_BUDGET - budget.left} made so far)`);
  }
  budget.left -= count;
  const out: number[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = start + i * step;
  return out;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September',
  'October', 'November', 'December'];

/** The strftime directives chat templates use (dates in system prompts); local time, as Python's. */
export function strftime(d: Date, format: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return format.replace(/%([a-zA-Z%])/g, (all, c: string) => {
    switch (c) {
      case 'Y': return String(d.getFullYear());
      case 'y': return pad(d.getFullYear() % 100);
      case 'm': return pad(d.getMonth() + 1);
      case 'd': return pad(d.getDate());
      case 'H': return pad(d.getHours());
      case 'M': return pad(d.getMinutes());
      case 'S': return pad(d.getSeconds());
      case 'B': return MONTHS[d.getMonth()];
      case 'b': return MONTHS[d.getMonth()].slice(0, 3);
      case 'A': return DAYS[d.getDay()];
      case 'a': return DAYS[d.getDay()].slice(0, 3);
      case '%': return '%';
      default: return all;
    }
  });
}
