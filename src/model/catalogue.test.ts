import { describe, expect, it } from 'vitest';
import { CATALOGUE } from './catalogue.ts';
import { checkFit, estimateTrainingMemory, linearShapes, parameterCount } from './memory.ts';

describe('catalogue', () => {
  // The parameter counts are the ones the models' own pages publish; the formula derives them from the dims alone.
  it.each(CATALOGUE.map((e) => [e.repo, e] as const))('%s: dims give the published parameter count', (_, entry) => {
    expect(parameterCount(entry.dims)).toBe(entry.params);
  });

  it('bf16 download sizes are about 2 bytes per parameter (GPT-2 ships f32)', () => {
    for (const e of CATALOGUE) {
      const perParam = e.downloadBytes / e.params;
      expect(perParam, e.repo).toBeGreaterThan(e.repo.includes('gpt2') ? 4 : 1.9);
      expect(perParam, e.repo).toBeLessThan(e.repo.includes('gpt2') ? 4.5 : 2.3);
    }
  });
});

describe('training memory estimate', () => {
  const qwen = CATALOGUE.find((e) => e.repo.startsWith('Qwen'))!;
  const qv = linearShapes(qwen.dims).filter((l) => l.name === 'q_proj' || l.name === 'v_proj').map((l) => [l.in, l.out] as const);
  // LoRA r = 8 on q_proj and v_proj of every layer.
  const trainable = { params: qwen.dims.numLayers * qv.reduce((s, [i, o]) => s + 8 * (i + o), 0), activationsPerToken: qwen.dims.numLayers * 8 * qv.length };
  const base = { dims: qwen.dims, embeddingDtype: 'f16' as const, trainable, batch: 1, seqLen: 256 };

  it('orders the base dtypes as their storage: NF4 < f16 < f32', () => {
    const f32 = estimateTrainingMemory({ ...base, base: 'f32' });
    const f16 = estimateTrainingMemory({ ...base, base: 'f16' });
    const nf4 = estimateTrainingMemory({ ...base, base: 'nf4' });
    expect(f16.baseWeightBytes).toBeLessThan(f32.baseWeightBytes);
    expect(nf4.baseWeightBytes).toBeLessThan(f16.baseWeightBytes);
    // The linear layers of Qwen2.5-0.5B hold 358M parameters: f32 spends 4 bytes on each, NF4 about 0.56.
    const linear = 357_897_216 - 24 * (896 + 128 + 128 + 2 * 896);
    expect(f32.baseWeightBytes - nf4.baseWeightBytes).toBeCloseTo(linear * (4 - 0.5 - 4 / 64), -4);
  });

  it('counts, for NF4, one decoded f32 copy of the largest linear layer (the dequant route\'s shared scratch)', () => {
    const f16 = estimateTrainingMemory({ ...base, base: 'f16' });
    const nf4 = estimateTrainingMemory({ ...base, base: 'nf4' });
    // Qwen2.5-0.5B's largest projections are the MLP's 896 × 4864.
    expect(nf4.transientBytes - f16.transientBytes).toBe(896 * 4864 * 4);
  });

  it('counts LoRA weights, gradients and both AdamW moments', () => {
    const e = estimateTrainingMemory({ ...base, base: 'f16' });
    const loraParams = 24 * 8 * (896 + 896 + 896 + 128);
    expect(e.loraBytes).toBe(loraParams * 16);
  });

  it('says why a set-up does not fit', () => {
    const e = estimateTrainingMemory({ ...base, base: 'f32' });
    expect(checkFit(e, { maxBufferSize: 2 ** 32 }, 2 ** 34).fits).toBe(true);
    const tooSmallBuffer = checkFit(e, { maxBufferSize: 128 * 2 ** 20 }, 2 ** 34);
    expect(tooSmallBuffer.fits).toBe(false);
    expect(tooSmallBuffer.reason).toContain('maxBufferSize');
    const tooLittleMemory = checkFit(e, { maxBufferSize: 2 ** 32 }, 2 ** 30);
    expect(tooLittleMemory.reason).toContain('QLoRA');
  });
});
