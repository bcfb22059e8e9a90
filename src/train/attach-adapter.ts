// An imported PEFT adapter (peft.ts importAdapter) put on the loaded model's linear layers for inference — eval, the
// CLI's generate, the studio's Playground and Compare — and taken off again. Browser-safe (no Node imports), so the
// engine worker and the CLI share it.
//
// The model runs with exactly the given adapter: every linear it names gets its A [r, in] and B [out, r] (dropout 0),
// (with DoRA's magnitude when use_dora), or its IA³ vector, or its bottleneck adapter (D, b_d, U, b_u), every other
// linear none; a prompt adapter's table becomes the model's virtual tokens (GpuModel.virtualTokens), a prefix
// adapter's the model's attention prefix (GpuModel.attentionPrefix). The undo puts back
// what each linear held before (nothing, for a freshly loaded model), so
// the base model is restored exactly and the GPU buffers uploaded here are released.
import { uploadBuffer } from '../gpu/buffers.ts';
import type { Engine } from '../gpu/engine.ts';
import { updateBackwardNeedsOnes, type GpuModel } from '../model/runtime/gpu-model.ts';
import { STORAGE_USAGE } from '../gpu/buffers.ts';
import { doraScalesStride } from '../gpu/kernels/dora.ts';
import type { BottleneckAdapter } from '../model/runtime/bottleneck.ts';
import type { DoraWeights, Ia3Vector, LoraPair } from '../model/runtime/linear.ts';
import { prefixLayers, type PrefixLayers } from '../model/runtime/attention-prefix.ts';
import { promptTable } from '../model/runtime/virtual-tokens.ts';
import type { AnyAdapter } from './peft.ts';

/**
 * Runs the model with `adapter` (null: the base model, no LoRA anywhere) until the returned undo is called. The
 * gradient buffers the LoRA pair type carries are allocated (zeros) but never written by a forward.
 */
