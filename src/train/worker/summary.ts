// Pure helpers that turn what the worker loaded into the summaries the UI shows (protocol.ts ModelSummary and
// DatasetSummary). No GPU here, so they are unit-tested in Node.
import { IGNORE_INDEX, lengthHistogram, type DatasetRow, type TokenizedDataset } from '../../data/index.ts';
import type { ModelConfig } from '../../model/config.ts';
import type { ModelDims } from '../../model/memory.ts';
import { parameterCount } from '../../model/memory.ts';
import type { HfTokenizer } from '../../model/tokenizer.ts';
import { linearModules, PEFT_DEFAULT_TARGET_MODULES } from '../../model/weights.ts';
import { DEFAULT_CONFIG } from '../config.ts';
import { METHODS } from '../methods/registry.ts';
import type { DatasetSummary, ModelSummary } from '../protocol.ts';

/** How many rejected lines a summary carries (the report counts them all). */
export const SUMMARY_ERRORS = 50;
/** How many rows the preview shows. */
export const PREVIEW_SAMPLES = 3;
export const HISTOGRAM_BUCKETS = 20;

/** The architecture numbers the memory estimate and the parameter count need, from the typed config. */
export function dimsFromConfig(c: ModelConfig): ModelDims {
  return {
    vocabSize: c.vocabSize,
    hiddenSize: c.hiddenSize,
    numLayers: c.numLayers,
    numHeads: c.numHeads,
    numKvHeads: c.numKvHeads,
    headDim: c.headDim,
    intermediateSize: c.intermediateSize,
    tieWordEmbeddings: c.tieWordEmbeddings,
    learnedPositions: c.positions.kind === 'learned' ? c.maxPositions : undefined,
    gatedMlp: c.mlp === 'gated',
    // memory.ts knows three bias patterns; an output-projection or MLP bias only adds a few vectors.
    linearBias: c.family === 'gpt2' ? 'all' : c.qkvBias ? 'qkv' : 'none',
    normBias: c.norm.kind === 'layernorm',
  };
}

/** What full fine-tuning trains of this model: the method's tensors over every linear layer plus its base tensors
 *  (embeddings, positions, norms, an untied head; a tied head once). */
export function countFullParameters(config: ModelConfig): number {
  const full = METHODS.full;
  const count = (ts: readonly { length: number }[]) => ts.reduce((s, t) => s + t.length, 0);
  const linear = linearModules(config).reduce((s, m) => s + count(full.tensors(m, DEFAULT_CONFIG)), 0);
  return linear + count(full.baseTensors?.(config) ?? []);
}

export function modelSummary(
  name: string,
  config: ModelConfig,
  o: { dtype: 'f32' | 'f16'; hasChatTemplate: boolean; weightBytes: number },
): ModelSummary {
  return {
    name,
    modelType: config.modelType,
    parameters: parameterCount(dimsFromConfig(config)),
    layers: config.numLayers,
    hidden: config.hiddenSize,
    vocab: config.vocabSize,
    maxPositions: config.maxPositions,
    dtype: o.dtype,
    hasChatTemplate: o.hasChatTemplate,
    defaultTargets: PEFT_DEFAULT_TARGET_MODULES[config.modelType],
    linearModules: [...new Set(linearModules(config).map((m) => m.targetName))],
    weightBytes: o.weightBytes,
    dims: dimsFromConfig(config),
    fullParameters: countFullParameters(config),
  };
}

/**
 * Each token of a row as text, with whether it is trained. Position t is trained when labels[t] is not −100 and
 * t ≥ 1 (the loss contract: logits at t−1 predict it). Texts come from a streaming decode, so a character split
 * over several byte-level tokens appears once, on the token that completes it, and the texts join to the row.
 */
export function tokenPreview(row: DatasetRow, tokenizer: HfTokenizer | null): { text: string; trained: boolean }[] {
  const ids = Array.from(row.input_ids);
  const decoder = tokenizer?.streamingDecoder();
  const tokens = ids.map((id, t) => {
    const text = decoder ? decoder.push(id) : `${id} `;
    return { text, trained: t >= 1 && row.labels[t] !== IGNORE_INDEX };
  });
  if (decoder && tokens.length > 0) tokens[tokens.length - 1].text += decoder.flush();
  return tokens;
}

export function datasetSummary(data: TokenizedDataset, tokenizer: HfTokenizer | null): DatasetSummary {
  const { report, rows } = data;
  const histogram = lengthHistogram(
    rows.map((r) => r.input_ids.length),
    { buckets: HISTOGRAM_BUCKETS },
  );
  return {
    fileName: report.fileName,
    format: report.format,
    rows: report.rows,
    skipped: report.skipped,
    truncated: report.truncated,
    trainedTokens: report.trainedTokens,
    totalTokens: report.totalTokens,
    errors: report.errors.slice(0, SUMMARY_ERRORS),
    histogram: { edges: histogram.edges, counts: histogram.counts },
    samples: rows.slice(0, PREVIEW_SAMPLES).map((r) => ({ tokens: tokenPreview(r, tokenizer) })),
  };
}
