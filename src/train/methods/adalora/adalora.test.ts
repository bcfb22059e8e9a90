// AdaLoRA's page-side module against the files the real PEFT wrote (tests/fixtures/golden/train_adalora_*, by
// scripts/golden_adalora.py): PEFT's saved adapter (rank_pattern, tensors cut to the kept rows, a module of rank 0)
// imports and exports back as the same files; the merge rule gives PEFT's merge_and_unload weight; the budget
// schedule is PEFT's; what does not fit is refused by name.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADAMW_ALIGN_ELEMENTS } from '../../../gpu/kernels/adamw.ts';
import { mismatches } from '../../../gpu/ref/testing.ts';
import { parseModelConfig, type ModelConfig } from '../../../model/config.ts';
import { SafetensorsFile, writeSafetensors } from '../../../model/safetensors.ts';
import { MemorySource, memoryFolder } from '../../../model/sources/memory.ts';
import { nodeFolder } from '../../../model/sources/node-file.ts';
import { DEFAULT_CONFIG, type TrainConfig } from '../../config.ts';
import { loraSegmentName } from '../../lora-names.ts';
import { adapterMerges } from '../../merge.ts';
import { AdapterError, importAdapter, importPeftAdapter, type LoraAdapter } from '../../peft.ts';
import { countTrainable } from '../method.ts';
import { describeMethod } from '../registry.ts';
import { resolveTargets } from '../targets.ts';
import { ADALORA_ALIGN, adaloraMethod, adaloraSegmentName, adaloraTensorName } from './config.ts';
import { budgetAction, budgetSchedule, maskToBudget, type AdaloraSchedule } from './schedule.ts';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { exportGgufCommand } from '../../../cli/export-gguf.ts';
import { peftMethodPlan } from '../../../export/trl-method.ts';

const ROOT = join(import.meta.dirname, '../../../..');
const FIX = join(ROOT, 'tests/fixtures');
const fixture = (name: string): ModelConfig => parseModelConfig(JSON.parse(readFileSync(join(FIX, 'models', name, 'config.json'), 'utf8')), name);
const golden = (name: string) => JSON.parse(readFileSync(join(FIX, 'golden', `train_adalora_${name}.json`), 'utf8'));
const adapterDir = (name: string) => join(FIX, 'golden', `train_adalora_${name}_adapter`);

async function peftAdapter(name: string): Promise<LoraAdapter> {
  const a = await importPeftAdapter(nodeFolder(adapterDir(name)), fixture(name), name);
  if (a.kind !== 'lora' || !a.adalora) throw new Error('not AdaLoRA');
  return a;
}

function configOf(a: LoraAdapter): TrainConfig {
  const s = a.adalora!;
  return {
    ...DEFAULT_CONFIG, method: 'adalora', alpha: a.alpha, dropout: a.dropout, initR: s.initR, targetR: s.targetR, tinit: s.tinit, tfinal: s.tfinal,
    deltaT: s.deltaT, totalStep: s.totalStep, adaloraBeta1: s.beta1, adaloraBeta2: s.beta2, orthRegWeight: s.orthRegWeight,
  };
}

