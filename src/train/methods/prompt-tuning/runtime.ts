// Prompt tuning's GPU side: the [n, hidden] table in the flat trainable buffers, attached as the model's virtual
// tokens (GpuModel.virtualTokens: added into the embeddings at every virtual position, its gradient summed over them).
// RANDOM init draws N(0, 1) from the run's seed (PEFT's nn.Embedding default; the golden runs pass PEFT's own draw);
// TEXT init gathers the word embeddings of the text's ids on the GPU at the first forward (the table may be f16 or
// split by rows; the embedding kernel reads it either way), unless the values were given or restored.
import { uploadBuffer } from '../../../gpu/buffers.ts';
import { planAdamwLayout } from '../../../gpu/kernels/adamw.ts';
import { recordEmbedding } from '../../../gpu/kernels/embedding.ts';
import { Rng } from '../../../data/rng.ts';
import { promptTable, type VirtualTokens } from '../../../model/runtime/virtual-tokens.ts';
import type { TrainConfig } from '../../config.ts';
import { allocateTrainable, releaseTrainable, segmentBinding } from '../../trainable.ts';
import type { AttachedMethod, MethodRuntime } from '../method.ts';
import { PROMPT_EMBEDDINGS, promptTuningMethod } from './config.ts';

/** n·C values from N(0, 1) (Box–Muller over the run's seeded generator). */
export function standardNormal(count: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = 1 - rng.next(); // (0, 1]
    const r = Math.sqrt(-2 * Math.log(u));
    const a = 2 * Math.PI * rng.next();
    out[i] = r * Math.cos(a);
    if (i + 1 < count) out[i + 1] = r * Math.sin(a);
  }
  return out;
}

/** PEFT's TEXT init ids: the text's ids (special tokens included) cycled or cut to n. */
export function textInitIds(ids: readonly number[], n: number): number[] {
  if (ids.length === 0) throw new Error('prompt tuning TEXT init: the text has no tokens');
  return Array.from({ length: n }, (_, j) => ids[j % ids.length]);
}

export const promptTuningRuntime: MethodRuntime = {
  id: 'prompt-tuning',
  attach(e, model, c: TrainConfig, modules, init) {
    if (modules.length) throw new Error('prompt tuning wraps no layer; got target modules');
    if (model.virtualTokens) throw new Error('the model already has virtual tokens attached');
    const cfg = model.config;
    const tensors = promptTuningMethod.ownTensors!(cfg, c);
    const layout = planAdamwLayout(tensors);
    const seg = layout.segments[0];
    const given = init.initial?.get(PROMPT_EMBEDDINGS);
    for (const [name, values] of init.initial ?? []) {
      if (name !== PROMPT_EMBEDDINGS) throw new Error(`initial value given for ${name}, which is not a prompt-tuning tensor (${PROMPT_EMBEDDINGS})`);
      if (values.length !== seg.length) throw new Error(`initial ${name} has ${values.length} values, expected ${c.numVirtualTokens} × ${cfg.hiddenSize}`);
    }
    let textIds: Uint32Array | null = null;
    if (!given && c.promptInit === 'text') {
      if (!init.encode) throw new Error('prompt tuning TEXT init needs the tokenizer');
      textIds = Uint32Array.from(textInitIds(init.encode(c.promptInitText), c.numVirtualTokens));
      const bad = textIds.find((id) => id >= cfg.vocabSize);
      if (bad !== undefined) throw new Error(`prompt tuning TEXT init: token id ${bad} is outside the model's vocabulary of ${cfg.vocabSize}`);
    }
    const host = new Float32Array(layout.totalLength);
    host.set(given ?? (textIds ? new Float32Array(seg.length) : standardNormal(seg.length, init.seed)), seg.offset);
    const buffers = allocateTrainable(e, layout, host, 'prompt');
    const P = segmentBinding(buffers.params, seg.offset, seg.length);
    const table = promptTable(cfg, c.numVirtualTokens, P, segmentBinding(buffers.grads, seg.offset, seg.length));
    let pendingText = textIds ? uploadBuffer(e.buffers, e.device, textIds, 'prompt.textIds') : null;
    const release = () => {
      if (pendingText) e.buffers.release(pendingText);
      pendingText = null;
    };
    const hook: VirtualTokens = {
      ...table,
      recordForward(rec, T, tokens, x) {
        if (pendingText) {
          // TEXT init, once, ahead of the first forward that reads the table.
          const ids = pendingText;
          recordEmbedding(rec, { rows: c.numVirtualTokens, C: cfg.hiddenSize, vocab: cfg.vocabSize, maxPos: 0 }, { ids, wte: model.embed, out: P }, { elem: model.dtype });
          pendingText = null;
          rec.afterSubmit(() => e.buffers.release(ids));
        }
        table.recordForward(rec, T, tokens, x);
      },
    };
    model.virtualTokens = hook;
    const attached: AttachedMethod = {
      ...buffers,
      trainableParams: seg.length,
      setDropoutSeeds: () => {},
      suspendDropout: () => () => {},
      paramsWritten: release,
      detach() {
        release();
        if (model.virtualTokens === hook) delete model.virtualTokens;
        releaseTrainable(e, buffers);
      },
    };
    return attached;
  },
};
