// Bottleneck adapters (Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP"; Pfeiffer et al. 2020,
// "AdapterFusion"), two registry methods over one module: a small MLP on a linear layer's OUTPUT, inside the residual
// branch that layer feeds, as adapter-transformers places them:
//
//   h = W x + b;   y = h + U·act(D·h + b_d) + b_u;   D (m, out), U (out, m), m = max(1, ⌊out / reduction_factor⌋)
//
//   houlsby   after the attention's output projection and after the MLP: o_proj + down_proj (GPT-2: attn.c_proj +
//             mlp.c_proj)
//   pfeiffer  after the MLP only: down_proj (GPT-2: mlp.c_proj)
//
// D and b_d start as nn.Linear initialises them (kaiming-uniform a=√5, i.e. U(±1/√out), and the bias U(±1/√out)) from
// the run's seed; U and b_u start at zero, so step 0 is the base model. Weight decay applies to D and U, not to the
// biases. A non-linear adapter cannot fold into W: there is no merge, and the GGUF and TRL exports refuse it.
// PEFT has no bottleneck adapters: the export is the studio's documented layout (format.ts, "lora-studio-bottleneck/1"),
// checked against a PyTorch reference (scripts/golden_bottleneck.py):
//   adapter_config.json        {"adapter_type": "bottleneck", "config": "houlsby"|"pfeiffer", "reduction_factor",
//                               "bottleneck_size", "non_linearity", "target_modules": [module paths],
//                               "base_model_name_or_path", "format": "lora-studio-bottleneck/1"}
//   adapter_model.safetensors  F32 "<module path>.adapter_down.weight" [m, out], ".adapter_down.bias" [m],
//                              ".adapter_up.weight" [out, m], ".adapter_up.bias" [out]
// (the tensor names are also the trainable segments' names, so `initial` takes a file's tensors as they are). GPU side: runtime.ts (hook: Linear.bottleneck,
// src/model/runtime/bottleneck.ts).
import { writeSafetensors, type TensorToWrite } from '../../../model/safetensors.ts';
import type { ModelType } from '../../../model/config.ts';
import type { LinearModule } from '../../../model/weights.ts';
import type { FieldError, TrainConfig } from '../../config.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, finiteVector } from '../../peft.ts';
import type { MethodId } from '../ids.ts';
import type { TrainableTensor, TrainingMethod } from '../method.ts';
import {
  ADAPTER_ACTIVATIONS,
  BOTTLENECK_FORMAT,
  BOTTLENECK_PARTS,
  bottleneckShape,
  bottleneckSize,
  bottleneckTensorName,
  type BottleneckConfigName,
  type BottleneckFileConfig,
} from './format.ts';

const MLP_OUT: Record<ModelType, string[]> = {
  gpt2: ['mlp.c_proj'],
  llama: ['down_proj'],
  mistral: ['down_proj'],
  qwen2: ['down_proj'],
  qwen3: ['down_proj'],
};

export const HOULSBY_TARGETS: Record<ModelType, string[]> = {
  gpt2: ['attn.c_proj', 'mlp.c_proj'],
  llama: ['o_proj', 'down_proj'],
  mistral: ['o_proj', 'down_proj'],
  qwen2: ['o_proj', 'down_proj'],
  qwen3: ['o_proj', 'down_proj'],
};

export const PFEIFFER_TARGETS = MLP_OUT;

/** The trainable tensors on one module: D, b_d, U, b_u, named as the file names them. */
export function bottleneckTensors(m: Pick<LinearModule, 'peftPath' | 'outFeatures'>, c: Pick<TrainConfig, 'reductionFactor'>): TrainableTensor[] {
  const size = bottleneckSize(m.outFeatures, c.reductionFactor);
  return BOTTLENECK_PARTS.map((part) => ({
    name: bottleneckTensorName(m.peftPath, part),
    length: bottleneckShape(part, m.outFeatures, size).reduce((a, b) => a * b, 1),
    lrScale: 1,
    decay: part.endsWith('.weight'),
  }));
}

/** reductionFactor's range and adapterActivation's choices are config.ts's (validateConfig); the rest is free. */
function validate(c: TrainConfig): FieldError[] {
  return (ADAPTER_ACTIVATIONS as readonly string[]).includes(c.adapterActivation) ? [] : [{ field: 'adapterActivation', message: `adapterActivation = ${JSON.stringify(c.adapterActivation)}: must be one of ${ADAPTER_ACTIVATIONS.join(', ')}` }];
}

