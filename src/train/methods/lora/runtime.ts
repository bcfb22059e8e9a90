// LoRA's GPU side: the flat A/B state of lora-state.ts bound to each wrapped Linear (Linear.lora).
import { attachLora } from '../../lora-state.ts';
import { loraSegmentName } from '../../lora-names.ts';
import type { MethodRuntime } from '../method.ts';

export const loraRuntime: MethodRuntime = {
  id: 'lora',
  attach(e, model, c, modules, init) {
    const initialA = new Map<string, Float32Array>();
    const initialB = new Map<string, Float32Array>();
    const known = new Set(modules.flatMap((m) => [loraSegmentName(m.peftPath, 'A'), loraSegmentName(m.peftPath, 'B')]));
    for (const [name, values] of init.initial ?? []) {
      if (!known.has(name)) throw new Error(`initial value given for ${name}, which is not a LoRA tensor of the chosen modules`);
      const which = name.endsWith('.lora_A') ? initialA : initialB;
      which.set(name.slice(0, name.lastIndexOf('.')), values);
    }
    return attachLora(e, model, c, init.seed, initialA.size ? initialA : undefined, initialB.size ? initialB : undefined, modules);
  },
};
