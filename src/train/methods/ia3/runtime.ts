// IA³'s GPU side: one vector per wrapped Linear in the flat trainable buffers, bound as Linear.ia3 (l and its
// gradient); PEFT initialises every vector to 1.
import { assertUnwrapped } from '../../../model/runtime/linear.ts';
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import { ia3Method, isIa3Feedforward } from './config.ts';

export const ia3Runtime: MethodRuntime = {
  id: 'ia3',
  attach(e, model, c, modules, init) {
    const byPath = new Map(model.modules.map((m) => [m.module.peftPath, m.linear]));
    const tensors = modules.flatMap((m) => ia3Method.tensors(m, c));
    const layout = planAdamwLayout(tensors);
    const host = new Float32Array(layout.totalLength);
    const known = new Map(layout.segments.map((s) => [s.name, s]));
    for (const [name, values] of init.initial ?? []) {
      const seg = known.get(name);
      if (!seg) throw new Error(`initial value given for ${name}, which is not an IA³ vector of the chosen modules`);
      if (values.length !== seg.length) throw new Error(`initial ${name} has ${values.length} values, expected ${seg.length}`);
    }
    // Checked before anything is allocated or attached, so a refusal leaves the model as it was.
    for (const m of modules) {
      const linear = byPath.get(m.peftPath);
      if (!linear) throw new Error(`IA³ target ${m.peftPath} is not a linear layer of the loaded model`);
      assertUnwrapped(linear, m.peftPath);
    }
    for (const seg of layout.segments) host.set(init.initial?.get(seg.name) ?? new Float32Array(seg.length).fill(1), seg.offset);
    const buffers = allocateTrainable(e, layout, host, 'ia3');
    const linears = modules.map((m, i) => {
      const linear = byPath.get(m.peftPath)!;
      const seg = layout.segments[i];
      linear.ia3 = {
        feedforward: isIa3Feedforward(m),
        l: segmentBinding(buffers.params, seg.offset, seg.length),
        dl: segmentBinding(buffers.grads, seg.offset, seg.length),
      };
      return linear;
    });
    const attached: AttachedMethod = {
      ...buffers,
      trainableParams: tensors.reduce((s, t) => s + t.length, 0),
      // IA³ has no dropout.
      setDropoutSeeds: () => {},
      suspendDropout: () => () => {},
      detach() {
        for (const l of linears) delete l.ia3;
        releaseTrainable(e, buffers);
      },
    };
    return attached;
  },
};
