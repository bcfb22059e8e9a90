// AdaLoRA (Zhang et al. 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning") as PEFT 0.21's
// AdaLoraConfig trains it: each wrapped linear gets an SVD-shaped update P·Λ·Q — lora_A [r, in] (Q), lora_E [r, 1] (Λ),
// lora_B [out, r] (P), r = init_r — and the layer
//   y = W·x + b + (dropout(x)·(A ⊙ E)ᵀ·Bᵀ) · lora_alpha / (ranknum + 1e-5),   ranknum = init_r
// (E = 0 and A, B ~ N(0, 0.02²) at the start, so step 0 is the base model). The loss adds orth_reg_weight × the mean
// of ‖AAᵀ − I‖_F and ‖BᵀB − I‖_F over every A and B. After each optimizer step the importance of every parameter,
// |p·∂L/∂p|, is smoothed (EMA β1) with its uncertainty (EMA β2); on the schedule's budget steps the triplets (A's row,
// E's value, B's column) with the lowest scores get E = 0 until the total rank is the budget, which falls cubically from
// init_r to target_r per matrix between tinit and total_step − tfinal; then the rank pattern stays. Saved as PEFT saves
// it: peft_type ADALORA with the rank pattern, every tensor cut to the rows it keeps.
//
// Its GPU side is runtime.ts: LoRA's kernels run unchanged on A_eff = diag(E)·A (adalora.wgsl does the rest); the
// budget logic is schedule.ts.
import { PEFT_DEFAULT_TARGET_MODULES, type LinearModule } from '../../../model/weights.ts';
import type { TensorToWrite } from '../../../model/safetensors.ts';
import { writeSafetensors } from '../../../model/safetensors.ts';
import type { FieldError, TrainConfig } from '../../config.ts';
import { loraSegmentName } from '../../lora-names.ts';
import { adapterConfigText, buildAdapterConfig, type AdapterFiles, type PeftAdapterConfig } from '../../peft.ts';
import type { ExportInput, TrainingMethod, TrainableTensor } from '../method.ts';

/** planAdamwLayout's alignment (ADAMW_ALIGN_ELEMENTS, checked equal by adalora.test.ts): segments start at multiples
 *  of it, which is what lets a module's EMAs mirror its A..E span element for element. */
export const ADALORA_ALIGN = 64;

const align = (n: number) => Math.ceil(n / ADALORA_ALIGN) * ADALORA_ALIGN;

export function adaloraSegmentName(peftPath: string, which: 'E' | 'ipt' | 'unc' | 'mask'): string {
  return which === 'E' ? `${peftPath}.lora_E` : `${peftPath}.adalora_${which}`;
}

/** The adapter file's key of a module's tensor, as PEFT 0.21 saves it (ParameterDicts: no ".weight"). */
export function adaloraTensorName(peftPath: string, which: 'A' | 'B' | 'E'): string {
  return `base_model.model.${peftPath}.lora_${which}`;
}

/** A module's A, B and E span in the flat buffers (A and B padded to the alignment): what its EMAs mirror. */
export function adaloraSpanLength(m: Pick<LinearModule, 'inFeatures' | 'outFeatures'>, r: number): number {
  return align(r * m.inFeatures) + align(m.outFeatures * r) + r;
}

/** PEFT's scaling: lora_alpha / (ranknum + 1e-5), ranknum = init_r (a resized load keeps it). */
export function adaloraScale(alpha: number, initR: number): number {
  return alpha / (initR + 1e-5);
}

/** PEFT's AdaLoraConfig checks (its messages), with total_step the run's when not given. */
export function adaloraScheduleErrors(c: TrainConfig, totalStep: number | null = c.totalStep): FieldError[] {
  const errors: FieldError[] = [];
  if (c.targetR > c.initR) errors.push({ field: 'targetR', message: `targetR = ${c.targetR}: must be at most initR (${c.initR}): the budget only shrinks` });
  if (c.targetR === c.initR) errors.push({ field: 'targetR', message: `targetR = ${c.targetR} equals initR: AdaLoRA would have no rank to reallocate (PEFT's budget step needs target_r < init_r)` });
  if (totalStep !== null && c.tinit >= totalStep - c.tfinal) {
    errors.push({
      field: 'tinit',
      message: `tinit = ${c.tinit}, tfinal = ${c.tfinal}, total_step = ${totalStep}: The supplied schedule values don't allow for a budgeting phase. Decrease \`tfinal\`/\`tinit\` or increase \`total_step\`.`,
    });
  }
  return errors;
}

