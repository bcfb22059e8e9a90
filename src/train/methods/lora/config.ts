// LoRA (Hu et al. 2021) as PEFT's LoraConfig trains it: y = W x + s · B (A dropout(x)), s = α / r (α / √r with
// rsLoRA), A kaiming-uniform and B zero so step 0 is the base model; LoRA+ scales B's learning rate. Over an NF4 base
// this is QLoRA. Its GPU side is runtime.ts (the hook is Linear.lora in src/model/runtime/linear.ts, the flat state
// src/train/lora-state.ts); the adapter files are src/train/peft.ts; the merge rule src/train/merge.ts.
import { PEFT_DEFAULT_TARGET_MODULES } from '../../../model/weights.ts';
import { loraSegmentName } from '../../lora-names.ts';
import { buildAdapterConfig, exportAdapter } from '../../peft.ts';
import type { TrainingMethod } from '../method.ts';

export const loraMethod: TrainingMethod = {
  id: 'lora',
  label: 'LoRA',
  explanation: 'Freezes the model and learns a low-rank update beside each chosen linear layer: y = Wx + (α/r)·B(Ax).',
  advice:
    'Rank 4 for simple tasks, 8–16 for summaries or translation, 32–64 for code or a new domain; α = r (cautious) or 2r; ' +
    'lr 1e-4 to 3e-4 (ten times full fine-tuning); q_proj and v_proj first, k/o_proj or all-linear for more; ' +
    'dropout 0.05–0.1 against overfitting. Over an NF4 base (QLoRA) it needs about a quarter of the memory.',
  peftType: 'LORA',
  exports: 'adapter',
  wrapsLinears: true,
  settings: ['rank', 'alpha', 'dropout', 'targets', 'rslora', 'loraPlusRatio'],
  defaultTargets: PEFT_DEFAULT_TARGET_MODULES,
  // Its settings' ranges are config.ts's; LoRA pairs with every other setting.
  validate: () => [],
  tensors(m, c) {
    return [
      { name: loraSegmentName(m.peftPath, 'A'), length: c.rank * m.inFeatures, lrScale: 1 },
      { name: loraSegmentName(m.peftPath, 'B'), length: m.outFeatures * c.rank, lrScale: c.loraPlusRatio },
    ];
  },
  footprint(modules, c) {
    return {
      params: modules.reduce((s, m) => s + c.rank * (m.inFeatures + m.outFeatures), 0),
      // Each module keeps h = A·x (r per token) for its backward.
      activationsPerToken: c.rank * modules.length,
    };
  },
  exportAdapter({ tensors, modules, targetModules, config: c, model, baseModel }) {
    const config = buildAdapterConfig({
      baseModel,
      rank: c.rank,
      alpha: c.alpha,
      dropout: c.dropout,
      targetModules,
      fanInFanOut: model.linearLayout === 'conv1d',
      rslora: c.rslora,
      model,
    });
    const get = (m: { peftPath: string }, which: 'A' | 'B') => {
      const v = tensors.get(loraSegmentName(m.peftPath, which));
      if (!v) throw new Error(`no trained lora_${which} for ${m.peftPath}`);
      return v;
    };
    return exportAdapter(
      modules.map((m) => ({ peftPath: m.peftPath, inFeatures: m.inFeatures, outFeatures: m.outFeatures, A: get(m, 'A'), B: get(m, 'B') })),
      config,
    );
  },
  proof: {
    reference: 'src/gpu/ref/lora.ref.ts',
    goldens: ['scripts/golden_train.py', 'tests/fixtures/golden/train_gpt2.json', 'tests/fixtures/golden/train_llama.json', 'tests/fixtures/golden/train_qwen3.json', 'src/train/golden.gpu.test.ts'],
    exportImport: ['src/train/peft.test.ts', 'src/train/peft-live.test.ts', 'src/train/continue.gpu.test.ts'],
    merge: 'src/train/merge.test.ts',
  },
};
