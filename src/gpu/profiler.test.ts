// The profiler's arithmetic on synthetic dispatches: families, layers, ops, shares, rates, idle gaps, CPU marks.
import { describe, expect, it } from 'vitest';
import type { GpuCounters } from './counters.ts';
import { CpuPhases, formatProfile, kernelFamily, scopeParts, summarizeProfile, type CpuProfile, type ProfiledDispatch } from './profiler.ts';

const counters: GpuCounters = { dispatches: 4, passes: 4, submits: 1, buffersCreated: 0, bindGroupsCreated: 2, readbacks: 1 };
const cpu: CpuProfile = { total_ms: 10, other_ms: 1, gc_ms: 0, gc_measured: false, record_ms: 5, wait_ms: 4 };

/** Four dispatches: two matmuls in two blocks, a LoRA pass, an optimizer update, with gaps between them. */
const dispatches: ProfiledDispatch[] = [
  { kernel: 'matmul.blocked4.f32xf32.tB', scope: 'b0/fwd/attn.qkv', cost: { flops: 2e9, bytes: 1e8 }, beginNs: 0, endNs: 1_000_000 },
  { kernel: 'matmul.blocked4.f32xf32.tB.acc', scope: 'b1/fwd/attn.qkv', cost: { flops: 2e9, bytes: 1e8 }, beginNs: 1_100_000, endNs: 2_100_000 },
  { kernel: 'lora.tiled.f16.tW.tR', scope: 'b1/bwd/mlp.down', cost: { flops: 1e9 }, beginNs: 2_100_000, endNs: 4_100_000 },
  { kernel: 'adamw.update', scope: 'optimizer', cost: { bytes: 4e6 }, beginNs: 4_600_000, endNs: 5_000_000 },
];

describe('kernelFamily', () => {
  it('keeps the first two label components, except storage types and norm kinds', () => {
    expect(kernelFamily('matmul.blocked4.f32xf16.tB.bias')).toBe('matmul.blocked4');
    expect(kernelFamily('matmul_nf4.blocked.tB.dq')).toBe('matmul_nf4.blocked');
    expect(kernelFamily('lora.tiled.f32.tW.tR')).toBe('lora.tiled');
    expect(kernelFamily('lora.gradA.acc')).toBe('lora.gradA');
    expect(kernelFamily('attention.backward_dkv')).toBe('attention.backward_dkv');
    expect(kernelFamily('xent.logitsTiled.f16')).toBe('xent.logitsTiled');
    expect(kernelFamily('elementwise.to_half.f16')).toBe('elementwise.to_half');
    expect(kernelFamily('norm.rmsnorm.backward_dx.acc')).toBe('norm.backward_dx');
    expect(kernelFamily('embedding.f16.pos')).toBe('embedding');
    expect(kernelFamily('rope.inplace.inverse')).toBe('rope');
    expect(kernelFamily('adamw.update')).toBe('adamw.update');
  });
});

describe('scopeParts', () => {
  it('the layer is the first component; the op drops a block component', () => {
    expect(scopeParts('b3/bwd/mlp.down')).toEqual({ layer: 'b3', op: 'bwd/mlp.down' });
    expect(scopeParts('h.11/fwd/attn')).toEqual({ layer: 'h.11', op: 'fwd/attn' });
    expect(scopeParts('head/xent')).toEqual({ layer: 'head', op: 'head/xent' });
    expect(scopeParts('optimizer')).toEqual({ layer: 'optimizer', op: 'optimizer' });
    expect(scopeParts('')).toEqual({ layer: '(unscoped)', op: '(unscoped)' });
  });
});

