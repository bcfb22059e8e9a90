// Every training method the studio offers, by id (the page-side part of each; runtimes.ts holds their GPU side): the
// trainer, the CLI, the worker and the Train screen look a method up here and never name one. Adding a method is one module (see method.ts) plus its kernels and tests; the registry's
// test says what is missing.
import type { TrainConfig } from '../config.ts';
import type { MethodId } from './ids.ts';
import { houlsbyMethod, pfeifferMethod } from './bottleneck/config.ts';
import { adaloraMethod } from './adalora/config.ts';
import { doraMethod } from './dora/config.ts';
import { fullMethod } from './full/config.ts';
import { ia3Method } from './ia3/config.ts';
import { loraMethod } from './lora/config.ts';
import type { TrainingMethod } from './method.ts';
import { promptTuningMethod } from './prompt-tuning/config.ts';
import { pTuningMethod } from './p-tuning/config.ts';
import { prefixTuningMethod } from './prefix-tuning/config.ts';

export const METHODS: Readonly<Record<MethodId, TrainingMethod>> = {
  lora: loraMethod,
  ia3: ia3Method,
  dora: doraMethod,
  full: fullMethod,
  'prompt-tuning': promptTuningMethod,
  'p-tuning': pTuningMethod,
  'prefix-tuning': prefixTuningMethod,
  houlsby: houlsbyMethod,
  pfeiffer: pfeifferMethod,
  adalora: adaloraMethod,
};

export function methodFor(id: MethodId): TrainingMethod {
  const m = (METHODS as Record<string, TrainingMethod | undefined>)[id];
  if (!m) throw new Error(`unknown method ${JSON.stringify(id)} (known: ${Object.keys(METHODS).join(', ')})`);
  return m;
}

/** The method a run continuing a saved adapter of method `id` trains: `id` itself unless its adapter lacks part of
 *  what it trains (TrainingMethod.continuesAs: a P-tuning adapter continues as prompt tuning). */
export function continuationMethod(id: MethodId): MethodId {
  return METHODS[id]?.continuesAs ?? id; // a saved run's unknown id passes through, as describeMethod's does
}

/** A method's label with its article, for the middle of a sentence: "a LoRA", "an IA³", "an AdaLoRA". */
export function aMethodLabel(id: MethodId): string {
  const { label } = METHODS[id];
  return `${/^[AEIOU]/i.test(label) ? 'an' : 'a'} ${label}`;
}

/** A run's method in a few words for lists: LoRA's rank and alpha ("r = 8, α = 16"), DoRA's with its name
 *  ("DoRA r = 8, α = 16"), a prompt method's virtual tokens ("Prompt tuning, 20 virtual tokens"), another method's
 *  name. */
export function describeMethod(c: Pick<TrainConfig, 'method' | 'rank' | 'alpha'> & Partial<Pick<TrainConfig, 'numVirtualTokens' | 'initR' | 'targetR'>>): string {
  const id = (c.method as string) === 'qlora' ? 'lora' : c.method; // a run saved before quantization was its own axis
  if (id === 'lora') return `r = ${c.rank}, α = ${c.alpha}`;
  if (id === 'dora') return `DoRA r = ${c.rank}, α = ${c.alpha}`;
  if (id === 'adalora' && c.initR && c.targetR) return `AdaLoRA r = ${c.initR} → ${c.targetR}, α = ${c.alpha}`;
  if ((id === 'prompt-tuning' || id === 'p-tuning' || id === 'prefix-tuning') && c.numVirtualTokens) return `${METHODS[id].label}, ${c.numVirtualTokens} virtual tokens`;
  return METHODS[id]?.label ?? id;
}
