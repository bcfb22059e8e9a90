// The curated models the studio offers, with what a user needs to choose before downloading: parameters, licence,
// download size and the architecture numbers the memory estimate needs (copied from each repo's config.json).
import type { ModelType } from './config.ts';
import type { ModelDims } from './memory.ts';

export interface CatalogueEntry {
  repo: string;
  title: string;
  params: number;
  licence: string;
  /** Approximate bytes of the published safetensors weights (bf16; GPT-2 f32), for the download estimate. */
  downloadBytes: number;
  gated: boolean;
  dims: ModelDims;
  /** config.json's model_type: which PEFT defaults apply (LoRA's targets, for one). */
  modelType: ModelType;
}

const llamaLike = (d: Omit<ModelDims, 'gatedMlp' | 'linearBias' | 'normBias'>, linearBias: 'qkv' | 'none' = 'none'): ModelDims => ({
  ...d,
  gatedMlp: true,
  linearBias,
  normBias: false,
});

export const CATALOGUE: readonly CatalogueEntry[] = [
  {
    repo: 'openai-community/gpt2',
    title: 'GPT-2 (124M)',
    params: 124_439_808,
    licence: 'MIT',
    downloadBytes: 548_105_171,
    gated: false,
    dims: {
      vocabSize: 50257, hiddenSize: 768, numLayers: 12, numHeads: 12, numKvHeads: 12, headDim: 64,
      intermediateSize: 3072, tieWordEmbeddings: true, learnedPositions: 1024, gatedMlp: false, linearBias: 'all', normBias: true,
    },
    modelType: 'gpt2',
  },
  {
    repo: 'HuggingFaceTB/SmolLM2-135M-Instruct',
    title: 'SmolLM2 135M Instruct',
    params: 134_515_008,
    licence: 'Apache-2.0',
    downloadBytes: 269_060_552,
    gated: false,
    dims: llamaLike({ vocabSize: 49152, hiddenSize: 576, numLayers: 30, numHeads: 9, numKvHeads: 3, headDim: 64, intermediateSize: 1536, tieWordEmbeddings: true }),
    modelType: 'llama',
  },
  {
    repo: 'HuggingFaceTB/SmolLM2-360M-Instruct',
    title: 'SmolLM2 360M Instruct',
    params: 361_821_120,
    licence: 'Apache-2.0',
    downloadBytes: 723_674_912,
    gated: false,
    dims: llamaLike({ vocabSize: 49152, hiddenSize: 960, numLayers: 32, numHeads: 15, numKvHeads: 5, headDim: 64, intermediateSize: 2560, tieWordEmbeddings: true }),
    modelType: 'llama',
  },
  {
    repo: 'Qwen/Qwen2.5-0.5B-Instruct',
    title: 'Qwen2.5 0.5B Instruct',
    params: 494_032_768,
    licence: 'Apache-2.0',
    downloadBytes: 988_097_824,
    gated: false,
    dims: llamaLike({ vocabSize: 151936, hiddenSize: 896, numLayers: 24, numHeads: 14, numKvHeads: 2, headDim: 64, intermediateSize: 4864, tieWordEmbeddings: true }, 'qkv'),
    modelType: 'qwen2',
  },
  {
    repo: 'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    title: 'TinyLlama 1.1B Chat',
    params: 1_100_048_384,
    licence: 'Apache-2.0',
    downloadBytes: 2_200_119_864,
    gated: false,
    dims: llamaLike({ vocabSize: 32000, hiddenSize: 2048, numLayers: 22, numHeads: 32, numKvHeads: 4, headDim: 64, intermediateSize: 5632, tieWordEmbeddings: false }),
    modelType: 'llama',
  },
  {
    repo: 'meta-llama/Llama-3.2-1B-Instruct',
    title: 'Llama 3.2 1B Instruct (gated: needs a token)',
    params: 1_235_814_400,
    licence: 'Llama 3.2 Community License',
    downloadBytes: 2_471_645_608,
    gated: true,
    dims: llamaLike({ vocabSize: 128256, hiddenSize: 2048, numLayers: 16, numHeads: 32, numKvHeads: 8, headDim: 64, intermediateSize: 8192, tieWordEmbeddings: true }),
    modelType: 'llama',
  },
];
