// AdaLoRA's GPU side. Every wrapped Linear runs LoRA's kernels (Linear.lora, fused or over an NF4 base) on
// A_eff = diag(E)·A, kept in a buffer of its own, with s = lora_alpha / (init_r + 1e-5); adalora.wgsl does the rest,
// in each step's own submission:
//   after the backward   ∂L/∂A_eff → ∂L/∂A and ∂L/∂E (grad_a); the orthogonality regulariser into the loss total and
//                        the gradients (gram, orth_loss, orth_grad)
//   after AdamW          the importance EMAs (while the schedule updates them), the triplet scores (on a budget step),
//                        A_eff again — with E masked by the frozen rank pattern in the final phase
// and on a budget step (every deltaT steps in the budget phase, and at total_step − tfinal), once the step is done: the
// scores are read back (M·r floats, copied out by the step's own submission: the one read besides the step's status),
// the threshold found on the host
// (schedule.ts), the mask written into the params' mask segments and E masked, A_eff recomputed — all before the next
// step is submitted. The EMAs and the mask live in the flat params as state segments (config.ts), so checkpoints
// resume exactly.
import { BufferUsage, STORAGE_USAGE, writeBuffer } from '../../../gpu/buffers.ts';
import { gpuCounters } from '../../../gpu/counters.ts';
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import {
  adaloraScratchFloats, adaloraTable, recordEffectiveA, recordGradThroughE, recordImportance, recordOrthRegulariser, recordScores,
  type AdaloraBuffers, type AdaloraDims,
} from '../../../gpu/kernels/adalora.ts';
import { Rng } from '../../../data/rng.ts';
import { assertUnwrapped, type Linear } from '../../../model/runtime/linear.ts';
import { ConfigError } from '../../config.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import { adaloraMethod, adaloraScale, adaloraScheduleErrors } from './config.ts';
import { budgetAction, maskToBudget, type AdaloraSchedule } from './schedule.ts';

/** N(0, std²) draws (Box–Muller over the run's seeded generator): PEFT's normal_(std=0.02) init of A and B. */
function fillNormal(out: Float32Array, offset: number, length: number, std: number, rng: Rng): void {
  for (let i = 0; i < length; i += 2) {
    const u = 1 - rng.next();
    const v = rng.next();
    const rad = Math.sqrt(-2 * Math.log(u));
    out[offset + i] = std * rad * Math.cos(2 * Math.PI * v);
    if (i + 1 < length) out[offset + i + 1] = std * rad * Math.sin(2 * Math.PI * v);
  }
}

