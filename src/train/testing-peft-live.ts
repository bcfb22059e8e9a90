// The live check the prompt methods' golden tests end with (prompt-golden, ptuning-golden, ptuning-lstm-golden,
// prefix-golden): the adapters each case exported, loaded by the real PEFT. Test-only.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from '../model/runtime/testing.ts';
import { referencePython, runPeftCheck } from './peft-check.ts';
import type { GoldenRun } from './testing-golden.ts';

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