export function attachAdapter(e: Engine, model: GpuModel, adapter: AnyAdapter | null): () => void {
  const byPath = new Map(model.modules.map((m) => [m.module.peftPath, m.linear]));
  for (const m of adapter?.modules ?? []) {
    if (!byPath.has(m.peftPath)) throw new Error(`adapter module ${m.peftPath} is not a linear layer of the loaded model`);
  }
  const previous = new Map<string, { lora?: LoraPair; ia3?: Ia3Vector; dora?: DoraWeights; bottleneck?: BottleneckAdapter }>(
    model.modules.map((m) => [m.module.peftPath, { lora: m.linear.lora, ia3: m.linear.ia3, dora: m.linear.dora, bottleneck: m.linear.bottleneck }]),
  );
  const buffers: GPUBuffer[] = [];
  const upload = (data: Float32Array, label: string) => {
    const b = uploadBuffer(e.buffers, e.device, data, label);
    buffers.push(b);
    return b;
  };
  const previousVirtual = model.virtualTokens;
  const previousPrefix = model.attentionPrefix;
  let prefix: PrefixLayers | undefined;
  for (const { linear } of model.modules) {
    delete linear.lora;
    delete linear.ia3;
    delete linear.dora;
    delete linear.bottleneck;
  }
  delete model.virtualTokens;
  delete model.attentionPrefix;
  try {
    if (adapter?.kind === 'prompt' && adapter.peftType === 'PREFIX_TUNING') {
      // Prefix tuning: the saved (n, L·2·Hkv·D) table as every layer's key/value prefix (inference only).
      prefix = prefixLayers(e, model.config, adapter.numVirtualTokens, upload(adapter.embeddings, 'prefix.table'));
      model.attentionPrefix = prefix;
    } else if (adapter?.kind === 'prompt') {
      // Prompt tuning / P-tuning: the saved table as the model's virtual tokens (no gradient: inference only).
      model.virtualTokens = promptTable(model.config, adapter.numVirtualTokens, upload(adapter.embeddings, 'prompt_embeddings'));
    } else if (adapter?.kind === 'bottleneck') {
      for (const m of adapter.modules) {
        const up = (data: Float32Array, part: string) => upload(data, `${m.peftPath}.${part}`);
        const zero = (n: number, part: string) => upload(new Float32Array(n), `${m.peftPath}.${part}.grad`);
        byPath.get(m.peftPath)!.bottleneck = {
          size: m.size,
          activation: adapter.activation,
          D: up(m.D, 'adapter_down.weight'),
          bd: up(m.bd, 'adapter_down.bias'),
          U: up(m.U, 'adapter_up.weight'),
          bu: up(m.bu, 'adapter_up.bias'),
          dD: zero(m.D.length, 'adapter_down.weight'),
          dbd: zero(m.bd.length, 'adapter_down.bias'),
          dU: zero(m.U.length, 'adapter_up.weight'),
          dbu: zero(m.bu.length, 'adapter_up.bias'),
        };
      }
    } else if (adapter?.kind === 'ia3') {
      for (const m of adapter.modules) {
        byPath.get(m.peftPath)!.ia3 = {
          feedforward: m.feedforward,
          l: upload(m.l, `${m.peftPath}.ia3_l`),
          dl: upload(new Float32Array(m.l.length), `${m.peftPath}.ia3_dl`),
        };
      }
    } else if (adapter?.dora) {
      // DoRA: LoRA's pair plus the magnitude; the norm's scales are rewritten by every forward.
      for (const m of adapter.modules) {
        if (!m.magnitude) throw new Error(`${m.peftPath}: a DoRA adapter without its lora_magnitude_vector`);
        const scales = e.buffers.acquire(3 * doraScalesStride(m.outFeatures) * 4, STORAGE_USAGE, `${m.peftPath}.dora.scales`);
        buffers.push(scales);
        byPath.get(m.peftPath)!.dora = {
          rank: adapter.rank,
          scale: adapter.scale,
          dropout: 0,
          A: upload(m.A, `${m.peftPath}.lora_A`),
          B: upload(m.B, `${m.peftPath}.lora_B`),
          dA: upload(new Float32Array(m.A.length), `${m.peftPath}.lora_dA`),
          dB: upload(new Float32Array(m.B.length), `${m.peftPath}.lora_dB`),
          m: { buffer: upload(m.magnitude, `${m.peftPath}.lora_magnitude_vector`) },
          dm: upload(new Float32Array(m.magnitude.length), `${m.peftPath}.lora_dm`),
          scales,
          seed: 0,
          frozen: true,
        };
      }
    } else {
      for (const m of adapter?.modules ?? []) {
        byPath.get(m.peftPath)!.lora = {
          rank: adapter!.rank,
          scale: adapter!.scale,
          dropout: 0,
          A: upload(m.A, `${m.peftPath}.lora_A`),
          B: upload(m.B, `${m.peftPath}.lora_B`),
          dA: upload(new Float32Array(m.A.length), `${m.peftPath}.lora_dA`),
          dB: upload(new Float32Array(m.B.length), `${m.peftPath}.lora_dB`),
          seed: 0,
        };
      }
    }
  } catch (err) {
    restore();
    throw err;
  }
  function restore(): void {
    if (previousVirtual) model.virtualTokens = previousVirtual;
    else delete model.virtualTokens;
    if (previousPrefix) model.attentionPrefix = previousPrefix;
    else delete model.attentionPrefix;
    prefix?.release();
    prefix = undefined;
    for (const { module, linear } of model.modules) {
      const before = previous.get(module.peftPath);
      if (before?.lora) linear.lora = before.lora;
      else delete linear.lora;
      if (before?.ia3) linear.ia3 = before.ia3;
      else delete linear.ia3;
      if (before?.dora) linear.dora = before.dora;
      else delete linear.dora;
      if (before?.bottleneck) linear.bottleneck = before.bottleneck;
      else delete linear.bottleneck;
    }
    updateBackwardNeedsOnes(model);
    for (const b of buffers.splice(0)) e.buffers.release(b);
  }
  updateBackwardNeedsOnes(model);
  return restore;
}
