// What the prompt methods' golden tests (prompt-golden, ptuning-golden, ptuning-lstm-golden, prefix-golden) do after
// training: the exported adapter imported back and evaluated, and the live check that loads every case's adapter in
// the real PEFT. Test-only.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Batcher } from '../data/batcher.ts';
import type { Engine } from '../gpu/engine.ts';
import { generate } from '../model/runtime/generate.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import type { Transformer } from '../model/runtime/transformer.ts';
import { memoryFolder } from '../model/sources/memory.ts';
import { attachAdapter } from './attach-adapter.ts';
import { referencePython, runPeftCheck } from './peft-check.ts';
import { importPeftAdapter, type AdapterFiles, type PromptAdapter } from './peft.ts';
import { goldenRows, type EvaluatedGoldenRun, type GoldenRun } from './testing-golden.ts';
import { evaluateLoss } from './trainer.ts';

/**
 * Our exported prompt adapter imported back (as `peftType`) and put on the model as eval and generate do: it evaluates
 * to the golden run's final loss (1e-4 relative) — the rows in micro-batches of `batchSize` — and gives the greedy
 * tokens the live PEFT check compares. Taken off again afterwards.
 */
export async function evaluateImportedPromptAdapter(
  e: Engine,
  tf: Transformer,
  files: AdapterFiles,
  g: EvaluatedGoldenRun,
  o: { peftType: PromptAdapter['peftType']; generate: { prompt: number[]; max_new_tokens: number }; batchSize: number },
): Promise<{ adapter: PromptAdapter; evalLoss: number; generated: number[] }> {
  const adapter = await importPeftAdapter(memoryFolder({ ...files }), tf.model.config, 'ours');
  if (adapter.kind !== 'prompt') throw new Error(`imported as ${adapter.kind}`);
  expect(adapter.peftType).toBe(o.peftType);
  const detach = attachAdapter(e, tf.model, adapter);
  try {
    const evalLoss = (await evaluateLoss(e, tf, new Batcher(goldenRows(g), { batchSize: o.batchSize, padId: 0, seed: null }))).loss;
    expect(Math.abs(evalLoss - g.final_loss)).toBeLessThan(1e-4 * g.final_loss);
    const generated = (await generate(e, tf, o.generate.prompt, { maxNewTokens: o.generate.max_new_tokens })).tokens;
    return { adapter, evalLoss, generated };
  } finally {
    detach();
  }
}

/** One case's exported adapter: the fixture model it trained, the folder it was written to, the loss and greedy
 *  tokens it gave here. */
export interface ExportedPromptAdapter {
  fixture: string;
  dir: string;
  loss: number;
  rows: GoldenRun['rows'];
  generated: number[];
}

/**
 * Under CI=true the reference Python must exist; where it does, PeftModel.from_pretrained(base, ours) for every case
 * in `exported` (filled by the golden tests before it) loads the one prompt tensor with nothing missing, unexpected or
 * mismatched, moves the logits off the base model's, and gives our eval loss (1e-4 relative) and our greedy tokens.
 */
export function describePromptAdaptersInPeft(
  what: string,
  cases: readonly string[],
  exported: ReadonlyMap<string, ExportedPromptAdapter>,
  generate: { prompt: number[]; max_new_tokens: number },
): void {
  const python = referencePython();
  describe(`our ${what} adapters in the real PEFT`, () => {
    it('has the reference Python wherever CI runs', () => {
      if (process.env.CI === 'true') expect(python, 'CI creates .venv-ref (scripts/setup-reference-python.sh)').not.toBeNull();
    });

    it.skipIf(!python)('PeftModel.from_pretrained(base, ours) holds what we trained and gives our eval loss and greedy tokens', async () => {
      const names = [...exported.keys()].sort();
      expect(names).toEqual([...cases].sort());
      const results = await runPeftCheck(
        names.map((n) => {
          const x = exported.get(n)!;
          return { base: join(FIXTURES, 'models', x.fixture), adapter: x.dir, rows: x.rows, generate };
        }),
      );
      results.forEach((r, i) => {
        const { loss, generated } = exported.get(names[i])!;
        expect(r.load, names[i]).toMatchObject({ missing: [], unexpected: [], mismatched: [], matched: 1 });
        expect(r.max_abs_logit_diff.adapter_vs_base, names[i]).toBeGreaterThan(1e-3);
        expect(Math.abs(r.adapter.loss - loss), `${names[i]}: PEFT ${r.adapter.loss} vs ours ${loss}`).toBeLessThan(1e-4 * loss);
        expect(generated, `${names[i]}: greedy tokens`).toEqual(r.generated);
      });
    }, 180_000);
  });
}