describe('summarizeProfile', () => {
  const p = summarizeProfile(7, dispatches, counters, cpu, true);

  it('copies the counters under the JSON names of issue 10', () => {
    expect(p).toMatchObject({ step: 7, dispatches: 4, passes: 4, submits: 1, buffers_created: 0, bind_groups_created: 2, readbacks: 1, untimed: 0 });
  });

  it('GPU time is the sum of dispatch times; span first begin → last end; idle the gaps between them', () => {
    expect(p.gpu_ms).toBeCloseTo(4.4, 9);
    expect(p.span_ms).toBeCloseTo(5, 9);
    expect(p.idle_ms).toBeCloseTo(0.6, 9);
  });

  it('by kernel family: calls, ms, share, GFLOP/s and GB/s, slowest first', () => {
    expect(p.kernels.map((k) => k.name)).toEqual(['matmul.blocked4', 'lora.tiled', 'adamw.update']);
    const mm = p.kernels[0];
    expect(mm).toMatchObject({ calls: 2, flops: 4e9, bytes: 2e8 });
    expect(mm.ms).toBeCloseTo(2, 9);
    expect(mm.share).toBeCloseTo(2 / 4.4, 3);
    expect(mm.gflops).toBeCloseTo(2000, 6); // 4e9 FLOP in 2 ms
    expect(mm.gbps).toBeCloseTo(100, 6); // 2e8 B in 2 ms
    expect(p.kernels[1].gbps).toBeNull(); // no byte count
    expect(p.kernels[2].gflops).toBeNull(); // no FLOP count
    expect(p.kernels[2].gbps).toBeCloseTo(10, 6);
    const shares = p.kernels.reduce((s, k) => s + k.share!, 0);
    expect(shares).toBeCloseTo(1, 3);
  });

  it('by layer in order of appearance, by op summed over blocks', () => {
    expect(p.layers.map((l) => [l.name, l.calls])).toEqual([
      ['b0', 1],
      ['b1', 2],
      ['optimizer', 1],
    ]);
    expect(p.layers[1].ms).toBeCloseTo(3, 9);
    const qkv = p.ops.find((o) => o.name === 'fwd/attn.qkv')!;
    expect(qkv.calls).toBe(2);
    expect(qkv.ms).toBeCloseTo(2, 9);
  });

  it('without timestamps: counts, calls, FLOPs and bytes stay; every time is null', () => {
    const untimed = dispatches.map(({ beginNs: _b, endNs: _e, ...d }) => d);
    const q = summarizeProfile(1, untimed, counters, cpu, false);
    expect(q.gpu_ms).toBeNull();
    expect(q.idle_ms).toBeNull();
    expect(q.untimed).toBe(4);
    expect(q.kernels[0]).toMatchObject({ name: 'matmul.blocked4', calls: 2, ms: null, share: null, gflops: null, flops: 4e9 });
    expect(JSON.parse(JSON.stringify({ profile: q })).profile.gpu_ms).toBeNull();
  });

  it('dispatches past the query capacity are counted as untimed and left out of the times', () => {
    const partly = [...dispatches, { kernel: 'adamw.update', scope: 'optimizer' }];
    const q = summarizeProfile(1, partly, { ...counters, dispatches: 5 }, cpu, true);
    expect(q.untimed).toBe(1);
    expect(q.gpu_ms).toBeCloseTo(4.4, 9);
    expect(q.kernels.find((k) => k.name === 'adamw.update')!.calls).toBe(2);
  });

  it('the table names every family, op and layer, with TFLOP/s', () => {
    const text = formatProfile(p);
    expect(text).toContain('step 7 profile: 4 dispatches');
    expect(text).toMatch(/matmul\.blocked4\s+2\s+2\.000\s+45\.5%\s+2\.00\s+100\.00/);
    expect(text).toContain('fwd/attn.qkv');
    expect(text).toContain('optimizer');
    expect(text).toContain('record 5.0');
    expect(formatProfile(summarizeProfile(1, [], counters, cpu, false))).toContain('not measured');
  });
});

describe('CpuPhases', () => {
  it('each mark charges the time since the previous one; add charges a duration', () => {
    let t = 100;
    const c = new CpuPhases(() => t);
    c.reset();
    t = 103;
    c.mark('record');
    t = 104;
    c.mark('submit');
    t = 110;
    c.mark('wait');
    t = 111;
    c.mark('record');
    c.add('readback', 0.5);
    expect(c.snapshot()).toEqual({ record_ms: 4, submit_ms: 1, wait_ms: 6, readback_ms: 0.5 });
    expect(c.markedMs).toBe(11.5);
  });
});
