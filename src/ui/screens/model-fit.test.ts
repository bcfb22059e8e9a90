import { describe, expect, it } from 'vitest';
import { CATALOGUE } from '../../model/catalogue.ts';
import { parameterCount } from '../../model/memory.ts';
import { fullFineTuningBytes } from '../../train/methods/full/runtime.ts';
import { defaultMemoryBudget, MAX_DEFAULT_BUDGET, methodFits, MIN_DEFAULT_BUDGET } from './model-fit.ts';
import { fullFineTuningMemory } from './train-plan.ts';

const GiB = 1024 ** 3;
const entry = (prefix: string) => CATALOGUE.find((e) => e.repo.startsWith(prefix))!;

describe('model fit', () => {
  it('defaults the budget to four max buffers, clamped', () => {
    expect(defaultMemoryBudget({ maxBufferSize: 2 * GiB })).toBe(8 * GiB);
    expect(defaultMemoryBudget({ maxBufferSize: 128 * 1024 ** 2 })).toBe(MIN_DEFAULT_BUDGET);
    expect(defaultMemoryBudget({ maxBufferSize: 64 * GiB })).toBe(MAX_DEFAULT_BUDGET);
  });

  it("estimates LoRA on PEFT's default targets of the architecture (GPT-2's fused c_attn, Qwen's q and v)", () => {
    const budget = { hasF16: true, limits: { maxBufferSize: 2 * GiB } };
    const gpt2 = entry('openai-community/gpt2');
    // r = 8 on c_attn (768 → 2304) in 12 layers; each parameter with its gradient and two moments (16 bytes).
    expect(methodFits(gpt2, budget, 8 * GiB)[0].estimate.loraBytes).toBe(12 * 8 * (768 + 2304) * 16);
    const qwen = entry('Qwen');
    expect(methodFits(qwen, budget, 8 * GiB)[0].estimate.loraBytes).toBe(24 * 8 * (896 + 896 + 896 + 128) * 16);
  });

  it('says f16 needs shader-f16, and which methods fit a budget', () => {
    const tiny = entry('HuggingFaceTB/SmolLM2-135M');
    const noF16 = methodFits(tiny, { hasF16: false, limits: { maxBufferSize: 2 * GiB } }, 8 * GiB);
    expect(noF16.map((f) => f.verdict.fits)).toEqual([true, false, true, true]);
    expect(noF16[1].verdict.reason).toMatch(/shader-f16/);

    const llama = entry('meta-llama');
    const small = methodFits(llama, { hasF16: true, limits: { maxBufferSize: 2 * GiB } }, 3 * GiB);
    const [f32, f16, q] = small;
    expect(f32.verdict.fits).toBe(false); // 1.2B parameters in f32 alone are 4.9 GB
    expect(f32.verdict.reason).toMatch(/GiB/);
    expect(q.estimate.totalBytes).toBeLessThan(f16.estimate.totalBytes);
    expect(q.verdict.fits).toBe(true);
  });

  it('estimates full fine-tuning as the Train screen does, and says why it will not fit', () => {
    const tiny = entry('HuggingFaceTB/SmolLM2-135M');
    const [, , , full] = methodFits(tiny, { hasF16: true, limits: { maxBufferSize: 2 * GiB } }, 8 * GiB);
    expect(full.method).toBe('full');
    const P = parameterCount(tiny.dims);
    expect(full.estimate).toEqual(fullFineTuningMemory(tiny.dims, P, 1, 512));
    expect(full.estimate.loraBytes).toBe(fullFineTuningBytes(P));
    // Past the binding: the engine's own reason; past the budget: the estimate against it.
    const bound = methodFits(tiny, { hasF16: true, limits: { maxBufferSize: 2 * GiB, maxStorageBufferBindingSize: 128 * 1024 ** 2 } }, 8 * GiB)[3];
    expect(bound.verdict).toMatchObject({ fits: false, reason: expect.stringMatching(/^keeps this model's .* above this GPU's largest binding \(128 MiB\)/) });
    const llama = methodFits(entry('meta-llama'), { hasF16: true, limits: { maxBufferSize: 8 * GiB, maxStorageBufferBindingSize: 8 * GiB } }, 3 * GiB)[3];
    expect(llama.verdict).toMatchObject({ fits: false, reason: expect.stringMatching(/^training needs about [\d.]+ GiB, above the 3.00 GiB budget/) });
  });
});