export const adaloraMethod: TrainingMethod = {
  id: 'adalora',
  label: 'AdaLoRA',
  explanation:
    'LoRA in SVD form (P·Λ·Q) whose rank is moved during training: the least important singular values are zeroed until the total rank falls from init_r to target_r per layer, where it matters most (PEFT AdaLoraConfig).',
  advice:
    'The article: it moves rank between layers and modules, giving the important ones more and pruning the unimportant ones on its own. ' +
    'Start wider than you would set LoRA and let it prune: init_r 12 → target_r 8 (or 8 → 4), lr and α as LoRA (1e-4 to 3e-4, α = 2·target_r); ' +
    'keep tinit at 5–10% of the steps so the scores mean something before the first cut, tfinal at 10–20% to train the final ranks, ' +
    'deltaT 1–10; β1 = β2 = 0.85 and orth_reg_weight 0.5 as the paper. It pays off with many targets (all-linear), where a fixed rank wastes budget on layers that need little; ' +
    'it costs a second read-back every deltaT steps and does not resume its importance scores from an exported adapter.',
  peftType: 'ADALORA',
  exports: 'adapter',
  wrapsLinears: true,
  settings: ['alpha', 'dropout', 'targets', 'initR', 'targetR', 'tinit', 'tfinal', 'deltaT', 'totalStep', 'adaloraBeta1', 'adaloraBeta2', 'orthRegWeight'],
  defaultTargets: PEFT_DEFAULT_TARGET_MODULES,
  validate(c) {
    const errors = adaloraScheduleErrors(c);
    if (c.rslora) errors.push({ field: 'rslora', message: 'rslora = true: AdaLoRA scales by lora_alpha / init_r (PEFT has no rsLoRA for it)' });
    if (c.loraPlusRatio !== 1) errors.push({ field: 'loraPlusRatio', message: `loraPlusRatio = ${c.loraPlusRatio}: LoRA+ is not defined for AdaLoRA` });
    return errors;
  },
  tensors(m, c) {
    const r = c.initR;
    const span = adaloraSpanLength(m, r);
    const state = { lrScale: 0, decay: false, state: true };
    // A, B, E in this order and back to back (the EMAs mirror that span); then the state AdamW leaves alone.
    const out: TrainableTensor[] = [
      { name: loraSegmentName(m.peftPath, 'A'), length: r * m.inFeatures, lrScale: 1 },
      { name: loraSegmentName(m.peftPath, 'B'), length: m.outFeatures * r, lrScale: 1 },
      { name: adaloraSegmentName(m.peftPath, 'E'), length: r, lrScale: 1 },
      { name: adaloraSegmentName(m.peftPath, 'ipt'), length: span, ...state },
      { name: adaloraSegmentName(m.peftPath, 'unc'), length: span, ...state },
      { name: adaloraSegmentName(m.peftPath, 'mask'), length: r, ...state },
    ];
    return out;
  },
  footprint(modules, c) {
    return {
      params: modules.reduce((s, m) => s + c.initR * (m.inFeatures + m.outFeatures + 1), 0),
      // Each module keeps h = A_eff·x (r per token) for its backward, as LoRA.
      activationsPerToken: c.initR * modules.length,
      // The EMAs and the mask are segments of the four flat f32 buffers (params, grads, AdamW's m and v); A_eff and
      // the scratch (scores, the Gram matrices) are f32 buffers of their own.
      stateBytes: modules.reduce((s, m) => s + 16 * (2 * adaloraSpanLength(m, c.initR) + c.initR) + 4 * c.initR * m.inFeatures, 0) + 4 * (modules.length * (c.initR + 2 * c.initR * c.initR + 2) + 1),
    };
  },
  exportAdapter: exportAdaloraAdapter,
  proof: {
    reference: 'src/gpu/ref/adalora.ref.ts',
    goldens: [
      'scripts/golden_adalora.py',
      'tests/fixtures/golden/train_adalora_gpt2.json',
      'tests/fixtures/golden/train_adalora_llama.json',
      'tests/fixtures/golden/train_adalora_qwen3.json',
      'src/train/adalora-golden.gpu.test.ts',
    ],
    exportImport: ['src/train/methods/adalora/adalora.test.ts', 'src/train/adalora-golden.gpu.test.ts'],
    merge: 'src/train/methods/adalora/adalora.test.ts',
  },
};

/** The rank pattern of every module (kept triplets), or null while no budget step has masked any (PEFT saves
 *  rank_pattern null then and keeps every row). */
