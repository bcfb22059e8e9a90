// Virtual tokens: trained input embeddings a prompt-learning method (prompt tuning, P-tuning) puts ahead of every row,
// as PEFT's PeftModelForCausalLM does: inputs_embeds = cat(prompt, embed(input_ids)), labels −100 at the virtual
// positions, position ids counted from the first virtual token (the real tokens start at position n), one attention
// span with the row. A virtual token travels through the batch as an id past the vocabulary (vocab + j: row j of
// the prompt), so packing, positions, segments and the KV cache treat it as any token: with packing every packed row
// (segment) carries its own n virtual tokens, exactly what PEFT sees one row at a time. The embedding gather writes
// such a position as zeros (+ its learned position vector); the method's hook adds the prompt row (virtual_tokens.wgsl)
// and, in training, takes the gradient of the embedding output at those positions back into its tensors.
import type { BufferRef, Recorder } from '../../gpu/kernel.ts';
import { recordVirtualTokensBackward, recordVirtualTokensForward } from '../../gpu/kernels/virtual-tokens.ts';
import { IGNORE_INDEX, type TokenizedRow } from '../../data/encode.ts';
import type { ModelConfig } from '../config.ts';
import type { GpuModel } from './gpu-model.ts';

/** What a prompt-learning method attaches to the model (GpuModel.virtualTokens). */
export interface VirtualTokens {
  /** n: the virtual tokens ahead of every row. */
  count: number;
  /** Records x (T, C) += the prompt's rows at the virtual positions of `tokens` (after the embedding gather). */
  recordForward(rec: Recorder, T: number, tokens: GPUBuffer, x: GPUBuffer): void;
  /** Records the gradients of the method's tensors from dx (T, C), the gradient of the embedding output (training
   *  only; absent for an adapter attached for inference). `accumulate` adds into them (later micro-batches). */
  recordBackward?(rec: Recorder, T: number, tokens: GPUBuffer, dx: GPUBuffer, accumulate: boolean): void;
}

/** The hooks for a prompt P (n, C) f32 used as it is (prompt tuning; P-tuning's encoder output), with its gradient
 *  dP summed over every virtual position of the batch when given. */
export function promptTable(cfg: Pick<ModelConfig, 'vocabSize' | 'hiddenSize'>, count: number, P: BufferRef, dP?: BufferRef): VirtualTokens {
  const shape = (T: number) => ({ rows: T, C: cfg.hiddenSize, base: cfg.vocabSize, n: count });
  return {
    count,
    recordForward: (rec, T, tokens, x) => recordVirtualTokensForward(rec, shape(T), { ids: tokens, P, x }),
    recordBackward: dP ? (rec, T, tokens, dx, accumulate) => recordVirtualTokensBackward(rec, shape(T), { ids: tokens, dx, dP }, accumulate) : undefined,
  };
}

/** The ids of the n virtual tokens: vocab … vocab + n − 1. */
export function virtualTokenIds(vocab: number, count: number): number[] {
  return Array.from({ length: count }, (_, j) => vocab + j);
}

/** Each row with the virtual tokens ahead of it, their labels ignored: the first real token is then trained as PEFT
 *  trains it, predicted from the last virtual one. */
export function withVirtualTokens(rows: readonly TokenizedRow[], vocab: number, count: number): TokenizedRow[] {
  const ids = virtualTokenIds(vocab, count);
  return rows.map((r) => {
    const input_ids = new Int32Array(count + r.input_ids.length);
    input_ids.set(ids);
    input_ids.set(r.input_ids, count);
    const labels = new Int32Array(count + r.labels.length).fill(IGNORE_INDEX, 0, count);
    labels.set(r.labels, count);
    return { input_ids, labels };
  });
}

/** The rows as the model with its attached virtual tokens (if any) takes them: training, evaluation. */
export function withModelVirtualTokens(model: Pick<GpuModel, 'config' | 'virtualTokens'>, rows: readonly TokenizedRow[]): readonly TokenizedRow[] {
  return model.virtualTokens ? withVirtualTokens(rows, model.config.vocabSize, model.virtualTokens.count) : rows;
}
