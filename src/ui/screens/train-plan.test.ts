import { describe, expect, it } from 'vitest';
import { estimateTrainingMemory } from '../../model/memory.ts';
import { parseModelConfig } from '../../model/config.ts';
import { DEFAULT_CONFIG } from '../../train/config.ts';
import { fullFineTuningBytes } from '../../train/methods/full/runtime.ts';
import { effectiveConfig, trainConfigErrors } from '../../store/slices/train.ts';
import { countFullParameters, modelSummary } from '../../train/worker/summary.ts';
import { trainPlan } from './train-plan.ts';

const llamaConfig = parseModelConfig({
  model_type: 'llama', vocab_size: 100, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 3, num_attention_heads: 4,
  num_key_value_heads: 2, max_position_embeddings: 128, tie_word_embeddings: true, rms_norm_eps: 1e-5,
}, 'tiny');
const llama = modelSummary('tiny-llama', llamaConfig, { dtype: 'f32', hasChatTemplate: false, weightBytes: 0 });
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
    // The LSTM encoder: one bidirectional layer of H = 4 (each direction W_ih, W_hh, b_ih, b_hh), the head 2H wide.
    const lstm = trainPlan(llama, { ...DEFAULT_CONFIG, method: 'p-tuning', numVirtualTokens: 10, encoderType: 'lstm', encoderHiddenSize: 4, encoderNumLayers: 1 });
    expect(lstm.trainableParams).toBe(10 * 32 + 2 * (16 * 32 + 16 * 4 + 16 + 16) + (8 * 8 + 8) + (32 * 8 + 32));
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

describe('train plan: full fine-tuning', () => {
  const gpu = (binding: number, budget: number) => ({ limits: { maxBufferSize: 2 ** 31, maxStorageBufferBindingSize: binding }, budgetBytes: budget });
  const full = { ...DEFAULT_CONFIG, method: 'full' as const, targets: [], batchSize: 2, maxLength: 64 };

  it('counts every weight (the summary\'s fullParameters) and five f32 copies of them beside the f32 weights', () => {
    const plan = trainPlan(llama, full, gpu(2 ** 30, 2 ** 30));
    expect(plan.wholeModel).toBe(true);
    expect(plan.problem).toBe('');
    expect(plan.modules).toHaveLength(7);
    expect(llama.fullParameters).toBe(countFullParameters(llamaConfig));
    expect(plan.trainableParams).toBe(llama.fullParameters);
    const P = plan.trainableParams;
    const estimate = estimateTrainingMemory({ dims: llama.dims!, base: 'f32', embeddingDtype: 'f32', trainable: { params: P, activationsPerToken: 0 }, batch: 2, seqLen: 64 });
    // runtime.ts: master weights, gradients, two moments and the trained copy beside the model.
    expect(plan.memory!.loraBytes).toBe(fullFineTuningBytes(P));
    expect(plan.memory!.totalBytes).toBe(estimate.baseWeightBytes + fullFineTuningBytes(P) + estimate.activationBytes + estimate.transientBytes);
    // The model is trained in f32 whatever it was loaded in.
    expect(trainPlan({ ...llama, dtype: 'f16' }, full).memory!.baseWeightBytes).toBe(estimate.baseWeightBytes);
  });

  it('refuses past the binding (the engine\'s reason) and past the memory budget', () => {
    const P = llama.fullParameters!;
    expect(trainPlan(llama, full, gpu(4 * P - 4, 2 ** 30)).problem).toMatch(/^Full fine-tuning keeps this model's .* above this GPU's largest binding .*LoRA or QLoRA/);
    expect(trainPlan(llama, full, gpu(2 ** 30, 1000)).problem).toMatch(/^Full fine-tuning does not fit this GPU: training needs about .* budget/);
  });

  it('shows the method\'s own errors as field errors: no NF4 base; the target list does not apply', () => {
    expect(trainConfigErrors({ ...full, targets: ['all-linear'] }, 'none')).toEqual([]);
    expect(effectiveConfig({ ...full, targets: ['all-linear'] }, 'none').targets).toEqual([]);
    expect(effectiveConfig({ ...DEFAULT_CONFIG, targets: ['all-linear'] }, 'none').targets).toEqual(['all-linear']);
    const errors = trainConfigErrors(full, 'nf4');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ field: 'quant', message: expect.stringMatching(/cannot be NF4/) });
  });
});
