// Chat templates against transformers' apply_chat_template(tokenize=False) renderings
// (scripts/golden_tokenizers.py): Llama 3 and Qwen3 templates from real tokenizer_config.json files,
// and our ChatML fallback.

import { describe, expect, it } from 'vitest';
import golden from './golden/tokenizers.json';
import {
  ChatTemplate, ChatTemplateError, FALLBACK_CHAT_TEMPLATE, selectChatTemplate, strftime, type ChatMessage,
} from './chat-template.ts';
import { testTokenizerConfig } from './testing-tokenizers.ts';

interface ChatRecord {
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  rendered: string;
}
const chat = golden.chat as Record<string, Record<string, ChatRecord>>;

const templates: Record<string, ChatTemplate> = {
  llama3: ChatTemplate.fromTokenizerConfig(testTokenizerConfig('llama3'), {
    bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>',
  }),
  qwen3: ChatTemplate.fromTokenizerConfig(testTokenizerConfig('qwen3'), {
    bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>',
  }),
  'gpt2-fallback': ChatTemplate.fromTokenizerConfig({}, {
    bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>',
  }),
};

describe.each(Object.keys(chat))('chat template %s', (name) => {
  it.each(Object.keys(chat[name]))('renders %s byte-for-byte as transformers', (key) => {
    const rec = chat[name][key];
    expect(templates[name].render(rec.messages, { addGenerationPrompt: rec.add_generation_prompt })).toBe(rec.rendered);
  });
});

describe('chat template selection', () => {
  it('the fallback is the ChatML template the golden script renders with transformers', () => {
    expect(FALLBACK_CHAT_TEMPLATE).toBe(golden.fallback_chat_template);
    expect(templates['gpt2-fallback'].isFallback).toBe(true);
    expect(templates.qwen3.origin).toBe('tokenizer_config.json');
  });

  it('takes "default" (or the named one) from a list of templates', () => {
    const config = { chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] };
    expect(selectChatTemplate(config).source).toBe('D');
    expect(selectChatTemplate(config, { name: 'tool_use' }).source).toBe('T');
    expect(() => selectChatTemplate(config, { name: 'rag' })).toThrow(/no chat template named "rag".*tool_use, default/);
    expect(() => selectChatTemplate({ chat_template: [{ name: 'x', template: 'X' }] })).toThrow(ChatTemplateError);
  });

  it('prefers chat_template.jinja over tokenizer_config.json', () => {
    const sel = selectChatTemplate({ chat_template: 'C' }, { jinjaFile: 'J' });
    expect(sel).toEqual({ source: 'J', origin: 'chat_template.jinja' });
    expect(() => selectChatTemplate({ chat_template: 42 })).toThrow(/must be a string or a list/);
    expect(selectChatTemplate({}).origin).toBe('fallback');
  });

  it('raise_exception surfaces the template message as ChatTemplateError', () => {
    const t = new ChatTemplate(
      "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation roles must start with user') }}{% endif %}ok",
      'tokenizer_config.json',
    );
    expect(t.render([{ role: 'user', content: 'x' }])).toBe('ok');
    expect(() => t.render([{ role: 'assistant', content: 'x' }])).toThrow(ChatTemplateError);
    expect(() => t.render([{ role: 'assistant', content: 'x' }])).toThrow('chat template raised: Conversation roles must start with user');
  });

  it('passes bos/eos, extra variables, range and strftime_now', () => {
    const t = new ChatTemplate(
      "{{ bos_token }}{% for i in range(2) %}{{ i }}{% endfor %}{% if enable_thinking is defined %}T{% endif %}{{ eos_token }}|{{ strftime_now('%Y') }}",
      'tokenizer_config.json', { bos_token: '<s>', eos_token: '</s>' },
    );
    const year = String(new Date().getFullYear());
    expect(t.render([], { variables: { enable_thinking: false } })).toBe(`<s>01T</s>|${year}`);
    expect(t.render([])).toBe(`<s>01</s>|${year}`);
  });

  it('reports a template that does not parse', () => {
    expect(() => new ChatTemplate('{% for x in %}', 'tokenizer_config.json')).toThrow(/does not parse/);
  });

  it('strftime covers the directives templates use', () => {
    const d = new Date(2024, 6, 4, 9, 5, 3); // 4 July 2024 (a Thursday), local time
    expect(strftime(d, '%d %b %Y %H:%M:%S %A %B %y %%')).toBe('04 Jul 2024 09:05:03 Thursday July 24 %');
  });
});

describe('chat template for a loaded tokenizer', () => {
  it('takes the special tokens from the tokenizer', async () => {
    const { loadTestTokenizer } = await import('./testing-tokenizers.ts');
    const t = ChatTemplate.forTokenizer(loadTestTokenizer('qwen3'));
    const rec = chat.qwen3['sys_user_assistant|gen=1'];
    expect(t.render(rec.messages, { addGenerationPrompt: true })).toBe(rec.rendered);
  });
});
