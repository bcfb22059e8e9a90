import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../train/config.ts';
import { PRESETS } from '../train/presets.ts';
import { UsageError } from './args.ts';
import { configFromFlags } from './train.ts';

describe('train --preset', () => {
  it('starts from the studio preset; explicit flags override it', () => {
    expect(configFromFlags({ preset: 'quick' })).toEqual({ ...DEFAULT_CONFIG, ...PRESETS.quick.config });
    const c = configFromFlags({ preset: 'quick', rank: '16', lr: '5e-4' });
    expect(c).toMatchObject({ ...PRESETS.quick.config, rank: 16, lr: 5e-4 });
    expect(configFromFlags({})).toEqual(DEFAULT_CONFIG);
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
