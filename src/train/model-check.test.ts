// The transformers bridge for full model folders (scripts/model_check.py via runModelCheck), checked against the
// goldens it must agree with: the fixture's base loss on golden_train.py's rows is train_<fixture>.json's step-1 loss
// (LoRA B starts at zero), and the model golden_full.py saved after 10 full fine-tuning steps loads cleanly and gives
// that run's final loss (its weights rounded to f32 on saving, hence 1e-5) while the untouched fixture gives its
// step-1 loss. Runs where the reference venv exists; under CI=true its absence fails.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { referencePython, runModelCheck, type ModelCheckJob, type ModelCheckResult, type ModelCheckRow } from './model-check.ts';

const ROOT = join(__dirname, '..', '..');
const GOLDEN = join(ROOT, 'tests', 'fixtures', 'golden');
const python = referencePython();
if (!python) console.warn('model-check.test.ts: live part skipped, no reference Python at .venv-ref/bin/python (see ../shared/REFERENCES.md)');

interface Golden {
  rows: ModelCheckRow[];
  tokens: number;
  steps: { loss: number }[];
  final_loss: number;
}

const golden = (file: string): Golden => JSON.parse(readFileSync(join(GOLDEN, file), 'utf8'));
const FULL = ['gpt2', 'llama', 'qwen3'] as const;

describe('runModelCheck', () => {
  it('refuses without a reference Python, naming where it looked', async () => {
    await expect(runModelCheck([{ model: 'x', rows: [] }], null)).rejects.toThrow(/no reference Python at .*\.venv-ref/);
  });

  it('the reference Python exists under CI=true', () => {
    if (process.env.CI === 'true') expect(python, 'CI creates .venv-ref (scripts/setup-reference-python.sh)').not.toBeNull();
  });
});

describe.skipIf(!python)('model folders in the real transformers', () => {
  let results: ModelCheckResult[];
  const base = golden('train_llama.json');
  const full = FULL.map((name) => golden(`train_full_${name}.json`));

  beforeAll(async () => {
    const jobs: ModelCheckJob[] = [
      { model: join(ROOT, 'tests', 'fixtures', 'models', 'llama'), rows: base.rows },
      ...FULL.map((name, i) => ({
        model: join(GOLDEN, `train_full_${name}_model`),
        compare: join(ROOT, 'tests', 'fixtures', 'models', name),
        rows: full[i].rows,
      })),
    ];
    results = await runModelCheck(jobs);
  }, 120_000);

  it("the llama fixture's loss on golden_train's rows is that golden's base (step-1) loss", () => {
    const r = results[0];
    expect(r.load).toEqual({ missing: [], unexpected: [], mismatched: [], dtype: 'F32', file_tensors: 21 });
    expect(r.tokens).toBe(base.tokens);
    expect(Math.abs(r.loss! - base.steps[0].loss)).toBeLessThan(1e-12 * base.steps[0].loss);
  });

  FULL.forEach((name, i) => {
    it(`${name}: golden_full's saved model loads cleanly and gives the run's final loss; the fixture its step-1 loss`, () => {
      const r = results[1 + i];
      const g = full[i];
      expect(r.load.unexpected).toEqual([]);
      expect(r.load.mismatched).toEqual([]);
      expect(r.load.missing.filter((k) => k !== 'lm_head.weight')).toEqual([]);
      expect(r.load.dtype).toBe('F32');
      expect(r.tokens).toBe(g.tokens);
      expect(Math.abs(r.loss! - g.final_loss)).toBeLessThan(1e-5 * g.final_loss);
      expect(Math.abs(r.compare!.loss! - g.steps[0].loss)).toBeLessThan(1e-12 * g.steps[0].loss);
      expect(r.max_abs_logit_diff).toBeGreaterThan(0.1); // 10 steps at lr 1e-3 moved the model
    });
  });
});
