// The trainable state of a LoRA run on the GPU: every selected module's A [r, in] and B [out, r] laid out back to back
// in one flat f32 params buffer (plus grads, and AdamW's two moments), so one AdamW step updates them all in three
// dispatches. Each module's A and B are bound to the model's linears as ranges of those flat buffers.
import { readF32 } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import type { BufferRef } from '../gpu/kernel.ts';
import { planAdamwLayout, type AdamwLayout } from '../gpu/kernels/adamw.ts';
import { Rng } from '../data/rng.ts';
import type { GpuModel } from '../model/runtime/gpu-model.ts';
import { PEFT_DEFAULT_TARGET_MODULES, type LinearModule } from '../model/weights.ts';
import { assertUnwrapped, type Linear } from '../model/runtime/linear.ts';
import { loraSegmentName } from './lora-names.ts';
import type { AttachedMethod } from './methods/method.ts';
import { loraScale } from './methods/lora-scale.ts';
import { resolveTargets as resolveMethodTargets } from './methods/targets.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from './trainable.ts';

export interface LoraSpec {
  rank: number;
  alpha: number;
  dropout: number;
  rslora: boolean;
  /** Module names / 'all-linear' / 'attention'; empty = PEFT's default for the architecture. */
  targets: string[];
  /** LoRA+: B's learning-rate multiplier. */
  loraPlusRatio: number;
}

export interface LoraModule {
  module: LinearModule;
  linear: Linear;
  /** Indices into the AdamW layout's segments. */
  aSegment: number;
  bSegment: number;
}

export interface LoraState extends AttachedMethod {
  spec: LoraSpec;
  scale: number;
  modules: LoraModule[];
  layout: AdamwLayout;
}


/**
 * Allocates LoRA on the selected modules and attaches it to the model's linears. A starts as PEFT's
 * kaiming_uniform(a=√5) — uniform(±1/√in) — from `seed`, or from `initialA` (module path → values) when given,
 * and B as zeros, so the adapted model equals the base model at step 0 — or from `initialB` when given (continuing
 * from a saved adapter: step 0 is then that adapter). Every path in either map must be a selected module.
 */
export function attachLora(
  e: Engine,
  model: GpuModel,
  spec: LoraSpec,
  seed: number,
  initialA?: Map<string, Float32Array>,
  initialB?: Map<string, Float32Array>,
  /** The modules to wrap, when already resolved (the method registry); else resolved from spec.targets. */
  modules?: readonly LinearModule[],
): LoraState {
  const selected = modules ?? resolveMethodTargets(model.config, spec.targets, PEFT_DEFAULT_TARGET_MODULES).modules;
  const chosen = new Set(selected.map((m) => m.peftPath));
  for (const [which, given] of [['A', initialA], ['B', initialB]] as const) {
    const extra = [...(given?.keys() ?? [])].filter((p) => !chosen.has(p));
    if (extra.length) throw new Error(`initial lora_${which} given for ${extra.join(', ')}, which the targets ${JSON.stringify(spec.targets)} do not select`);
  }
  const byPath = new Map(model.modules.map((m) => [m.module.peftPath, m.linear]));
  const r = spec.rank;
  const tensors = selected.flatMap((m) => [
    { name: loraSegmentName(m.peftPath, 'A'), length: r * m.inFeatures, lrScale: 1 },
    { name: loraSegmentName(m.peftPath, 'B'), length: m.outFeatures * r, lrScale: spec.loraPlusRatio },
  ]);
  const layout = planAdamwLayout(tensors);
  // Checked before anything is allocated or attached, so a refusal leaves the model as it was.
  selected.forEach((m, i) => {
    for (const [which, given, seg] of [['A', initialA, layout.segments[2 * i]], ['B', initialB, layout.segments[2 * i + 1]]] as const) {
      const values = given?.get(m.peftPath);
      if (values && values.length !== seg.length) throw new Error(`initial lora_${which} for ${m.peftPath} has ${values.length} values, expected ${seg.length}`);
    }
  });
  const host = new Float32Array(layout.totalLength);
  const rng = new Rng(seed);
  selected.forEach((m, i) => {
    const a = layout.segments[2 * i];
    const given = initialA?.get(m.peftPath);
    if (given) {
      host.set(given, a.offset);
    } else {
      const bound = 1 / Math.sqrt(m.inFeatures);
      for (let j = 0; j < a.length; j++) host[a.offset + j] = (rng.next() * 2 - 1) * bound;
    }
    const givenB = initialB?.get(m.peftPath);
    if (givenB) host.set(givenB, layout.segments[2 * i + 1].offset);
  });
  const missing = selected.filter((m) => !byPath.has(m.peftPath)).map((m) => m.peftPath);
  if (missing.length) throw new Error(`LoRA target ${missing.join(', ')} is not a linear layer of the loaded model`);
  for (const m of selected) assertUnwrapped(byPath.get(m.peftPath)!, m.peftPath);
  const buffers = allocateTrainable(e, layout, host, 'lora');
  const state: LoraState = {
    spec,
    scale: loraScale(spec.alpha, r, spec.rslora),
    modules: [],
    ...buffers,
    layout,
    trainableParams: tensors.reduce((s, t) => s + t.length, 0),
    setDropoutSeeds(seedOf) {
      state.modules.forEach((m, i) => (m.linear.lora!.seed = seedOf(i)));
    },
    suspendDropout() {
      const saved = state.modules.map((m) => m.linear.lora!.dropout);
      state.modules.forEach((m) => (m.linear.lora!.dropout = 0));
      return () => state.modules.forEach((m, i) => (m.linear.lora!.dropout = saved[i]));
    },
    detach() {
      detachLora(e, state);
    },
  };
  selected.forEach((m, i) => {
    const linear = byPath.get(m.peftPath)!;
    const a = layout.segments[2 * i];
    const b = layout.segments[2 * i + 1];
    linear.lora = {
      rank: r,
      scale: state.scale,
      dropout: spec.dropout,
      A: segmentBinding(buffers.params, a.offset, a.length),
      B: segmentBinding(buffers.params, b.offset, b.length),
      dA: segmentBinding(state.grads, a.offset, a.length),
      dB: segmentBinding(state.grads, b.offset, b.length),
      seed: 0,
    };
    state.modules.push({ module: m, linear, aSegment: 2 * i, bSegment: 2 * i + 1 });
  });
  return state;
}

/** Removes LoRA from the model's linears (the base model again) and frees its buffers. */
export function detachLora(e: Engine, state: LoraState): void {
  for (const m of state.modules) delete m.linear.lora;
  releaseTrainable(e, state);
}

/** Reads every module's A and B back to the CPU (for export and checkpoints). */
export async function readLoraTensors(e: Engine, state: LoraState, which: 'params' | 'grads' = 'params') {
  const flat = await readF32(e.device, which === 'params' ? state.params : state.grads, state.layout.totalLength);
  return state.modules.map((m) => {
    const a = state.layout.segments[m.aSegment];
    const b = state.layout.segments[m.bSegment];
    return {
      module: m.module,
      A: flat.slice(a.offset, a.offset + a.length),
      B: flat.slice(b.offset, b.offset + b.length),
    };
  });
}

export type { BufferRef };