function bottleneckMethod(id: Extract<MethodId, BottleneckConfigName>): TrainingMethod {
  const houlsby = id === 'houlsby';
  return {
    id,
    label: houlsby ? 'Houlsby adapters' : 'Pfeiffer adapters',
    explanation: houlsby
      ? 'Adds a small bottleneck MLP (down-projection, non-linearity, up-projection) after each attention block and each MLP, inside the residual branch. The up-projection starts at zero, so step 0 is the base model.'
      : 'Adds a small bottleneck MLP (down-projection, non-linearity, up-projection) after each MLP only, inside the residual branch: half of Houlsby’s adapters. The up-projection starts at zero, so step 0 is the base model.',
    advice:
      'The bottleneck is the layer width divided by the reduction factor (16 by default; 8 or 4 for more capacity, 32–64 for ' +
      'fewer parameters). Train at adapter learning rates, 1e-4 to 1e-3 (the adapter papers use 1e-4 to 3e-4 on large models; ' +
      'tiny models take more). ' +
      (houlsby ? 'Pfeiffer’s placement (after the MLP only) reaches similar quality with half the adapters. ' : 'Houlsby’s placement adds one after attention too, for a little more capacity. ') +
      'Unlike LoRA it cannot merge into the weights (the non-linearity sits between D and U), so it adds a little latency at ' +
      'inference, and exports in the studio’s own documented format, not PEFT’s. Works over an NF4 base too.',
    peftType: null,
    exports: 'adapter',
    wrapsLinears: true,
    settings: ['targets', 'reductionFactor', 'adapterActivation'],
    defaultTargets: houlsby ? HOULSBY_TARGETS : PFEIFFER_TARGETS,
    validate,
    tensors: (m, c) => bottleneckTensors(m, c),
    footprint(modules, c) {
      let params = 0;
      let activationsPerToken = 0;
      for (const m of modules) {
        const size = bottleneckSize(m.outFeatures, c.reductionFactor);
        params += 2 * size * m.outFeatures + size + m.outFeatures;
        // The layer's own output h, and the bottleneck's z and act(z), kept for the backward.
        activationsPerToken += m.outFeatures + 2 * size;
      }
      return { params, activationsPerToken };
    },
    exportAdapter({ tensors, modules, config, baseModel }) {
      if (modules.length === 0) throw new Error('no bottleneck adapter modules to export');
      const weights = new Map<string, TensorToWrite>();
      for (const m of modules) {
        const size = bottleneckSize(m.outFeatures, config.reductionFactor);
        for (const part of BOTTLENECK_PARTS) {
          const name = bottleneckTensorName(m.peftPath, part);
          const shape = bottleneckShape(part, m.outFeatures, size);
          const data = tensors.get(name);
          if (!data) throw new Error(`no trained ${name}`);
          const n = shape.reduce((a, b) => a * b, 1);
          if (data.length !== n) throw new Error(`${name}: ${data.length} values, expected [${shape.join(', ')}] = ${n}`);
          weights.set(name, finiteVector(name, data, shape));
        }
      }
      const file: BottleneckFileConfig = {
        adapter_type: 'bottleneck',
        base_model_name_or_path: baseModel,
        bottleneck_size: bottleneckSize(modules[0].outFeatures, config.reductionFactor),
        config: id,
        format: BOTTLENECK_FORMAT,
        non_linearity: config.adapterActivation,
        reduction_factor: config.reductionFactor,
        target_modules: modules.map((m) => m.peftPath),
      };
      return {
        [ADAPTER_CONFIG_FILE]: new TextEncoder().encode(JSON.stringify(file, null, 2)),
        [ADAPTER_WEIGHTS_FILE]: writeSafetensors(weights, { format: 'pt' }),
      } as ReturnType<TrainingMethod['exportAdapter']>;
    },
    proof: {
      reference: 'src/gpu/ref/bottleneck.ref.ts',
      goldens: [
        'scripts/golden_bottleneck.py',
        `tests/fixtures/golden/train_${id}_gpt2.json`,
        `tests/fixtures/golden/train_${id}_llama.json`,
        `tests/fixtures/golden/train_${id}_qwen3.json`,
        'src/train/bottleneck-golden.gpu.test.ts',
      ],
      exportImport: ['src/train/methods/bottleneck/bottleneck.test.ts', 'src/train/bottleneck-golden.gpu.test.ts'],
      merge: null,
    },
  };
}

export const houlsbyMethod = bottleneckMethod('houlsby');
export const pfeifferMethod = bottleneckMethod('pfeiffer');
