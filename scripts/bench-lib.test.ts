// The benchmark suite's pure helpers (bench/lib): the arithmetic behind every GFLOP/s and ratio it prints, the
// table layout pasted into BENCHMARKS.md, and which shapes each mode covers.
import { describe, expect, it } from 'vitest';
import { linearPlan, loraPlan, parseArgs, SECTIONS, timingFor, trainingPlan } from '../bench/lib/plan.ts';
import { peerMethod } from '../bench/methods.ts';
import { DEFAULT_CONFIG } from '../src/train/config.ts';
import { METHOD_ROWS, methodRowConfig } from '../src/train/method-comparison.ts';
import {
  formatBytes,
  formatMs,
  formatNumber,
  formatRatio,
  formatShape,
  gflops,
  loraForwardBackwardFlops,
  matmulFlops,
  maxRelDiff,
  median,
  ratio,
  trainingStepFlops,
} from '../bench/lib/stats.ts';
import { renderTable } from '../bench/lib/table.ts';

describe('stats', () => {
  it('median of odd and even counts, unsorted input left untouched', () => {
    const xs = [5, 1, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(() => median([])).toThrow(RangeError);
  });

  it('matmul FLOPs and GFLOP/s', () => {
    expect(matmulFlops(512, 2304, 768)).toBe(2 * 512 * 2304 * 768);
    // 1 GFLOP in 1 ms is 1000 GFLOP/s; 2·128³ in 2 ms.
    expect(gflops(1e9, 1)).toBe(1000);
    expect(gflops(matmulFlops(128, 128, 128), 2)).toBeCloseTo(2.097152, 9);
    expect(() => gflops(1, 0)).toThrow(RangeError);
    expect(() => gflops(1, NaN)).toThrow(RangeError);
  });

  it('LoRA forward + backward FLOPs: two base-sized products and six rank-r ones', () => {
    expect(loraForwardBackwardFlops({ T: 1, inFeatures: 1, outFeatures: 1, r: 1 })).toBe(16);
    const s = { T: 512, inFeatures: 768, outFeatures: 2304, r: 8 };
    const base = 2 * matmulFlops(512, 2304, 768); // y = x·Wᵀ and dx = dy·W
    const rankIn = 3 * matmulFlops(512, 8, 768); // h = x·Aᵀ, dx += g·A, dA = gᵀ·x
    const rankOut = 3 * matmulFlops(512, 8, 2304); // y += h·Bᵀ, g = dy·B, dB = dyᵀ·h
    expect(loraForwardBackwardFlops(s)).toBe(base + rankIn + rankOut);
  });

  it('training-step model FLOPs: forward + input gradient of every frozen product, causal attention 3× forward', () => {
    // One token, one layer: 4·(linear + head) plus 6·T·qDim.
    expect(trainingStepFlops({ tokens: 1, seqLen: 1, layers: 1, linearParams: 10, vocab: 3, hidden: 2, qDim: 4 })).toBe(4 * (10 + 6) + 6 * 4);
    // GPT-2 small at 256 tokens: 85M linear params, tied 50257×768 head, 12 layers of qDim 768.
    const s = { tokens: 256, seqLen: 256, layers: 12, linearParams: 84_934_656, vocab: 50257, hidden: 768, qDim: 768 };
    const expected = 4 * 256 * (84_934_656 + 50257 * 768) + 6 * 12 * 256 * 256 * 768;
    expect(trainingStepFlops(s)).toBe(expected);
    expect(expected / 1e9).toBeCloseTo(130.1, 1); // about 130 GFLOP per step
  });

  it('ratio is null when it cannot be formed', () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(ratio(null, 2)).toBeNull();
    expect(ratio(2, undefined)).toBeNull();
    expect(ratio(2, 0)).toBeNull();
    expect(ratio(NaN, 1)).toBeNull();
  });

  it('max relative difference is scaled by the reference', () => {
    expect(maxRelDiff([1, 2, 3], [1, 2, 3])).toBe(0);
    expect(maxRelDiff([1, 2.5, -4], [1, 2, -5])).toBeCloseTo(0.2, 12); // max |Δ| = 1, max |ref| = 5
    expect(maxRelDiff([0.5], [0])).toBe(0.5); // a zero reference: the absolute difference
    expect(Number.isNaN(maxRelDiff([NaN, 1], [1, 1]))).toBe(true);
    expect(() => maxRelDiff([1], [1, 2])).toThrow(RangeError);
  });

  it('formats numbers, times, ratios, bytes and shapes', () => {
    expect(formatNumber(1234.5)).toBe('1235');
    expect(formatNumber(4.2567)).toBe('4.26');
    expect(formatNumber(0.0123456)).toBe('0.0123');
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(null)).toBe('–');
    expect(formatNumber(Infinity)).toBe('–');
    expect(formatMs(12.345)).toBe('12.3 ms');
    expect(formatRatio(1.005)).toBe('1.00×');
    expect(formatRatio(null)).toBe('–');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1024)).toBe('1.00 KiB');
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.50 GiB');
    expect(formatBytes(272 * 1024 ** 2)).toBe('272 MiB');
    expect(formatShape(512, 768, 2304)).toBe('512×768×2304');
  });
});

describe('renderTable', () => {
  it('aligns columns, right-aligns numbers, escapes pipes and adds notes', () => {
    const text = renderTable({
      title: 'T',
      columns: [{ header: 'name' }, { header: 'GFLOP/s', align: 'right' }],
      rows: [
        ['naive', '2.3'],
        ['a|b', '1.00×'],
      ],
      notes: ['median of 3'],
    });
    expect(text.split('\n')).toEqual([
      '### T',
      '',
      '| name  | GFLOP/s |',
      '|-------|--------:|',
      '| naive |     2.3 |',
      '| a\\|b  |   1.00× |',
      '',
      '- median of 3',
    ]);
  });

  it('refuses a row with the wrong number of cells', () => {
    expect(() => renderTable({ title: 'T', columns: [{ header: 'a' }], rows: [['1', '2']] })).toThrow(/row 0 has 2 cells/);
  });
});

