// DoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation") as PEFT's LoraConfig(use_dora=True) trains
// it: LoRA's A and B (A kaiming-uniform, B zero, s = α/r or α/√r with rsLoRA) plus a magnitude m per output row,
// initialised to ‖W + s·B·A‖ = ‖W‖ (row norms), and the layer
//   y = W·x + b + (m/‖W + s·B·A‖ − 1) ⊙ (W·drop(x)) + (m/‖W + s·B·A‖) ⊙ s·B·A·drop(x)
// with the norm recomputed every step and detached (no gradient through it), the bias never scaled. Without dropout it
// is (m/‖W + s·B·A‖) ⊙ (W + s·B·A)·x + b, which is also its merge rule. Saved as PEFT saves it: adapter_config.json
// with use_dora true, lora_A, lora_B and base_model.model.<path>.lora_magnitude_vector (out; PEFT drops the ".weight"). Its GPU side is
// runtime.ts (the hook is Linear.dora in src/model/runtime/linear.ts, kernels src/shaders/dora.wgsl).
import type { TensorToWrite } from '../../../model/safetensors.ts';
import { PEFT_DEFAULT_TARGET_MODULES } from '../../../model/weights.ts';
import { loraSegmentName } from '../../lora-names.ts';
import { loraMethod } from '../lora/config.ts';
import { buildAdapterConfig, exportAdapter, finiteVector, type PeftAdapterConfig } from '../../peft.ts';
import type { TrainingMethod } from '../method.ts';

/** The flat-buffer segment of a module's magnitude vector. */
export function doraMagnitudeSegmentName(peftPath: string): string {
  return `${peftPath}.lora_magnitude_vector`;
}

/** The adapter file's key of a module's magnitude, as PEFT 0.21 saves it (without ".weight", which its loader adds back). */
export function doraMagnitudeTensorName(peftPath: string): string {
  return `base_model.model.${peftPath}.lora_magnitude_vector`;
}

export const doraMethod: TrainingMethod = {
  id: 'dora',
  label: 'DoRA',
  explanation:
    'LoRA split into direction and magnitude: the low-rank update turns each output row of W, and a learned length per row rescales it (PEFT use_dora).',
  advice:
    'Set it as LoRA (rank 8–16, α = r or 2r, lr 1e-4 to 3e-4, the same targets); DoRA tends to match LoRA at half the ' +
    'rank and is steadier at low ranks, for one extra vector per layer and a slower step (each step recomputes the ' +
    'weight norms). Works over an NF4 base too; it merges into the weights.',
  peftType: 'LORA',
  exports: 'adapter',
  wrapsLinears: true,
  settings: ['rank', 'alpha', 'dropout', 'targets', 'rslora', 'loraPlusRatio'],
  defaultTargets: PEFT_DEFAULT_TARGET_MODULES,
  validate: () => [],
  tensors(m, c) {
    return [
      ...loraMethod.tensors(m, c),
      // PEFT 0.21's create_loraplus_optimizer puts every 1-D parameter in B's group ("lora_B" in name or
      // param.ndim == 1): the magnitude gets B's learning rate.
      { name: doraMagnitudeSegmentName(m.peftPath), length: m.outFeatures, lrScale: c.loraPlusRatio },
    ];
  },
  footprint(modules, c) {
    return {
      params: modules.reduce((s, m) => s + c.rank * (m.inFeatures + m.outFeatures) + m.outFeatures, 0),
      // Each module keeps h = A·drop(x) (r per token) and zl = W·drop(x) + s·B·h (out per token) for its backward.
      activationsPerToken: modules.reduce((s, m) => s + c.rank + m.outFeatures, 0),
    };
  },
  exportAdapter({ tensors, modules, targetModules, config: c, model, baseModel }) {
    const config: PeftAdapterConfig = {
      ...buildAdapterConfig({
        baseModel,
        rank: c.rank,
        alpha: c.alpha,
        dropout: c.dropout,
        targetModules,
        fanInFanOut: model.linearLayout === 'conv1d',
        rslora: c.rslora,
        model,
      }),
      use_dora: true,
    };
    const get = (name: string) => {
      const v = tensors.get(name);
      if (!v) throw new Error(`no trained ${name.slice(name.lastIndexOf('.') + 1)} for ${name.slice(0, name.lastIndexOf('.'))}`);
      return v;
    };
    // The magnitudes, checked here; exportAdapter checks A and B and writes all of them into one file.
    const magnitudes = new Map<string, TensorToWrite>();
    for (const m of modules) {
      const name = doraMagnitudeTensorName(m.peftPath);
      const data = get(doraMagnitudeSegmentName(m.peftPath));
      if (data.length !== m.outFeatures) throw new Error(`${name}: ${data.length} values, expected ${m.outFeatures}`);
      magnitudes.set(name, finiteVector(name, data, [m.outFeatures]));
    }
    return exportAdapter(
      modules.map((m) => ({ peftPath: m.peftPath, inFeatures: m.inFeatures, outFeatures: m.outFeatures, A: get(loraSegmentName(m.peftPath, 'A')), B: get(loraSegmentName(m.peftPath, 'B')) })),
      config,
      magnitudes,
    );
  },
  proof: {
    reference: 'src/gpu/ref/dora.ref.ts',
    goldens: ['scripts/golden_dora_layer.py', 'tests/fixtures/golden/dora_layer.json', 'src/gpu/ref/dora-peft.ref.test.ts', 'scripts/golden_dora.py', 'tests/fixtures/golden/train_dora_gpt2.json', 'tests/fixtures/golden/train_dora_llama.json', 'tests/fixtures/golden/train_dora_qwen3.json', 'tests/fixtures/golden/train_dora_llama_loraplus.json', 'src/train/dora-golden.gpu.test.ts', 'src/train/dora-nf4.gpu.test.ts'],
    exportImport: ['src/train/methods/dora/dora.test.ts', 'src/train/dora-golden.gpu.test.ts'],
    merge: 'src/train/methods/dora/dora.test.ts',
  },
};

