// The live PEFT check: adapters exported by us, loaded by the real PeftModel.from_pretrained, and our merged model
// compared with PEFT's own merge. Runs only where the reference venv exists (.venv-ref, see ../shared/REFERENCES.md);
// elsewhere the suite is skipped and says so.
//
// Still to add when the GPU eval lands: our eval loss on ROWS with the imported adapter must equal
// result.adapter.loss (runPeftCheck is the hook; same rows, same loss contract).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rng, randomArray } from '../gpu/ref/testing.ts';
import type { ModelConfig } from '../model/config.ts';
import { readModelConfig } from '../model/load.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { selectTargetModules } from '../model/weights.ts';
import { mergeModel } from './merge.ts';
import { referencePython, runPeftCheck, writeAdapterFolder, writeOutputFiles, type PeftCheckJob, type PeftCheckResult, type PeftCheckRow } from './peft-check.ts';
import { buildAdapterConfig, exportAdapter, importAdapter } from './peft.ts';

const ROOT = join(__dirname, '..', '..');
const python = referencePython();
if (!python) console.warn('peft-live.test.ts skipped: no reference Python at .venv-ref/bin/python (create it as ../shared/REFERENCES.md says)');

/** Two rows of random ids, the first with a 3-token prompt masked out. */
function rowsFor(model: ModelConfig, seed: number): PeftCheckRow[] {
  const next = rng(seed);
  return [13, 9].map((n, r) => {
    const ids = Array.from({ length: n }, () => 1 + Math.floor(next() * (model.vocabSize - 1)));
    return { input_ids: ids, labels: ids.map((id, t) => (r === 0 && t < 3 ? -100 : id)) };
  });
}

// fixture, targets: GPT-2 all-linear covers every Conv1D shape (c_attn 32→96, c_fc, both c_proj); Llama's default
// q_proj (square) and v_proj (32 → 16, GQA); Qwen2 adds F16 storage and q/k/v biases under the adapted layers.
const CASES: [string, string | string[], boolean][] = [
  ['gpt2', 'all-linear', false],
  ['llama', ['q_proj', 'v_proj'], false],
  ['qwen2', 'all-linear', true],
];

describe.skipIf(!python)('exported adapters in the real PEFT', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'peft-live-'));
  const results = new Map<string, { result: PeftCheckResult; modules: number }>();

  beforeAll(async () => {
    const jobs: PeftCheckJob[] = [];
    const counts: number[] = [];
    for (const [name, targets, rslora] of CASES) {
      const base = join(ROOT, 'tests', 'fixtures', 'models', name);
      const model = await readModelConfig(nodeFolder(base));
      const modules = selectTargetModules(model, targets).map((m, i) => ({
        peftPath: m.peftPath,
        inFeatures: m.inFeatures,
        outFeatures: m.outFeatures,
        A: randomArray(4 * m.inFeatures, 100 + 2 * i, 0.3),
        B: randomArray(m.outFeatures * 4, 101 + 2 * i, 0.3), // nonzero, unlike a fresh adapter: the adapter must matter
      }));
      const config = buildAdapterConfig({ baseModel: base, rank: 4, alpha: 8, dropout: 0, targetModules: targets, fanInFanOut: model.linearLayout === 'conv1d', rslora, model });
      const files = exportAdapter(modules, config);
      const adapterDir = join(tmp, `${name}-adapter`);
      await writeAdapterFolder(adapterDir, files);
      const merged = await mergeModel(nodeFolder(base), await importAdapter(memoryFolder({ ...files }), model));
      const mergedDir = join(tmp, `${name}-merged`);
      await writeOutputFiles(mergedDir, merged.files);
      await merged.close();
      jobs.push({ base, adapter: adapterDir, merged: mergedDir, rows: rowsFor(model, 7) });
      counts.push(modules.length);
    }
    const out = await runPeftCheck(jobs);
    CASES.forEach(([name], i) => results.set(name, { result: out[i], modules: counts[i] }));
  }, 180_000);

  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  for (const [name] of CASES) {
    it(`${name}: PeftModel.from_pretrained takes every tensor, the adapter changes the logits, our merge equals PEFT's`, () => {
      const { result, modules } = results.get(name)!;
      // Every tensor of the file landed, unchanged, in a LoRA weight; no LoRA weight was left without one.
      expect(result.load).toEqual({ file_tensors: 2 * modules, lora_parameters: 2 * modules, matched: 2 * modules, missing: [], unexpected: [], mismatched: [] });
      const d = result.max_abs_logit_diff;
      expect(d.adapter_vs_base).toBeGreaterThan(0.05); // the LoRA weights are live
      expect(d.adapter_vs_peft_merged).toBeLessThan(1e-9); // PEFT agrees with itself (float64)
      // Our f16 merge vs PEFT's merge rounded to f16: bit-identical weights with these seeds (0 difference). A weight
      // one f16 ulp apart (a double-rounding tie f64 → f32 → f16) would show as ~1e-3 here.
      expect(d.merged_vs_peft_merged_f16!).toBeLessThan(1e-9);
      // Against the unmerged adapter, only f16 storage noise remains; the adapter's own effect is far larger.
      expect(d.merged_vs_adapter!).toBeLessThan(d.adapter_vs_base / 10);
      expect(Math.abs(result.merged!.loss - result.adapter.loss)).toBeLessThan(5e-3 * result.adapter.loss);
      expect(result.adapter.tokens).toBe(13 - 3 + (9 - 1)); // labels[t+1] ≠ −100: positions 3..12 of row 0, 1..8 of row 1
    });
  }
});
