// The Node host's Dawn flags: exact timestamps by default, merged into any disable list the caller gives.
import { describe, expect, it } from 'vitest';
import { HONEST_TIMESTAMPS, withDisabledFeatures } from './node.ts';

describe('withDisabledFeatures', () => {
  it('adds a disable-dawn-features flag, or extends the one given (dawn.node keeps one list per flag)', () => {
    expect(HONEST_TIMESTAMPS).toBe('timestamp_quantization');
    expect(withDisabledFeatures([], [HONEST_TIMESTAMPS])).toEqual(['disable-dawn-features=timestamp_quantization']);
    expect(withDisabledFeatures(['backend=null'], [HONEST_TIMESTAMPS])).toEqual(['backend=null', 'disable-dawn-features=timestamp_quantization']);
    expect(withDisabledFeatures(['disable-dawn-features=lazy_clear_resource_on_first_use', 'backend=vulkan'], [HONEST_TIMESTAMPS])).toEqual([
      'disable-dawn-features=lazy_clear_resource_on_first_use,timestamp_quantization',
      'backend=vulkan',
    ]);
    expect(withDisabledFeatures(['disable-dawn-features=timestamp_quantization'], [HONEST_TIMESTAMPS])).toEqual(['disable-dawn-features=timestamp_quantization']);
    expect(withDisabledFeatures(['backend=null'], [])).toEqual(['backend=null']);
  });
});