/**
 * DoRA's merge rule (PEFT's DoraLinearVariant.merge_safe): W' = (m / ‖W + s·B·A‖) ⊙ (W + s·B·A), each output row
 * scaled by its magnitude over its norm — the layer without dropout, baked into the weight. `W` as stored: [out, in],
 * or GPT-2's Conv1D [in, out] when `conv1d` (the result is in the same layout). float64 inside; refuses a non-finite
 * result, as PEFT's safe_merge does.
 */
export function mergeDoraWeight(
  W: ArrayLike<number>,
  o: { out: number; in: number; r: number; scale: number; conv1d: boolean; A: ArrayLike<number>; B: ArrayLike<number>; m: ArrayLike<number>; where: string },
): Float32Array {
  const { out, r } = o;
  const inDim = o.in;
  if (W.length !== out * inDim) throw new Error(`${o.where}: the weight has ${W.length} values, expected ${out}·${inDim}`);
  if (o.A.length !== r * inDim || o.B.length !== out * r || o.m.length !== out) {
    throw new Error(`${o.where}: lora_A ${o.A.length}, lora_B ${o.B.length}, lora_magnitude_vector ${o.m.length} values, expected ${r}·${inDim}, ${out}·${r}, ${out}`);
  }
  const merged = new Float32Array(out * inDim);
  const row = new Float64Array(inDim);
  for (let j = 0; j < out; j++) {
    let sq = 0;
    for (let i = 0; i < inDim; i++) {
      let ba = 0;
      for (let k = 0; k < r; k++) ba += o.B[j * r + k] * o.A[k * inDim + i];
      const v = (o.conv1d ? W[i * out + j] : W[j * inDim + i]) + o.scale * ba;
      row[i] = v;
      sq += v * v;
    }
    const factor = o.m[j] / Math.sqrt(sq);
    for (let i = 0; i < inDim; i++) {
      const v = factor * row[i];
      if (!Number.isFinite(v)) throw new Error(`${o.where}: merging gives ${v} in output row ${j} (norm ${Math.sqrt(sq)}, magnitude ${o.m[j]}): refusing a non-finite weight`);
      merged[o.conv1d ? i * out + j : j * inDim + i] = v;
    }
  }
  return merged;
}