describe('plan', () => {
  it('parses options, with the mode defaults for timing', () => {
    const o = parseArgs([]);
    expect(o).toMatchObject({ quick: false, json: false, wallClock: false, help: false, sections: [...SECTIONS] });
    expect(parseArgs(['--wall-clock']).wallClock).toBe(true);
    expect(timingFor(o)).toEqual({ warmup: 2, reps: 10 });
    const q = parseArgs(['--quick', '--json', '--only', 'matmul,nf4', '--reps=5', '--peak-gflops', '67000']);
    expect(q).toMatchObject({ quick: true, json: true, sections: ['matmul', 'nf4'], reps: 5, peakGflops: 67000 });
    expect(timingFor(q)).toEqual({ warmup: 1, reps: 5 });
    expect(timingFor(parseArgs(['--quick']))).toEqual({ warmup: 1, reps: 3 });
  });

  it('names the flag it cannot accept', () => {
    expect(() => parseArgs(['--fast'])).toThrow(/unknown option "--fast"/);
    expect(() => parseArgs(['--reps', '0'])).toThrow(/--reps needs a positive integer, got "0"/);
    expect(() => parseArgs(['--reps'])).toThrow(/got nothing/);
    expect(() => parseArgs(['--only', 'matmul,speed'])).toThrow(/"speed" is not a section/);
    expect(() => parseArgs(['--json-out', '--quick'])).toThrow(/--json-out needs a file name/);
    expect(parseArgs(['--json-out', 'out.json']).jsonOut).toBe('out.json');
  });

  it('quick runs use fewer tokens and leave the 1B shape out on CPU drivers only', () => {
    const cpu = linearPlan(true, true);
    expect(cpu.cases.map((c) => [c.M, c.K, c.N])).toEqual([
      [64, 768, 2304],
      [64, 896, 4864],
    ]);
    expect(cpu.skipped).toHaveLength(1);
    expect(cpu.skipped[0]).toMatch(/2048×8192/);
    expect(linearPlan(true, false).cases.map((c) => c.N)).toEqual([2304, 4864, 8192]);
    const full = linearPlan(false, true);
    expect(full.cases.every((c) => c.M === 512)).toBe(true);
    expect(full.cases).toHaveLength(3);
    expect(full.skipped).toEqual([]);
  });

  it('LoRA cases: GPT-2 (Conv1D) and Qwen layers at r = 8 and 16', () => {
    const cases = loraPlan(false);
    expect(cases.map((c) => [c.name, c.r, c.conv1d, c.T])).toEqual([
      ['GPT-2 c_attn', 8, true, 512],
      ['GPT-2 c_attn', 16, true, 512],
      ['Qwen2.5-0.5B MLP up', 8, false, 512],
      ['Qwen2.5-0.5B MLP up', 16, false, 512],
    ]);
    expect(loraPlan(true).every((c) => c.T === 32)).toBe(true);
  });

  it('training: fixtures always; real-sized random models only in full runs on a GPU', () => {
    const gpu = trainingPlan(false, false);
    expect(gpu.cases.map((c) => c.name)).toEqual(['fixture gpt2 (tiny)', 'fixture qwen2 (tiny)', 'GPT-2 small, random weights', 'Qwen2.5-0.5B, random weights']);
    expect(gpu.skipped).toEqual([]);
    for (const [quick, isCpu] of [[true, false], [true, true], [false, true]] as const) {
      const p = trainingPlan(quick, isCpu);
      expect(p.cases.map((c) => c.source)).toEqual([{ fixture: 'gpt2' }, { fixture: 'qwen2' }]);
      expect(p.skipped).toHaveLength(2);
    }
    // The GPT-2 fixture has 64 positions: no case may ask for more.
    expect(Math.max(...trainingPlan(false, false).cases.filter((c) => 'fixture' in c.source).map((c) => c.seqLen))).toBeLessThanOrEqual(64);
  });
});

describe('methods table', () => {
  const base = { ...DEFAULT_CONFIG, targets: ['all-linear'] };
  const peer = (id: string) => {
    const row = METHOD_ROWS.find((r) => r.id === id)!;
    const r = methodRowConfig(row, base, row.quant === 'nf4' ? 'nf4' : 'none');
    if (!('config' in r)) throw new Error(r.reason);
    return peerMethod(row, r.config, 4);
  };
  it("gives PyTorch + PEFT the row's own method and settings, and no row where PEFT has none", () => {
    expect(peer('lora-r64')).toMatchObject({ id: 'lora', rank: 64, alpha: 128, targets: 'all-linear', totalStep: 4 });
    expect(peer('dora-r8')).toMatchObject({ id: 'dora', rank: 8, targets: 'all-linear' });
    expect(peer('ia3')).toMatchObject({ id: 'ia3', targets: null }); // PEFT's default modules, as ours
    expect(peer('prompt-tuning')).toMatchObject({ id: 'prompt-tuning', numVirtualTokens: DEFAULT_CONFIG.numVirtualTokens });
    expect(peer('full')).toMatchObject({ id: 'full' });
    expect(peer('qlora-r8')).toBeNull(); // bitsandbytes
    expect(peer('houlsby')).toBeNull();
    expect(peer('pfeiffer')).toBeNull();
  });
});