export const adaloraRuntime: MethodRuntime = {
  id: 'adalora',
  attach(e, model, c, modules, init) {
    const r = c.initR;
    const byPath = new Map(model.modules.map((m) => [m.module.peftPath, m.linear]));
    const tensors = modules.flatMap((m) => adaloraMethod.tensors(m, c));
    const layout = planAdamwLayout(tensors);
    const known = new Map(layout.segments.map((s) => [s.name, s]));
    for (const [name, values] of init.initial ?? []) {
      const seg = known.get(name);
      if (!seg) throw new Error(`initial value given for ${name}, which is not an AdaLoRA tensor (lora_A, lora_B, lora_E, adalora_mask) of the chosen modules`);
      if (values.length !== seg.length) throw new Error(`initial ${name} has ${values.length} values, expected ${seg.length}`);
    }
    for (const m of modules) {
      const linear = byPath.get(m.peftPath);
      if (!linear) throw new Error(`AdaLoRA target ${m.peftPath} is not a linear layer of the loaded model`);
      assertUnwrapped(linear, m.peftPath);
    }
    const host = new Float32Array(layout.totalLength);
    const rng = new Rng(init.seed);
    const segs = modules.map((_, i) => {
      const [A, B, E, ipt, unc, mask] = layout.segments.slice(6 * i, 6 * i + 6);
      return { A, B, E, ipt, unc, mask };
    });
    segs.forEach((s) => {
      // PEFT's reset_lora_parameters: A, B ~ N(0, 0.02²), E = 0; the mask keeps every triplet.
      for (const seg of [s.A, s.B]) {
        const given = init.initial?.get(seg.name);
        if (given) host.set(given, seg.offset);
        else fillNormal(host, seg.offset, seg.length, 0.02, rng);
      }
      host.fill(1, s.mask.offset, s.mask.offset + r);
      for (const seg of [s.E, s.mask]) {
        const given = init.initial?.get(seg.name);
        if (given) host.set(given, seg.offset);
      }
    });
    const buffers = allocateTrainable(e, layout, host, 'adalora');
    const effLayout = planAdamwLayout(modules.map((m) => ({ name: m.peftPath, length: r * m.inFeatures })));
    const dims: AdaloraDims = {
      r,
      modules: modules.map((m, i) => ({
        aOff: segs[i].A.offset, bOff: segs[i].B.offset, eOff: segs[i].E.offset, in: m.inFeatures, out: m.outFeatures,
        effOff: effLayout.segments[i].offset, iptOff: segs[i].ipt.offset, uncOff: segs[i].unc.offset, maskOff: segs[i].mask.offset,
      })),
    };
    const table = adaloraTable(dims);
    const own: AdaloraBuffers = {
      params: buffers.params,
      grads: buffers.grads,
      table: e.buffers.acquire(table.byteLength, STORAGE_USAGE, 'adalora.table'),
      aeff: e.buffers.acquire(effLayout.totalLength * 4, STORAGE_USAGE, 'adalora.aeff'),
      scratch: e.buffers.acquire(adaloraScratchFloats(dims) * 4, STORAGE_USAGE, 'adalora.scratch'),
    };
    writeBuffer(e.device, own.table, table);
    // The budget step's read-back: the scores copied here by the step's own submission, mapped once it is done.
    const M = modules.length;
    gpuCounters(e.device).buffersCreated++;
    const scoresRead = e.device.createBuffer({ size: M * r * 4, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: 'adalora.scores.read' });
    // A_eff from host values: written to the queue now, ahead of anything recorded later.
    const writeEffective = (params: Float32Array) => {
      const aeff = new Float32Array(effLayout.totalLength);
      dims.modules.forEach((m) => {
        for (let i = 0; i < r; i++) for (let k = 0; k < m.in; k++) aeff[m.effOff + i * m.in + k] = params[m.eOff + i] * params[m.aOff + i * m.in + k];
      });
      writeBuffer(e.device, own.aeff, aeff);
    };
    writeEffective(host);

    const scale = adaloraScale(c.alpha, r);
    const linears: Linear[] = modules.map((m, i) => {
      const linear = byPath.get(m.peftPath)!;
      const { A, B } = segs[i];
      linear.lora = {
        rank: r,
        scale,
        dropout: c.dropout,
        A: segmentBinding(own.aeff, effLayout.segments[i].offset, effLayout.segments[i].length),
        B: segmentBinding(buffers.params, B.offset, B.length),
        // LoRA's backward writes ∂L/∂A_eff here; grad_a turns it into ∂L/∂A before AdamW.
        dA: segmentBinding(buffers.grads, A.offset, A.length),
        dB: segmentBinding(buffers.grads, B.offset, B.length),
        seed: 0,
      };
      return linear;
    });

    let schedule: AdaloraSchedule = { initR: r, targetR: c.targetR, tinit: c.tinit, tfinal: c.tfinal, deltaT: c.deltaT, totalStep: c.totalStep ?? 0 };
    const attached: AttachedMethod = {
      ...buffers,
      trainableParams: modules.reduce((s, m) => s + r * (m.inFeatures + m.outFeatures + 1), 0),
      planSteps(total) {
        const totalStep = c.totalStep ?? total;
        const errors = adaloraScheduleErrors(c, totalStep);
        if (errors.length) throw new ConfigError(errors);
        schedule = { ...schedule, totalStep };
        return { totalStep };
      },
      beforeOptimizer(rec, _step, loss) {
        recordGradThroughE(rec, dims, own, buffers.norm);
        // PEFT adds orth_reg_weight·R even at weight 0 (a zero term): nothing to record then.
        if (c.orthRegWeight > 0) recordOrthRegulariser(rec, dims, own, loss, c.orthRegWeight);
      },
      afterStep(rec, step) {
        const action = budgetAction(schedule, M, step);
        if (action.updateImportance) recordImportance(rec, dims, own, buffers.norm, c.adaloraBeta1, c.adaloraBeta2);
        if (action.maskToBudget !== null) {
          recordScores(rec, dims, own, buffers.norm);
          rec.copy(own.scratch, 0, scoresRead, 0, M * r * 4);
        }
        recordEffectiveA(rec, dims, own, buffers.norm, action.maskByPattern);
      },
      async stepDone(step) {
        const action = budgetAction(schedule, M, step);
        if (action.maskToBudget === null) return;
        gpuCounters(e.device).readbacks++;
        await scoresRead.mapAsync(0x0001 /* GPUMapMode.READ */);
        const scores = new Float32Array(scoresRead.getMappedRange().slice(0));
        scoresRead.unmap();
        const mask = maskToBudget(scores, action.maskToBudget);
        dims.modules.forEach((m, i) => writeBuffer(e.device, buffers.params, Float32Array.from(mask.subarray(i * r, (i + 1) * r)), m.maskOff * 4));
        if (step === schedule.totalStep - schedule.tfinal) {
          // RankAllocator.reset_ipt after the final mask: the EMAs start again from zero (never updated after this).
          for (const s of segs) {
            writeBuffer(e.device, buffers.params, new Float32Array(s.ipt.length), s.ipt.offset * 4);
            writeBuffer(e.device, buffers.params, new Float32Array(s.unc.length), s.unc.offset * 4);
          }
        }
        const rec = e.record(`adalora.mask ${step}`);
        recordEffectiveA(rec, dims, own, buffers.norm, true);
        await rec.submitNoWait(); // on the queue before the caller submits the next step
      },
      setDropoutSeeds(seedOf) {
        linears.forEach((l, i) => (l.lora!.seed = seedOf(i)));
      },
      suspendDropout() {
        const saved = linears.map((l) => l.lora!.dropout);
        for (const l of linears) l.lora!.dropout = 0;
        return () => linears.forEach((l, i) => (l.lora!.dropout = saved[i]));
      },
      paramsWritten(params) {
        if (params) writeEffective(params);
      },
      detach() {
        for (const l of linears) delete l.lora;
        for (const b of [own.table, own.aeff, own.scratch]) e.buffers.release(b);
        scoresRead.destroy();
        releaseTrainable(e, buffers);
      },
    };
    return attached;
  },
};

