import { describe, expect, it } from 'vitest';
import { applyPreset, ConfigError, DEFAULT_CONFIG, PRESETS, normalizeConfig, resolveConfig, validateConfig } from './config.ts';
import { lrMultiplier, warmupStepsFor } from './schedule.ts';

describe('train config', () => {
  it('defaults and every preset are valid', () => {
    expect(validateConfig(DEFAULT_CONFIG)).toEqual([]);
    for (const name of Object.keys(PRESETS) as (keyof typeof PRESETS)[]) expect(validateConfig(applyPreset(name)), name).toEqual([]);
  });

  it('presets keep alpha = 2r, as the LoRA guide advises', () => {
    for (const p of Object.values(PRESETS)) expect(p.config.alpha).toBe(2 * p.config.rank!);
  });

  it('names the field, the value and the valid range', () => {
    const errors = validateConfig({ ...DEFAULT_CONFIG, rank: 0, lr: -1, dropout: 0.95, batchSize: 2.5, maxSteps: 0 });
    const byField = Object.fromEntries(errors.map((e) => [e.field, e.message]));
    expect(byField.rank).toBe('rank = 0: must be an integer ≥ 1 and ≤ 1024');
    expect(byField.lr).toBe('lr = -1: must be a number > 0 and ≤ 1');
    expect(byField.dropout).toContain('≤ 0.9');
    expect(byField.batchSize).toContain('an integer');
    expect(byField.maxSteps).toContain('must be empty or an integer ≥ 1');
    expect(errors).toHaveLength(5);
  });

  it('rejects unknown choices and double quantization without QLoRA', () => {
    const errors = validateConfig({ ...DEFAULT_CONFIG, schedule: 'step' as never, doubleQuant: true, targets: ['q proj'] });
    expect(errors.map((e) => e.field).sort()).toEqual(['doubleQuant', 'schedule', 'targets']);
  });

  it('reads method qlora (saved runs, --method qlora) as LoRA over an NF4 base, quantization its own axis', () => {
    expect(resolveConfig({ method: 'qlora' as never })).toMatchObject({ method: 'lora', quant: 'nf4' });
    expect(resolveConfig({ method: 'lora', quant: 'nf4', doubleQuant: true })).toMatchObject({ quant: 'nf4', doubleQuant: true });
    const saved = { ...DEFAULT_CONFIG, method: 'qlora' as never, quant: undefined as never };
    expect(normalizeConfig(saved)).toMatchObject({ method: 'lora', quant: 'nf4' });
    expect(normalizeConfig({ ...DEFAULT_CONFIG, quant: undefined as never })).toMatchObject({ method: 'lora', quant: 'none' });
    expect(() => resolveConfig({ method: 'qlora' as never, quant: 'none' })).toThrow(/quant = "none": contradicts method qlora/);
    expect(validateConfig({ ...DEFAULT_CONFIG, method: 'dora2' as never, quant: 'int3' as never }).map((e) => e.message).join('\n')).toMatch(
      /method = "dora2": must be one of lora[^\n]*\nquant = "int3": must be none or nf4/,
    );
  });

  it('resolveConfig throws one error listing every problem', () => {
    expect(() => resolveConfig({ rank: -1, epochs: 0 })).toThrow(ConfigError);
    expect(() => resolveConfig({ rank: -1, epochs: 0 })).toThrow(/rank = -1.*; epochs = 0/);
    expect(resolveConfig({ rank: 16 }).rank).toBe(16);
  });
});

describe('lr schedules (as transformers.optimization)', () => {
  it('warms up linearly from 0', () => {
    expect(lrMultiplier('cosine', 0, 10, 100)).toBe(0);
    expect(lrMultiplier('cosine', 5, 10, 100)).toBe(0.5);
    expect(lrMultiplier('linear', 10, 10, 100)).toBe(1);
  });

  it('cosine decays to 0 at the end, halfway at the middle', () => {
    expect(lrMultiplier('cosine', 10, 10, 110)).toBeCloseTo(1, 12);
    expect(lrMultiplier('cosine', 60, 10, 110)).toBeCloseTo(0.5, 12);
    expect(lrMultiplier('cosine', 110, 10, 110)).toBeCloseTo(0, 12);
  });

  it('linear decays to 0; constant stays at 1', () => {
    expect(lrMultiplier('linear', 55, 10, 100)).toBeCloseTo(0.5, 12);
    expect(lrMultiplier('linear', 100, 10, 100)).toBe(0);
    expect(lrMultiplier('constant', 99, 10, 100)).toBe(1);
  });

  it('warmup from a ratio rounds up', () => {
    expect(warmupStepsFor(100, null, 0.03)).toBe(3);
    expect(warmupStepsFor(10, null, 0.03)).toBe(1);
    expect(warmupStepsFor(10, 4, 0.03)).toBe(4);
  });
});
