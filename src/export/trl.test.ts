import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readModelConfig } from '../model/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { DEFAULT_CONFIG } from '../train/config.ts';
import { accelerateConfigs, rowLine, yaml } from './trl.ts';
import { peftMethodPlan } from './trl-method.ts';

describe('TRL export pieces', () => {
  it('method → PEFT: GPT-2 Conv1D is fan_in_fan_out, LoRA+ only above ratio 1, NF4 from quant or method qlora, other methods refused', async () => {
    const gpt2 = await readModelConfig(nodeFolder(join(FIXTURES, 'models', 'gpt2')));
    const plan = peftMethodPlan({ ...DEFAULT_CONFIG, rank: 2, alpha: 3, dropout: 0.1 }, gpt2, ['c_attn']);
    expect(plan).toEqual({
      method: 'lora',
      lora: { task_type: 'CAUSAL_LM', r: 2, lora_alpha: 3, lora_dropout: 0.1, target_modules: ['c_attn'], use_rslora: false, fan_in_fan_out: true, bias: 'none' },
      quantization: null,
      loraplus_lr_ratio: null,
    });
    expect(peftMethodPlan({ ...DEFAULT_CONFIG, loraPlusRatio: 16 }, gpt2, 'all-linear').loraplus_lr_ratio).toBe(16);
    expect(peftMethodPlan({ ...DEFAULT_CONFIG, quant: 'nf4', doubleQuant: true }, gpt2, 'all-linear').quantization).toEqual({
      load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true,
    });
    expect(peftMethodPlan({ ...DEFAULT_CONFIG, method: 'qlora' } as never, gpt2, 'all-linear').method).toBe('qlora');
    expect(() => peftMethodPlan({ ...DEFAULT_CONFIG, method: 'ia3' } as never, gpt2, 'all-linear')).toThrow('method = "ia3": the TRL export knows lora, qlora (lora over NF4), dora and full only');
    expect(() => peftMethodPlan({ ...DEFAULT_CONFIG, method: 'houlsby' } as never, gpt2, 'all-linear')).toThrow(/method = "houlsby": Houlsby bottleneck adapters have no TRL form/);
    // Full fine-tuning: no PEFT config, no quantization.
    expect(peftMethodPlan({ ...DEFAULT_CONFIG, method: 'full' }, gpt2, 'all-linear')).toEqual({ method: 'full', lora: null, quantization: null, loraplus_lr_ratio: null });
    expect(() => peftMethodPlan({ ...DEFAULT_CONFIG, method: 'full', quant: 'nf4' }, gpt2, 'all-linear')).toThrow(/full-precision/);
    // DoRA: LoraConfig(use_dora=True), over NF4 too.
    const dora = peftMethodPlan({ ...DEFAULT_CONFIG, method: 'dora', quant: 'nf4' }, gpt2, ['c_attn']);
    expect([dora.method, dora.lora?.use_dora, dora.quantization?.bnb_4bit_quant_type]).toEqual(['dora', true, 'nf4']);
    expect('use_dora' in plan.lora!).toBe(false);
  });

  it('YAML: sorted keys, nested blocks, every string single-quoted (so "no" stays a string), quotes doubled', () => {
    expect(yaml({ b: 'no', a: 1, c: { y: true, x: "it's" }, d: null })).toBe("a: 1\nb: 'no'\nc:\n  x: 'it''s'\n  y: true\nd: null\n");
    expect(yaml(accelerateConfigs().deepspeed_zero3)).toContain("distributed_type: 'DEEPSPEED'\n");
  });

  it('a row line is the JSON datasets reads: input_ids and labels, -100 kept', () => {
    const line = rowLine({ input_ids: Int32Array.from([1, 5, 7]), labels: Int32Array.from([-100, -100, 7]) });
    expect(JSON.parse(line)).toEqual({ input_ids: [1, 5, 7], labels: [-100, -100, 7] });
  });
});
