// Host side of rope.wgsl: the inverse-frequency table (θ base and rope_scaling, as transformers computes it), the
// kernel's specs and its dispatch. See the .wgsl header for the contract.
import source from '../../shaders/rope.wgsl?raw';
import { KernelError, packParams, type KernelSpec, type Recorder } from '../kernel.ts';
import { renderWgsl } from '../wgsl.ts';
import type { RopeShape } from '../ref/rope.ref.ts';
import { foldWorkgroups } from './elementwise.ts';

// ---------------------------------------------------------------------------------------------------------------
// inv_freq

/** config.json's `rope_scaling` (transformers ≤ 4) or `rope_parameters` (transformers 5) dict, as written there. */
export interface HfRopeScaling {
  rope_type?: string;
  /** The older spelling of rope_type. */
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
  partial_rotary_factor?: number;
  [key: string]: unknown;
}

export interface RopeConfig {
  /** head_dim (hidden_size / num_attention_heads when config.json has no head_dim). */
  headDim: number;
  /** rope_theta, the base wavelength. */
  theta: number;
  /** rope_scaling; null or absent, or rope_type "default", for plain RoPE. */
  scaling?: HfRopeScaling | null;
  /** max_position_embeddings; dynamic NTK scales against it. */
  maxPositionEmbeddings?: number;
}

export const SUPPORTED_ROPE_TYPES = ['default', 'linear', 'dynamic', 'llama3'] as const;

export class RopeConfigError extends Error {
  override name = 'RopeConfigError';
}