describe.each(['gpt2', 'llama', 'qwen3'])('AdaLoRA and PEFT\'s files: %s', (name) => {
  it('imports PEFT\'s adapter (its rank pattern) and exports it back as the same files', async () => {
    const model = fixture(name);
    const adapter = await peftAdapter(name);
    const g = golden(name);
    expect(adapter.modules.map((m) => m.peftPath)).toEqual(g.modules.map((m: { path: string }) => m.path));
    expect(Object.fromEntries([...adapter.adalora!.tensors].map(([p, t]) => [p, Array.from(t.mask, Boolean)]))).toEqual(g.rank_pattern);
    const config = configOf(adapter);
    const { modules, targetModules } = resolveTargets(model, [], adaloraMethod.defaultTargets);
    const tensors = new Map(
      [...adapter.adalora!.tensors].flatMap(([p, t]) => [
        [loraSegmentName(p, 'A'), t.A], [loraSegmentName(p, 'B'), t.B], [adaloraSegmentName(p, 'E'), t.E], [adaloraSegmentName(p, 'mask'), t.mask],
      ]),
    );
    const files = adaloraMethod.exportAdapter({ tensors, modules, targetModules, config, model, baseModel: `tests/fixtures/models/${name}` });
    const theirsConfig = JSON.parse(readFileSync(join(adapterDir(name), 'adapter_config.json'), 'utf8'));
    expect(JSON.parse(new TextDecoder().decode(files['adapter_config.json']))).toEqual(theirsConfig);
    const ours = await SafetensorsFile.open(new MemorySource('ours', files['adapter_model.safetensors']));
    const theirs = await SafetensorsFile.open((await nodeFolder(adapterDir(name)).open('adapter_model.safetensors'))!);
    expect(ours.names().sort()).toEqual(theirs.names().sort());
    expect(ours.names()).toContain(adaloraTensorName(modules[0].peftPath, 'E'));
    for (const key of theirs.names()) {
      expect(ours.info(key).shape, key).toEqual(theirs.info(key).shape);
      expect(await ours.readTensor(key, 'f32'), key).toEqual(await theirs.readTensor(key, 'f32'));
    }
    // A, B and E per module count; the EMAs and the mask are state, not parameters.
    expect(countTrainable(adaloraMethod, modules, config)).toBe(modules.reduce((s, m) => s + config.initR * (m.inFeatures + m.outFeatures + 1), 0));
    // …which the memory estimate still counts: in all four flat buffers, with A_eff beside them.
    const state = modules.flatMap((m) => adaloraMethod.tensors(m, config)).filter((t) => t.state).reduce((s, t) => s + t.length, 0);
    const aeff = modules.reduce((s, m) => s + config.initR * m.inFeatures, 0);
    expect(adaloraMethod.footprint(modules, config).stateBytes).toBeGreaterThan(16 * state + 4 * aeff);
  });

  it('merges as PEFT\'s merge_and_unload: W + B·(A ⊙ E)·α / (init_r + 1e-5)', async () => {
    const g = golden(name);
    const adapter = await peftAdapter(name);
    const m = adapter.modules.find((x) => x.peftPath === g.merged.path)!;
    const base = await SafetensorsFile.open((await nodeFolder(join(FIX, 'models', name)).open('model.safetensors'))!);
    const key = base.names().find((k) => `transformer.${k}` === `${m.peftPath}.weight` || k === `${m.peftPath}.weight`)!;
    const W = await base.readTensor(key, 'f32');
    const merged = adapterMerges(adapter).get(`${m.module.canonical}.weight`)!(W);
    expect(mismatches(merged, g.merged.weight, { abs: 1e-6, rel: 1e-6 })).toEqual([]);
    expect(mismatches(merged, W, { abs: 1e-9, rel: 0 }).length, 'the merge moved the weight').toBeGreaterThan(0);
  });
});

describe('AdaLoRA budget schedule', () => {
  const s: AdaloraSchedule = { initR: 6, targetR: 2, tinit: 2, tfinal: 3, deltaT: 2, totalStep: 10 };

  it('is RankAllocator.budget_schedule: warmup, a cubic fall every deltaT steps, the final pattern', () => {
    // PEFT's own budget_schedule gives these (24, False), (24, False), (16, False), (11, True), (9, False), (8, True),
    // (8, False), (8, True). 4 modules: init budget 24, target 8; step 3: int(16 · 0.8³ + 8) = 16; step 4: int(16 · 0.6³ + 8) = 11; step 6: int(16 · 0.2³ + 8) = 8.
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((t) => budgetSchedule(s, 4, t))).toEqual([
      { budget: 24, mask: false }, { budget: 24, mask: false }, { budget: 16, mask: false }, { budget: 11, mask: true },
      { budget: 9, mask: false }, { budget: 8, mask: true }, { budget: 8, mask: false }, { budget: 8, mask: true },
    ]);
    // The golden run's budget steps keep exactly these totals.
    const g = golden('llama');
    for (const [step, budget] of [['4', 11], ['6', 8], ['7', 8]] as const) {
      expect(Object.values(g.rank_patterns[step] as Record<string, boolean[]>).flat().filter(Boolean).length, `step ${step}`).toBe(budget);
    }
    expect(Array.from({ length: 10 }, (_, i) => budgetAction(s, 4, i + 1))).toEqual([
      ...[1, 2, 3].map(() => ({ updateImportance: true, maskToBudget: null, maskByPattern: false })),
      { updateImportance: true, maskToBudget: 11, maskByPattern: false },
      { updateImportance: true, maskToBudget: null, maskByPattern: false },
      { updateImportance: true, maskToBudget: 8, maskByPattern: false },
      { updateImportance: false, maskToBudget: 8, maskByPattern: false },
      ...[8, 9, 10].map(() => ({ updateImportance: false, maskToBudget: null, maskByPattern: true })),
    ]);
  });

  it('masks the k lowest scores (k-th value threshold, ties masked together) and names a bad budget', () => {
    expect([...maskToBudget([0.5, 0.1, 0.9, 0.3], 2)]).toEqual([1, 0, 1, 0]);
    expect([...maskToBudget([0.2, 0.2, 0.9, 0.1], 2)]).toEqual([0, 0, 1, 0]); // score ≤ threshold: a tie goes too, as torch's masked_fill_
    expect(() => maskToBudget([1, 2], 2)).toThrow('AdaLoRA budget 2 of 2 triplets: kthvalue needs 1 ≤ k = 0 ≤ 2');
    expect(() => maskToBudget([1, Number.NaN], 1)).toThrow('AdaLoRA importance score 1 is NaN');
  });

  it('lays out the EMAs with the optimizer\'s alignment, and names a run by its ranks', () => {
    expect(ADALORA_ALIGN).toBe(ADAMW_ALIGN_ELEMENTS);
    expect(describeMethod({ ...DEFAULT_CONFIG, method: 'adalora', initR: 12, targetR: 8, alpha: 16 })).toBe('AdaLoRA r = 12 → 8, α = 16');
  });
});

