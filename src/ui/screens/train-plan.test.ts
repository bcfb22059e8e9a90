import { describe, expect, it } from 'vitest';
import { estimateTrainingMemory } from '../../model/memory.ts';
import { parseModelConfig } from '../../model/config.ts';
import { DEFAULT_CONFIG } from '../../train/config.ts';
import { modelSummary } from '../../train/worker/summary.ts';
import { trainPlan } from './train-plan.ts';

const llama = modelSummary('tiny-llama', parseModelConfig({
  model_type: 'llama', vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3, num_attention_heads: 4,
  num_key_value_heads: 2, max_position_embeddings: 128, tie_word_embeddings: true, rms_norm_eps: 1e-5,
}, 'tiny'), { dtype: 'f32', hasChatTemplate: false, weightBytes: 0 });
const gpt2 = modelSummary('tiny-gpt2', parseModelConfig({
  model_type: 'gpt2', vocab_size: 100, n_embd: 32, n_layer: 2, n_head: 4, n_positions: 64,
}, 'tiny'), { dtype: 'f32', hasChatTemplate: false, weightBytes: 0 });

describe('train plan', () => {
  it("counts PEFT's trainable parameters for the default targets (llama: q_proj, v_proj)", () => {
    const plan = trainPlan(llama, { ...DEFAULT_CONFIG, rank: 4 });
    expect(plan.modules).toEqual(['self_attn.q_proj', 'self_attn.v_proj']);
    // q: 32 → 32, v: 32 → 16 (2 kv heads of 8); r·(in + out) each, 3 layers.
    expect(plan.trainableParams).toBe(3 * 4 * (32 + 32 + 32 + 16));
  });

  it('resolves all-linear and attention as the trainer does, GPT-2 included', () => {
    expect(trainPlan(llama, { ...DEFAULT_CONFIG, targets: ['all-linear'] }).modules).toHaveLength(7);
    expect(trainPlan(llama, { ...DEFAULT_CONFIG, targets: ['attention'] }).modules).toEqual(['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj']);
    expect(trainPlan(gpt2, { ...DEFAULT_CONFIG, targets: ['attention'] }).modules).toEqual(['attn.c_attn', 'attn.c_proj']);
    expect(trainPlan(gpt2, { ...DEFAULT_CONFIG, targets: ['c_proj'] }).modules).toEqual(['attn.c_proj', 'mlp.c_proj']);
    expect(trainPlan(gpt2, { ...DEFAULT_CONFIG, targets: ['nope'] }).problem).toMatch(/matches no linear layer .*c_attn/);
  });

  it('prompt tuning and P-tuning wrap nothing (a preset\'s all-linear ignored), train n × hidden (+ the encoder), and count the virtual tokens as sequence', () => {
    const prompt = trainPlan(llama, { ...DEFAULT_CONFIG, method: 'prompt-tuning', targets: ['all-linear'], numVirtualTokens: 10, maxLength: 64 });
    expect(prompt).toMatchObject({ modules: [], trainableParams: 10 * 32, problem: '' });
    const ptuning = trainPlan(llama, { ...DEFAULT_CONFIG, method: 'p-tuning', numVirtualTokens: 10, encoderHiddenSize: 8 });
    expect(ptuning.trainableParams).toBe(10 * 32 + (8 * 32 + 8) + (8 * 8 + 8) + (32 * 8 + 32));
    // 64 tokens + 10 virtual ones per row are as many activations as 73 + 1.
    const same = trainPlan(llama, { ...DEFAULT_CONFIG, method: 'prompt-tuning', numVirtualTokens: 1, maxLength: 73 });
    expect(prompt.memory!.activationBytes).toBe(same.memory!.activationBytes);
    expect(prompt.memory!.activationBytes).toBeGreaterThan(trainPlan(llama, { ...DEFAULT_CONFIG, method: 'prompt-tuning', numVirtualTokens: 1, maxLength: 64 }).memory!.activationBytes);
  });

  it("takes an imported adapter's full module paths (GPT-2's attention c_proj without the MLP's)", () => {
    const paths = ['transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_proj'];
    expect(trainPlan(gpt2, { ...DEFAULT_CONFIG, targets: paths }).modules).toEqual(['attn.c_proj']);
  });

  it('estimates memory with the NF4 base for QLoRA and the batch × max length', () => {
    const lora = trainPlan(llama, { ...DEFAULT_CONFIG, rank: 8, batchSize: 2, maxLength: 64 });
    const qlora = trainPlan(llama, { ...DEFAULT_CONFIG, quant: 'nf4', rank: 8, batchSize: 2, maxLength: 64 });
    expect(qlora.memory!.baseWeightBytes).toBeLessThan(lora.memory!.baseWeightBytes);
    expect(lora.memory).toEqual(estimateTrainingMemory({
      // LoRA r = 8 on q (32 → 32) and v (32 → 16) in 3 layers; each keeps h = A·x (8 per token).
      dims: llama.dims!, base: 'f32', embeddingDtype: 'f32', trainable: { params: 3 * 8 * (64 + 48), activationsPerToken: 3 * 2 * 8 }, batch: 2, seqLen: 64,
    }));
    expect(trainPlan(llama, { ...DEFAULT_CONFIG, rank: Number.NaN }).memory).toBeNull();
  });
});