function field(scaling: HfRopeScaling, key: string, type: string): number {
  const v = scaling[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new RopeConfigError(`rope_scaling.${key} must be a number for rope_type "${type}", got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * RoPE's inverse frequencies, (headDim/2) f32: inv_freq[i] = 1/θ^(2i/d), then rope_scaling's adjustment exactly as
 * transformers' modeling_rope_utils does it, step by step in f32 as torch does (Math.fround after every operation),
 * so the table matches transformers' to the ulp (checked against src/gpu/ref/golden/rope_llama3.json; an ulp matters:
 * at position 70000 it moves the angle by ~1e-3):
 *   linear   inv_freq / factor (the same as positions / factor)
 *   dynamic  NTK: θ·(factor·L/max_pos − (factor − 1))^(d/(d−2)) with L = max(seqLen, max_pos); equal to plain RoPE
 *            until a sequence is longer than max_position_embeddings. seqLen is the longest sequence in the batch
 *            (max position + 1). NOTE: transformers keeps the largest table it has grown to until a sequence shorter
 *            than max_pos arrives; this function is stateless, so pass the same seqLen for the same behaviour.
 *   llama3   wavelengths below original_max/high_freq_factor kept, above original_max/low_freq_factor divided by
 *            factor, smoothly interpolated between (_compute_llama3_parameters).
 */
export function ropeInvFreq(config: RopeConfig, options: { seqLen?: number } = {}): Float32Array {
  const f = Math.fround;
  const d = config.headDim;
  if (!Number.isInteger(d) || d < 2 || d % 2 !== 0) throw new RopeConfigError(`head_dim must be a positive even integer, got ${d}`);
  if (!(config.theta > 0)) throw new RopeConfigError(`rope_theta must be positive, got ${config.theta}`);
  const scaling = config.scaling ?? {};
  const type = scaling.rope_type ?? scaling.type ?? 'default';
  if (!(SUPPORTED_ROPE_TYPES as readonly string[]).includes(type)) {
    throw new RopeConfigError(`rope_type "${type}" is not supported. Should be one of: ${SUPPORTED_ROPE_TYPES.join(', ')}`);
  }
  const partial = scaling.partial_rotary_factor ?? 1;
  if (partial !== 1) throw new RopeConfigError(`partial_rotary_factor ${partial} is not supported (only 1.0)`);

  // Python-float (double) arithmetic on the base, as transformers does before it meets the f32 tensor.
  let base = config.theta;
  if (type === 'dynamic') {
    const factor = field(scaling, 'factor', type);
    const maxPos = config.maxPositionEmbeddings;
    if (!maxPos) throw new RopeConfigError('rope_type "dynamic" needs max_position_embeddings');
    const seqLen = Math.max(options.seqLen ?? maxPos, maxPos);
    base = base * ((factor * seqLen) / maxPos - (factor - 1)) ** (d / (d - 2));
  }

  // 1.0 / (base ** (arange(0, d, 2).float() / d)), in f32.
  const inv = new Float32Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = f(1 / f(f(base) ** f((2 * i) / d)));

  if (type === 'linear') {
    const factor = f(field(scaling, 'factor', type));
    for (let i = 0; i < inv.length; i++) inv[i] = f(inv[i] / factor);
  } else if (type === 'llama3') {
    const factor = f(field(scaling, 'factor', type));
    const low = field(scaling, 'low_freq_factor', type);
    const high = field(scaling, 'high_freq_factor', type);
    const oldContext = field(scaling, 'original_max_position_embeddings', type);
    // Python scalars meeting f32 tensors are rounded to f32.
    const lowFreqWavelen = f(oldContext / low);
    const highFreqWavelen = f(oldContext / high);
    for (let i = 0; i < inv.length; i++) {
      // Python's `scalar / tensor` is torch's reciprocal(tensor) · scalar: two roundings.
      const wavelen = f(f(1 / inv[i]) * f(2 * Math.PI));
      if (wavelen < highFreqWavelen) continue; // high frequency: kept
      if (wavelen > lowFreqWavelen) {
        inv[i] = f(inv[i] / factor); // low frequency: positions interpolated by factor
      } else {
        const smooth = f(f(f(f(1 / wavelen) * f(oldContext)) - f(low)) / f(high - low));
        inv[i] = f(f(f(f(1 - smooth) * inv[i]) / factor) + f(smooth * inv[i]));
      }
    }
  }
  return inv;
}

// ---------------------------------------------------------------------------------------------------------------
// kernel

export interface RopeOptions {
  /** Read and overwrite Y; X is not read. */
  inPlace?: boolean;
  /** Rotate by −θ: the backward pass. */
  inverse?: boolean;
}

export function ropeSpec(o: RopeOptions = {}): KernelSpec {
  const flags = [o.inPlace && 'inplace', o.inverse && 'inverse'].filter(Boolean);
  return {
    label: `rope${flags.length ? '.' + flags.join('.') : ''}`,
    file: 'src/shaders/rope.wgsl',
    wgsl: renderWgsl('rope', source),
    entryPoint: 'main',
    constants: { IN_PLACE: o.inPlace ? 1 : 0, INVERSE: o.inverse ? 1 : 0 },
    bindings: ['read', 'read', 'read', 'read_write'],
    paramsBytes: 16,
  };
}

/** Every spec the runtime can instantiate, for the compile-everything test. */
export function allRopeSpecs(): KernelSpec[] {
  const specs: KernelSpec[] = [];
  for (const inPlace of [false, true]) for (const inverse of [false, true]) specs.push(ropeSpec({ inPlace, inverse }));
  return specs;
}

export interface RopeBuffers {
  /** (T, H, D) f32 input; omit to rotate `y` in place. */
  x?: GPUBuffer;
  /** (T, H, D) f32 output (in place: input and output). */
  y: GPUBuffer;
  /** (T) u32 positions. */
  positions: GPUBuffer;
  /** (D/2) f32 from ropeInvFreq. */
  invFreq: GPUBuffer;
}

const WORKGROUP = 64;

/** Records y = RoPE(x) (or its inverse, the backward pass) into `rec`; in place when `buffers.x` is omitted. */
export function recordRope(rec: Recorder, shape: RopeShape, buffers: RopeBuffers, options: { inverse?: boolean } = {}): void {
  const { T, H, D } = shape;
  if (!Number.isInteger(D) || D < 2 || D % 2 !== 0) throw new KernelError(`rope: head_dim must be even, got ${D}`);
  const inPlace = !buffers.x;
  const spec = ropeSpec({ inPlace, inverse: options.inverse });
  const params = packParams([
    ['u32', T],
    ['u32', H],
    ['u32', D],
    ['u32', 0],
  ]);
  const groups = Math.ceil((T * H * (D / 2)) / WORKGROUP);
  // Per pair: an angle, its sine and cosine, four multiplies and two adds; x read and y written once.
  const pairs = T * H * (D / 2);
  const cost = { flops: pairs * 9, bytes: pairs * 16 + T * 4 + (D / 2) * 4 };
  rec.dispatch(spec, [buffers.x ?? rec.unused, buffers.positions, buffers.invFreq, buffers.y], params, foldWorkgroups(groups), cost);
}
