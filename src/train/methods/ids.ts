// The methods the studio trains, by the id the config, the CLI (--method) and saved runs use. Kept apart from the
// registry so the config module can validate an id without importing every method's implementation.
export const METHOD_IDS = ['lora', 'ia3', 'dora', 'full', 'prompt-tuning', 'p-tuning', 'prefix-tuning', 'houlsby', 'pfeiffer', 'adalora'] as const;
export type MethodId = (typeof METHOD_IDS)[number];
