// The bottleneck adapters' GPU side (houlsby and pfeiffer alike): D, b_d, U, b_u of every wrapped Linear as segments
// of the flat trainable buffers, bound as Linear.bottleneck. D and b_d start as nn.Linear(out, m) initialises them —
// U(±1/√out) for both (kaiming-uniform a=√5 gives that bound for the weight) — from the run's seed; U and b_u at zero,
// so step 0 is the base model. Values given in `initial` (golden runs, continuing from a saved adapter) replace them.
import { Rng } from '../../../data/rng.ts';
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import { updateBackwardNeedsOnes } from '../../../model/runtime/gpu-model.ts';
import { assertUnwrapped, type Linear } from '../../../model/runtime/linear.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import type { BottleneckConfigName } from './format.ts';
import { bottleneckSize } from './format.ts';
import { bottleneckTensors } from './config.ts';

function bottleneckRuntime(id: BottleneckConfigName): MethodRuntime {
  return {
    id,
    attach(e, model, c, modules, init) {
      const byPath = new Map(model.modules.map((m) => [m.module.peftPath, m.linear]));
      const tensors = modules.flatMap((m) => bottleneckTensors(m, c));
      const layout = planAdamwLayout(tensors);
      const known = new Map(layout.segments.map((s) => [s.name, s]));
      for (const [name, values] of init.initial ?? []) {
        const seg = known.get(name);
        if (!seg) throw new Error(`initial value given for ${name}, which is not a bottleneck adapter tensor of the chosen modules`);
        if (values.length !== seg.length) throw new Error(`initial ${name} has ${values.length} values, expected ${seg.length}`);
      }
      // Checked before anything is allocated or attached, so a refusal leaves the model as it was.
      for (const m of modules) {
        const linear = byPath.get(m.peftPath);
        if (!linear) throw new Error(`bottleneck adapter target ${m.peftPath} is not a linear layer of the loaded model`);
        assertUnwrapped(linear, m.peftPath);
      }
      const host = new Float32Array(layout.totalLength);
      const rng = new Rng(init.seed);
      modules.forEach((m, i) => {
        // D then b_d: each U(±1/√fan_in), fan_in = out_features; U and b_u stay zero.
        const bound = 1 / Math.sqrt(m.outFeatures);
        for (const seg of layout.segments.slice(4 * i, 4 * i + 2)) {
          for (let j = 0; j < seg.length; j++) host[seg.offset + j] = (rng.next() * 2 - 1) * bound;
        }
      });
      for (const [name, values] of init.initial ?? []) host.set(values, known.get(name)!.offset);
      const buffers = allocateTrainable(e, layout, host, id);
      const linears: Linear[] = modules.map((m, i) => {
        const linear = byPath.get(m.peftPath)!;
        const [D, bd, U, bu] = layout.segments.slice(4 * i, 4 * i + 4);
        const p = (s: typeof D) => segmentBinding(buffers.params, s.offset, s.length);
        const g = (s: typeof D) => segmentBinding(buffers.grads, s.offset, s.length);
        linear.bottleneck = {
          size: bottleneckSize(m.outFeatures, c.reductionFactor),
          activation: c.adapterActivation,
          D: p(D),
          bd: p(bd),
          U: p(U),
          bu: p(bu),
          dD: g(D),
          dbd: g(bd),
          dU: g(U),
          dbu: g(bu),
        };
        return linear;
      });
      updateBackwardNeedsOnes(model);
      const attached: AttachedMethod = {
        ...buffers,
        trainableParams: tensors.reduce((s, t) => s + t.length, 0),
        // No dropout in these adapters.
        setDropoutSeeds: () => {},
        suspendDropout: () => () => {},
        detach() {
          for (const l of linears) delete l.bottleneck;
          updateBackwardNeedsOnes(model);
          releaseTrainable(e, buffers);
        },
      };
      return attached;
    },
  };
}

export const houlsbyRuntime = bottleneckRuntime('houlsby');
export const pfeifferRuntime = bottleneckRuntime('pfeiffer');
