// An Ollama Modelfile beside an exported GGUF: FROM the model, ADAPTER the GGUF LoRA adapter when there is one,
// PARAMETER stop for each end-of-turn token, and TEMPLATE in Ollama's Go template syntax when the model's Jinja chat
// template is one of a few well-known ones (ChatML, Llama 3). Any other template is left out, and the file says so:
// Ollama then falls back to matching the GGUF's tokenizer.chat_template against its own table. There is no Ollama
// here to check a converted template, so only these hand-written, widely used forms are emitted.

export type KnownTemplate = 'chatml' | 'llama3';

/** Ollama's own templates for the chat formats we recognise (as in Ollama's template/ folder, system included). */
const OLLAMA_TEMPLATES: Record<KnownTemplate, { template: string; stops: string[] }> = {
  chatml: {
    template: `{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
`,
    stops: ['<|im_start|>', '<|im_end|>'],
  },
  llama3: {
    template: `{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

`,
    stops: ['<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
  },
};

/** Which known chat format a Jinja chat template renders, by its markers, or null. */
export function recogniseChatTemplate(jinja: string | null): KnownTemplate | null {
  if (!jinja) return null;
  if (jinja.includes('<|im_start|>') && jinja.includes('<|im_end|>')) return 'chatml';
  if (jinja.includes('<|start_header_id|>') && jinja.includes('<|eot_id|>')) return 'llama3';
  return null;
}

export interface ModelfileOptions {
  /** Path of the model GGUF as Ollama should read it (relative to the Modelfile, e.g. "./model.gguf"). */
  model: string;
  /** Path of the GGUF LoRA adapter, when the adapter is not merged. */
  adapter?: string | null;
  /** The model's Jinja chat template (tokenizer.chat_template), or null. */
  chatTemplate: string | null;
  /** End-of-sequence token texts (PARAMETER stop). */
  stops: string[];
}

export function ollamaModelfile(o: ModelfileOptions): { text: string; template: KnownTemplate | null } {
  const known = recogniseChatTemplate(o.chatTemplate);
  const lines = ['# Ollama Modelfile written by LoRA Studio. Use: ollama create my-model -f <this file>', `FROM ${o.model}`];
  if (o.adapter) lines.push(`ADAPTER ${o.adapter}`);
  if (known) {
    lines.push(`TEMPLATE """${OLLAMA_TEMPLATES[known].template}"""`);
  } else if (o.chatTemplate) {
    lines.push("# TEMPLATE left out: this model's chat template is not one LoRA Studio converts (ChatML, Llama 3);");
    lines.push('# Ollama matches the GGUF\'s tokenizer.chat_template against its own templates, or add a TEMPLATE here.');
  } else {
    lines.push('# TEMPLATE left out: the model has no chat template (a plain completion model).');
  }
  const stops = [...new Set([...o.stops, ...(known ? OLLAMA_TEMPLATES[known].stops : [])])];
  for (const s of stops) lines.push(`PARAMETER stop ${JSON.stringify(s)}`);
  return { text: `${lines.join('\n')}\n`, template: known };
}