describe('AdaLoRA settings, import and export refusals', () => {
  it('refuses a schedule without a budget phase with PEFT\'s message, and settings AdaLoRA has not', () => {
    const c = { ...DEFAULT_CONFIG, method: 'adalora' as const, totalStep: 10, tinit: 4, tfinal: 6 };
    expect(adaloraMethod.validate(c).map((x) => x.message)).toEqual([
      "tinit = 4, tfinal = 6, total_step = 10: The supplied schedule values don't allow for a budgeting phase. Decrease `tfinal`/`tinit` or increase `total_step`.",
    ]);
    expect(adaloraMethod.validate({ ...DEFAULT_CONFIG, method: 'adalora', targetR: 16, rslora: true }).map((x) => x.field)).toEqual(['targetR', 'rslora']);
  });

  it('names a tensor whose shape disagrees with the rank pattern, refuses the LoRA-only exports, refuses NaN', async () => {
    const model = fixture('llama');
    const dir = adapterDir('llama');
    const config = readFileSync(join(dir, 'adapter_config.json'), 'utf8');
    const theirs = await SafetensorsFile.open((await nodeFolder(dir).open('adapter_model.safetensors'))!);
    const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
    for (const k of theirs.names()) tensors.set(k, { dtype: 'F32', shape: theirs.info(k).shape, data: await theirs.readTensor(k, 'f32') });
    const q0 = adaloraTensorName('model.layers.0.self_attn.q_proj', 'A');
    const bad = new Map(tensors);
    bad.set(q0, { dtype: 'F32', shape: [3, 32], data: new Float32Array(96) });
    const err = await importPeftAdapter(memoryFolder({ 'adapter_config.json': config, 'adapter_model.safetensors': writeSafetensors(bad) }), model).catch((x) => x);
    expect(err).toBeInstanceOf(AdapterError);
    expect(err.problems).toEqual([`tensor "${q0}" has shape [3, 32], expected [2, 32] (rank 2 of init_r 6 by rank_pattern)`]);
    const err2 = await importAdapter(nodeFolder(dir), model, 'ada').catch((x) => x);
    expect(err2.message).toMatch(/peft_type is "ADALORA": this needs a plain LoRA adapter/);

    const c = { ...DEFAULT_CONFIG, method: 'adalora' as const, totalStep: 10 };
    const { modules, targetModules } = resolveTargets(model, [], adaloraMethod.defaultTargets);
    const values = new Map(modules.flatMap((m) => adaloraMethod.tensors(m, c)).map((t) => [t.name, new Float32Array(t.length).fill(0.5)]));
    values.get(adaloraSegmentName(modules[1].peftPath, 'E'))![2] = Number.NaN;
    expect(() => adaloraMethod.exportAdapter({ tensors: values, modules, targetModules, config: c, model, baseModel: 'x' })).toThrow(
      `${adaloraTensorName(modules[1].peftPath, 'E')} holds NaN at 2: refusing to save a diverged adapter`,
    );
  });
});

describe('AdaLoRA and the LoRA-only exports', () => {
  it('merges into a GGUF; refuses --lora-out and the TRL export by name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'adalora-gguf-'));
    try {
      const io = { stdout: () => {}, stderr: () => {}, progress: () => {}, tty: false };
      const args = ['--model', join(FIX, 'models', 'llama'), '--adapter', adapterDir('llama'), '--out', join(dir, 'm.gguf'), '--type', 'f32'];
      await exportGgufCommand(args, io);
      expect((await readdir(dir)).sort()).toEqual(['m.Modelfile', 'm.gguf']);
      await expect(exportGgufCommand([...args.slice(0, 5), join(dir, 'n.gguf'), '--lora-out', join(dir, 'l.gguf')], io)).rejects.toThrow(/is an AdaLoRA adapter \(per-layer ranks, scale α \/ \(init_r \+ 1e-5\)\), which llama\.cpp's LoRA GGUF cannot hold/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(() => peftMethodPlan({ ...DEFAULT_CONFIG, method: 'adalora' }, fixture('llama'), ['q_proj', 'v_proj'])).toThrow(/^method = "adalora": AdaLoRA has no TRL form/);
  });
});

