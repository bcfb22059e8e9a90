import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from './config.ts';
import { applyPreset, MAX_PRESET_LR, PRESET_NAMES, PRESETS, presetLr, REFERENCE_HIDDEN } from './presets.ts';

describe('presets scaled to the model', () => {
  it("keeps the guide's rate at the reference width and above, and scales it as 1 / width below", () => {
    expect(presetLr(2e-4, REFERENCE_HIDDEN)).toBe(2e-4);
    expect(presetLr(2e-4, 8192)).toBe(2e-4);
    expect(presetLr(2e-4, 2048)).toBe(4e-4);
    expect(presetLr(2e-4, 896)).toBeCloseTo(9.1e-4, 12); // Qwen2.5-0.5B
    expect(presetLr(2e-4, 768)).toBeCloseTo(1.1e-3, 12); // GPT-2 small
    expect(presetLr(2e-4, 16)).toBe(MAX_PRESET_LR);
    expect(presetLr(2e-4, Number.NaN)).toBe(2e-4);
  });

  it('gives smaller models higher rates, every preset, never above the cap', () => {
    for (const name of PRESET_NAMES) {
      const widths = [64, 192, 768, 896, 2048, 4096, 8192];
      const rates = widths.map((hidden) => applyPreset(name, DEFAULT_CONFIG, { hidden }).lr);
      for (let i = 1; i < rates.length; i++) expect(rates[i], `${name} at ${widths[i]}`).toBeLessThanOrEqual(rates[i - 1]);
      expect(rates[0], name).toBeGreaterThan(rates.at(-1)!);
      expect(Math.max(...rates), name).toBeLessThanOrEqual(MAX_PRESET_LR);
      expect(rates.at(-1), name).toBe(PRESETS[name].config.lr);
    }
  });

  it('without a model, is the preset as written; with one, only the rate changes', () => {
    expect(applyPreset('quick')).toEqual({ ...DEFAULT_CONFIG, ...PRESETS.quick.config });
    const demo = applyPreset('quick', DEFAULT_CONFIG, { hidden: 192 });
    expect({ ...demo, lr: 0 }).toEqual({ ...DEFAULT_CONFIG, ...PRESETS.quick.config, lr: 0 });
    expect(demo.lr).toBe(presetLr(PRESETS.quick.config.lr!, 192));
  });
});
