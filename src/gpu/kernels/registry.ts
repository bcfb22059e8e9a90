// Every kernel family's full set of variants, for the compile-everything test and pipeline warm-up.
import type { KernelSpec } from '../kernel.ts';
import { allMatmulSpecs } from './matmul.ts';
import { allAttentionSpecs } from './attention.ts';
import { allAttentionDecodeSpecs } from './attention_decode.ts';
import { allFlashAttentionSpecs } from './flash-attention.ts';
import { allRopeSpecs } from './rope.ts';
import { allMatmulNf4Specs } from './matmul_nf4.ts';
import { allAdamwSpecs } from './adamw.ts';
import { allLoraSpecs } from './lora.ts';
import { allXentSpecs } from './xent.ts';
import { allNormSpecs } from './norm.ts';
import { allActivationSpecs } from './activation.ts';
import { allEmbeddingSpecs } from './embedding.ts';
import { allElementwiseSpecs } from './elementwise.ts';
import { allColumnsSpecs } from './columns.ts';
import { allIa3Specs } from './ia3.ts';
import { allEmbeddingGradSpecs } from './embedding-grad.ts';
import { allDoraSpecs } from './dora.ts';
import { allAdaloraSpecs } from './adalora.ts';
import { allVirtualTokensSpecs } from './virtual-tokens.ts';
import { allPromptEncoderSpecs } from './prompt-encoder.ts';
import { allLstmSpecs } from './lstm.ts';

/** `hasSubgroups`: include the variants that need the 'subgroups' feature (the validating device must have it). */
export function allKernelSpecs(hasF16: boolean, hasSubgroups = true): KernelSpec[] {
  return [...allMatmulSpecs(hasF16), ...allLoraSpecs(hasF16), ...allXentSpecs(hasF16), ...allMatmulNf4Specs(), ...allAdamwSpecs(), ...allRopeSpecs(), ...allAttentionSpecs(), ...allAttentionDecodeSpecs(),
    ...allNormSpecs(hasF16), ...allActivationSpecs(hasF16), ...allEmbeddingSpecs(hasF16), ...allElementwiseSpecs(hasF16), ...allColumnsSpecs(), ...allIa3Specs(), ...allEmbeddingGradSpecs(), ...allDoraSpecs(hasF16), ...allAdaloraSpecs(), ...allVirtualTokensSpecs(), ...allPromptEncoderSpecs(), ...allLstmSpecs(),
    ...allFlashAttentionSpecs(false), ...(hasSubgroups ? allFlashAttentionSpecs(true) : [])];
}
