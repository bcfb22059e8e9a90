// ropeInvFreq and ropeRef against transformers' own numbers (src/gpu/ref/golden/rope_llama3.json, written by
// scripts/golden_rope.py), and the config errors.
import { describe, expect, it } from 'vitest';
import golden from '../ref/golden/rope_llama3.json';
import { ropeRef } from '../ref/rope.ref.ts';
import { mismatches } from '../ref/testing.ts';
import { ropeInvFreq, type RopeConfig } from './rope.ts';

describe('ropeInvFreq matches transformers', () => {
  // Bit-exact: ropeInvFreq repeats torch's f32 steps (an ulp of inv_freq moves the angle ~1e-3 at position 70000).
  const TOL = { abs: 0, rel: 0 };
  it.each(golden.invFreq.map((c) => [c.name, c] as const))('%s', (_, c) => {
    const got = ropeInvFreq(c.config as RopeConfig, { seqLen: c.seqLen ?? undefined });
    expect(got.length).toBe(c.config.headDim / 2);
    expect(mismatches(got, c.invFreq, TOL)).toEqual([]);
  });

  it('covers every llama3 band: some frequencies kept, some divided by factor, some smoothed', () => {
    const c = golden.invFreq.find((x) => x.name === 'llama3-small')!;
    const plain = ropeInvFreq({ ...c.config, scaling: null });
    const ratios = c.invFreq.map((v, i) => plain[i] / v);
    expect(ratios.some((r) => Math.abs(r - 1) < 1e-6)).toBe(true);
    expect(ratios.some((r) => Math.abs(r - 8) < 1e-5)).toBe(true);
    expect(ratios.some((r) => r > 1.01 && r < 7.99)).toBe(true);
  });

  it('dynamic NTK equals plain RoPE up to max_position_embeddings and lowers frequencies beyond', () => {
    const config: RopeConfig = { headDim: 16, theta: 10000, maxPositionEmbeddings: 128, scaling: { rope_type: 'dynamic', factor: 2 } };
    const plain = ropeInvFreq({ ...config, scaling: undefined });
    expect(Array.from(ropeInvFreq(config, { seqLen: 128 }))).toEqual(Array.from(plain));
    const long = ropeInvFreq(config, { seqLen: 300 });
    expect(long[0]).toBe(1);
    for (let i = 1; i < 8; i++) expect(long[i]).toBeLessThan(plain[i]);
  });
});

describe('ropeRef matches transformers apply_rotary_pos_emb', () => {
  it('at positions 0 … 70000 (the angle rounded to f32, as transformers does)', () => {
    const a = golden.apply;
    const invFreq = ropeInvFreq(a.config as RopeConfig);
    const got = ropeRef({ T: a.T, H: a.H, D: a.config.headDim, x: a.x, positions: a.positions, invFreq });
    // transformers rounds cos/sin and each product to f32; values are in [-1, 1].
    expect(mismatches(got, a.y, { abs: 1e-6, rel: 1e-6 })).toEqual([]);
  });
});

describe('ropeInvFreq rejects what it cannot do', () => {
  const base = { headDim: 16, theta: 10000, maxPositionEmbeddings: 128 };
  it('names an unsupported rope_type and the supported ones', () => {
    expect(() => ropeInvFreq({ ...base, scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(
      /rope_type "yarn" is not supported.*default, linear, dynamic, llama3/,
    );
    expect(() => ropeInvFreq({ ...base, scaling: { type: 'longrope' } })).toThrow(/"longrope"/);
  });
  it('names a missing field', () => {
    expect(() => ropeInvFreq({ ...base, scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 } })).toThrow(
      /original_max_position_embeddings/,
    );
    expect(() => ropeInvFreq({ ...base, scaling: { rope_type: 'dynamic', factor: 2 }, maxPositionEmbeddings: undefined })).toThrow(
      /max_position_embeddings/,
    );
  });
  it('rejects odd head_dim and partial rotary', () => {
    expect(() => ropeInvFreq({ ...base, headDim: 15 })).toThrow(/even/);
    expect(() => ropeInvFreq({ ...base, scaling: { partial_rotary_factor: 0.5 } })).toThrow(/partial_rotary_factor/);
  });
  it('accepts the old "type" spelling', () => {
    const old = ropeInvFreq({ ...base, scaling: { type: 'linear', factor: 4 } });
    const plain = ropeInvFreq(base);
    expect(old[3]).toBeCloseTo(plain[3] / 4, 12);
  });
});
