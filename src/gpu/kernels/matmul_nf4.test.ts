import { describe, expect, it } from 'vitest';
import { DEQUANT_FALLBACK, NF4_DEQUANT_MIN_ROWS, nf4DequantBytes, nf4VariantForRows } from './matmul_nf4.ts';

describe('nf4VariantForRows', () => {
  const W = { out: 4864, in: 896 }; // Qwen2.5-0.5B's MLP up projection: 17.4 MB decoded
  const binding = 128 * 2 ** 20; // WebGPU's default maxStorageBufferBindingSize

  it('keeps a fused choice at any size', () => {
    for (const v of ['naive', 'tiled', 'blocked'] as const) {
      expect(nf4VariantForRows(v, 1, W, binding)).toBe(v);
      expect(nf4VariantForRows(v, 4096, W, binding)).toBe(v);
    }
  });

  it('takes the dequant route from NF4_DEQUANT_MIN_ROWS rows, the fused fallback below (generation, short evals)', () => {
    expect(nf4VariantForRows('dequant', NF4_DEQUANT_MIN_ROWS, W, binding)).toBe('dequant');
    expect(nf4VariantForRows('dequant', 2048, W, binding)).toBe('dequant');
    expect(nf4VariantForRows('dequant', NF4_DEQUANT_MIN_ROWS - 1, W, binding)).toBe(DEQUANT_FALLBACK);
    expect(nf4VariantForRows('dequant', 1, W, binding)).toBe(DEQUANT_FALLBACK);
  });

  it('falls back where the decoded weight would not fit one binding', () => {
    const big = { out: 14336, in: 4096 }; // Llama 3 8B's MLP: 235 MB decoded
    expect(nf4DequantBytes(big)).toBe(14336 * 4096 * 4);
    expect(nf4VariantForRows('dequant', 2048, big, binding)).toBe(DEQUANT_FALLBACK);
    expect(nf4VariantForRows('dequant', 2048, big, nf4DequantBytes(big))).toBe('dequant');
  });
});
