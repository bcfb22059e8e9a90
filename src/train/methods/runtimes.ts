// The GPU side of every method in registry.ts, by id: what the trainer attaches to the model.
import type { MethodId } from './ids.ts';
import { houlsbyRuntime, pfeifferRuntime } from './bottleneck/runtime.ts';
import { adaloraRuntime } from './adalora/runtime.ts';
import { doraRuntime } from './dora/runtime.ts';
import { fullRuntime } from './full/runtime.ts';
import { ia3Runtime } from './ia3/runtime.ts';
import { loraRuntime } from './lora/runtime.ts';
import type { MethodRuntime } from './method.ts';
import { promptTuningRuntime } from './prompt-tuning/runtime.ts';
import { pTuningRuntime } from './p-tuning/runtime.ts';
import { prefixTuningRuntime } from './prefix-tuning/runtime.ts';

export const METHOD_RUNTIMES: Readonly<Record<MethodId, MethodRuntime>> = {
  lora: loraRuntime,
  ia3: ia3Runtime,
  dora: doraRuntime,
  full: fullRuntime,
  'prompt-tuning': promptTuningRuntime,
  'p-tuning': pTuningRuntime,
  'prefix-tuning': prefixTuningRuntime,
  houlsby: houlsbyRuntime,
  pfeiffer: pfeifferRuntime,
  adalora: adaloraRuntime,
};

export function runtimeFor(id: MethodId): MethodRuntime {
  const r = (METHOD_RUNTIMES as Record<string, MethodRuntime | undefined>)[id];
  if (!r) throw new Error(`method ${JSON.stringify(id)} has no GPU runtime (known: ${Object.keys(METHOD_RUNTIMES).join(', ')})`);
  return r;
}
