import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../train/config.ts';
import { PRESETS, presetLr } from '../train/presets.ts';
import { UsageError } from './args.ts';
import { configFromFlags } from './train.ts';

describe('train --preset', () => {
  it('starts from the studio preset; explicit flags override it', () => {
    expect(configFromFlags({ preset: 'quick' })).toEqual({ ...DEFAULT_CONFIG, ...PRESETS.quick.config });
    const c = configFromFlags({ preset: 'quick', rank: '16', lr: '5e-4' });
    expect(c).toMatchObject({ ...PRESETS.quick.config, rank: 16, lr: 5e-4 });
    expect(configFromFlags({})).toEqual(DEFAULT_CONFIG);
  });

  it("scales the preset's learning rate to --model's width, as the studio does; --lr still overrides it", () => {
    const demo = 'public/models/demo-llama'; // hidden_size 192
    const c = configFromFlags({ preset: 'quick', model: demo });
    expect(c).toEqual({ ...DEFAULT_CONFIG, ...PRESETS.quick.config, lr: presetLr(PRESETS.quick.config.lr!, 192) });
    expect(c.lr).toBeGreaterThan(PRESETS.quick.config.lr!);
    expect(configFromFlags({ preset: 'quick', model: demo, lr: '1e-4' }).lr).toBe(1e-4);
    // No readable config.json there: the preset as written (the train command reports the folder itself).
    expect(configFromFlags({ preset: 'quick', model: 'no/such/folder' }).lr).toBe(PRESETS.quick.config.lr);
  });

  it('lets --eval-data replace the preset split, and --eval-split 0 drop its evaluation schedule', () => {
    expect(configFromFlags({ preset: 'balanced', 'eval-data': 'eval.jsonl' })).toMatchObject({ evalSplit: 0, evalEvery: 25 });
    expect(configFromFlags({ preset: 'quality', 'eval-split': '0' })).toMatchObject({ evalSplit: 0, evalEvery: 0, earlyStoppingPatience: 0 });
  });

  it('names the valid presets', () => {
    expect(() => configFromFlags({ preset: 'fast' })).toThrow(UsageError);
    expect(() => configFromFlags({ preset: 'fast' })).toThrow('Should be one of: quick, balanced, quality');
  });
});