export function adaloraRankPattern(tensors: ReadonlyMap<string, Float32Array>, modules: readonly LinearModule[], r: number): Map<string, boolean[]> | null {
  const pattern = new Map<string, boolean[]>();
  for (const m of modules) {
    const mask = tensors.get(adaloraSegmentName(m.peftPath, 'mask'));
    if (!mask || mask.length !== r) throw new Error(`no AdaLoRA rank mask of ${r} values for ${m.peftPath}`);
    pattern.set(m.peftPath, Array.from(mask, (v) => v !== 0));
  }
  return [...pattern.values()].every((p) => p.every(Boolean)) ? null : pattern;
}

/** adapter_config.json as PEFT 0.21 saves an AdaLoraConfig (src: tests/fixtures/golden/train_adalora_*_adapter). */
export function adaloraAdapterConfig(x: Pick<ExportInput, 'targetModules' | 'config' | 'model' | 'baseModel'>, rankPattern: ReadonlyMap<string, boolean[]> | null, totalStep: number): PeftAdapterConfig {
  const c = x.config;
  return {
    // LoraConfig's fields (r is LoraConfig's default 8, which AdaLoRA ignores: PEFT warns when it is anything else).
    ...buildAdapterConfig({ baseModel: x.baseModel, rank: 8, alpha: c.alpha, dropout: c.dropout, targetModules: x.targetModules, fanInFanOut: x.model.linearLayout === 'conv1d', rslora: false, model: x.model }),
    peft_type: 'ADALORA',
    beta1: c.adaloraBeta1,
    beta2: c.adaloraBeta2,
    deltaT: c.deltaT,
    init_r: c.initR,
    orth_reg_weight: c.orthRegWeight,
    rank_pattern: rankPattern ? Object.fromEntries([...rankPattern].map(([path, kept]) => [`${path}.lora_E`, kept])) : null,
    target_r: c.targetR,
    tfinal: c.tfinal,
    tinit: c.tinit,
    total_step: totalStep,
  };
}

function exportAdaloraAdapter(x: ExportInput): AdapterFiles {
  const { tensors, modules, config: c } = x;
  if (modules.length === 0) throw new Error('no AdaLoRA modules to export');
  const totalStep = c.totalStep;
  if (totalStep === null) throw new Error('AdaLoRA export needs total_step (the trainer sets it to the run\'s steps when not given)');
  const r = c.initR;
  const pattern = adaloraRankPattern(tensors, modules, r);
  const get = (name: string, length: number) => {
    const v = tensors.get(name);
    if (!v) throw new Error(`no trained ${name.slice(name.lastIndexOf('.') + 1)} for ${name.slice(0, name.lastIndexOf('.'))}`);
    if (v.length !== length) throw new Error(`${name}: ${v.length} values, expected ${length}`);
    return v;
  };
  const files = new Map<string, TensorToWrite>();
  for (const m of modules) {
    const A = get(loraSegmentName(m.peftPath, 'A'), r * m.inFeatures);
    const B = get(loraSegmentName(m.peftPath, 'B'), m.outFeatures * r);
    const E = get(adaloraSegmentName(m.peftPath, 'E'), r);
    // resize_state_dict_by_rank_pattern: the kept rows of A and E, the kept columns of B (zero of them is a valid,
    // empty module, as PEFT saves it).
    const kept = pattern ? pattern.get(m.peftPath)!.flatMap((k, i) => (k ? [i] : [])) : Array.from({ length: r }, (_, i) => i);
    const k = kept.length;
    const a = new Float32Array(k * m.inFeatures);
    kept.forEach((i, row) => a.set(A.subarray(i * m.inFeatures, (i + 1) * m.inFeatures), row * m.inFeatures));
    const b = new Float32Array(m.outFeatures * k);
    for (let o = 0; o < m.outFeatures; o++) kept.forEach((i, col) => (b[o * k + col] = B[o * r + i]));
    const e = Float32Array.from(kept, (i) => E[i]);
    for (const [which, data, shape] of [['A', a, [k, m.inFeatures]], ['B', b, [m.outFeatures, k]], ['E', e, [k, 1]]] as const) {
      const name = adaloraTensorName(m.peftPath, which);
      const bad = data.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new Error(`${name} holds ${data[bad]} at ${bad}: refusing to save a diverged adapter`);
      files.set(name, { dtype: 'F32', shape: [...shape], data });
    }
  }
  return {
    'adapter_config.json': new TextEncoder().encode(adapterConfigText(adaloraAdapterConfig(x, pattern, totalStep))),
    'adapter_model.safetensors': writeSafetensors(files, { format: 'pt' }),
  };
}
