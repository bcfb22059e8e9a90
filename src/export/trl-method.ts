// The training method as PEFT / bitsandbytes see it, for the TRL export (src/export/trl.ts): the one place that maps
// TrainConfig.method to a PEFT config, so a method registry (src/train/methods/) can take it over as one function.
//
//   lora   LoraConfig(r, lora_alpha, target_modules, lora_dropout, use_rslora); LoRA+ (loraPlusRatio > 1) through
//          peft.optimizers.create_loraplus_optimizer (B's learning rate = lr × ratio, as our AdamW does)
//   qlora  the same LoraConfig over a base loaded with BitsAndBytesConfig(load_in_4bit, nf4, double quant as ours;
//          64-weight blocks, bitsandbytes' default and ours), compute dtype = the run's precision
//   dora   the same LoraConfig with use_dora=True (over NF4 too, as with qlora); LoRA+ groups the magnitudes with B,
//          as our optimizer does
//   full   no PEFT at all (lora null): SFTTrainer trains every weight; transformers' Trainer decays what ours does
//          (not biases and norms: get_decay_parameter_names) and the output is the whole model folder
//
// train.py reads the result from run.json ("method") and passes `lora` to LoraConfig(**lora) unchanged.
import type { ModelConfig } from '../model/config.ts';
import { bottleneckName } from '../train/methods/bottleneck/format.ts';

/** LoraConfig's keyword arguments (peft 0.21), JSON-ready. */
export interface PeftLoraKwargs {
  task_type: 'CAUSAL_LM';
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** "all-linear", module names (matched as path suffixes) or full module paths, as adapter_config.json has them. */
  target_modules: string | string[];
  use_rslora: boolean;
  /** GPT-2's Conv1D stores weights (in, out). */
  fan_in_fan_out: boolean;
  bias: 'none';
  /** DoRA only (absent otherwise, LoraConfig's default false). */
  use_dora?: true;
}

/** BitsAndBytesConfig's keyword arguments; bnb_4bit_compute_dtype is the run's precision, chosen in train.py. */
export interface BnbKwargs {
  load_in_4bit: true;
  bnb_4bit_quant_type: 'nf4';
  bnb_4bit_use_double_quant: boolean;
}

export interface PeftMethodPlan {
  /** The method as run.json and the README name it. */
  method: 'lora' | 'qlora' | 'dora' | 'full';
  /** null: full fine-tuning (no PEFT model). */
  lora: PeftLoraKwargs | null;
  /** null: the base is loaded in the run's precision. */
  quantization: BnbKwargs | null;
  /** create_loraplus_optimizer's loraplus_lr_ratio; null = the Trainer's own AdamW. */
  loraplus_lr_ratio: number | null;
}

/** The run settings the mapping reads: TrainConfig's, typed loosely on method and quant so the mapping stays one
 *  function while methods move into a registry (QLoRA is method "qlora", or method "lora" with quant "nf4"). */
export interface MethodSettings {
  method: string;
  quant?: string;
  rank: number;
  alpha: number;
  dropout: number;
  rslora: boolean;
  loraPlusRatio: number;
  doubleQuant: boolean;
}

/** What PEFT (and bitsandbytes) must be given to train `config`'s method on `model` with these target modules. */
export function peftMethodPlan(config: MethodSettings, model: Pick<ModelConfig, 'linearLayout'>, targetModules: string | string[]): PeftMethodPlan {
  const lora: PeftLoraKwargs = {
    task_type: 'CAUSAL_LM',
    r: config.rank,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    target_modules: targetModules,
    use_rslora: config.rslora,
    fan_in_fan_out: model.linearLayout === 'conv1d',
    bias: 'none',
  };
  const loraplus_lr_ratio = config.loraPlusRatio > 1 ? config.loraPlusRatio : null;
  const nf4 = config.method === 'qlora' || config.quant === 'nf4';
  if (config.method === 'full') {
    if (nf4) throw new Error('method = "full" with quant nf4: full fine-tuning trains full-precision weights');
    return { method: 'full', lora: null, quantization: null, loraplus_lr_ratio: null };
  }
  if (config.method === 'houlsby' || config.method === 'pfeiffer') {
    throw new Error(
      `method = "${config.method}": ${bottleneckName(config.method)} bottleneck adapters have no TRL form — PEFT, which TRL's SFTTrainer trains with, has no bottleneck adapters`,
    );
  }
  if (config.method === 'adalora') {
    throw new Error(
      'method = "adalora": AdaLoRA has no TRL form — its rank budget needs update_and_allocate(step) after every optimizer step, which TRL\'s SFTTrainer never calls',
    );
  }
  if (config.method !== 'lora' && config.method !== 'qlora' && config.method !== 'dora') {
    throw new Error(`method = ${JSON.stringify(config.method)}: the TRL export knows lora, qlora (lora over NF4), dora and full only`);
  }
  const dora = config.method === 'dora';
  return {
    method: dora ? 'dora' : nf4 ? 'qlora' : 'lora',
    lora: dora ? { ...lora, use_dora: true } : lora,
    quantization: nf4 ? { load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: config.doubleQuant } : null,
    loraplus_lr_ratio,
  };
}
