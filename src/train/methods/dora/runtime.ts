// DoRA's GPU side: every wrapped Linear's A [r, in], B [out, r] and magnitude m (out) in the flat trainable buffers,
// bound as Linear.dora with a scales buffer of its own ([n | c | c − 1], rewritten by each forward). A starts as LoRA's
// (kaiming-uniform from the seed, the same draws as lora-state.ts), B at zero, and m at ‖W + s·B·A‖ — computed on the
// GPU by the first recorded forward (Linear.dora.initMagnitude) — unless given (golden runs, continuing).
import { STORAGE_USAGE } from '../../../gpu/buffers.ts';
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import { doraScalesStride } from '../../../gpu/kernels/dora.ts';
import { Rng } from '../../../data/rng.ts';
import { assertUnwrapped, type Linear } from '../../../model/runtime/linear.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import { loraScale } from '../lora-scale.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import { doraMagnitudeSegmentName, doraMethod } from './config.ts';

export const doraRuntime: MethodRuntime = {
  id: 'dora',
  attach(e, model, c, modules, init) {
    const byPath = new Map(model.modules.map((m) => [m.module.peftPath, m.linear]));
    const tensors = modules.flatMap((m) => doraMethod.tensors(m, c));
    const layout = planAdamwLayout(tensors);
    const known = new Map(layout.segments.map((s) => [s.name, s]));
    for (const [name, values] of init.initial ?? []) {
      const seg = known.get(name);
      if (!seg) throw new Error(`initial value given for ${name}, which is not a DoRA tensor (lora_A, lora_B, lora_magnitude_vector) of the chosen modules`);
      if (values.length !== seg.length) throw new Error(`initial ${name} has ${values.length} values, expected ${seg.length}`);
    }
    // Checked before anything is allocated or attached, so a refusal leaves the model as it was.
    for (const m of modules) {
      const linear = byPath.get(m.peftPath);
      if (!linear) throw new Error(`DoRA target ${m.peftPath} is not a linear layer of the loaded model`);
      assertUnwrapped(linear, m.peftPath);
    }
    const host = new Float32Array(layout.totalLength);
    const rng = new Rng(init.seed);
    modules.forEach((m, i) => {
      const [a, b, mag] = layout.segments.slice(3 * i, 3 * i + 3);
      const givenA = init.initial?.get(a.name);
      if (givenA) host.set(givenA, a.offset);
      else {
        const bound = 1 / Math.sqrt(m.inFeatures);
        for (let j = 0; j < a.length; j++) host[a.offset + j] = (rng.next() * 2 - 1) * bound;
      }
      const givenB = init.initial?.get(b.name);
      if (givenB) host.set(givenB, b.offset);
      const givenM = init.initial?.get(mag.name);
      if (givenM) host.set(givenM, mag.offset);
    });
    const buffers = allocateTrainable(e, layout, host, 'dora');
    const scale = loraScale(c.alpha, c.rank, c.rslora);
    const scales: GPUBuffer[] = [];
    const linears: Linear[] = modules.map((m, i) => {
      const linear = byPath.get(m.peftPath)!;
      const [a, b, mag] = layout.segments.slice(3 * i, 3 * i + 3);
      const s = e.buffers.acquire(3 * doraScalesStride(m.outFeatures) * 4, STORAGE_USAGE, `${m.peftPath}.dora.scales`);
      scales.push(s);
      linear.dora = {
        rank: c.rank,
        scale,
        dropout: c.dropout,
        A: segmentBinding(buffers.params, a.offset, a.length),
        B: segmentBinding(buffers.params, b.offset, b.length),
        dA: segmentBinding(buffers.grads, a.offset, a.length),
        dB: segmentBinding(buffers.grads, b.offset, b.length),
        m: segmentBinding(buffers.params, mag.offset, mag.length),
        dm: segmentBinding(buffers.grads, mag.offset, mag.length),
        scales: s,
        seed: 0,
        initMagnitude: !init.initial?.has(doraMagnitudeSegmentName(m.peftPath)),
      };
      return linear;
    });
    const attached: AttachedMethod = {
      ...buffers,
      trainableParams: tensors.reduce((s, t) => s + t.length, 0),
      setDropoutSeeds(seedOf) {
        linears.forEach((l, i) => (l.dora!.seed = seedOf(i)));
      },
      suspendDropout() {
        const saved = linears.map((l) => l.dora!.dropout);
        for (const l of linears) l.dora!.dropout = 0;
        return () => linears.forEach((l, i) => (l.dora!.dropout = saved[i]));
      },
      paramsWritten() {
        for (const l of linears) l.dora!.initMagnitude = false;
      },
      detach() {
        for (const l of linears) delete l.dora;
        for (const s of scales) e.buffers.release(s);
        releaseTrainable(e, buffers);
      },
    };
    return attached;
  },
};
