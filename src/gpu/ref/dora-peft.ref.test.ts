// The DoRA layer reference (dora.ref.ts) against PEFT's own layer (peft.tuners.lora.layer.Linear with use_dora=True,
// float64, training mode; scripts/golden_dora_layer.py → tests/fixtures/golden/dora_layer.json): with a fixed dropout
// mask on nn.Linear and Conv1D (PEFT then recomputes W·drop(x) without the bias) and without dropout (PEFT reuses the
// base output minus the bias). y and the gradients of Σ y ⊙ dy with respect to x, lora_A, lora_B and the magnitude —
// which PEFT's autograd computes with the norm detached — must agree to float64 rounding.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { doraLayerBackwardRef, doraLayerForwardRef } from './dora.ref.ts';
import { mismatches } from './testing.ts';

interface Case {
  conv1d: boolean;
  T: number;
  in: number;
  out: number;
  r: number;
  scale: number;
  x: number[];
  W: number[];
  bias: number[];
  A: number[];
  B: number[];
  m: number[];
  mask: number[] | null;
  dy: number[];
  y: number[];
  dx: number[];
  dA: number[];
  dB: number[];
  dm: number[];
}

const golden = JSON.parse(readFileSync(join(import.meta.dirname, '../../../tests/fixtures/golden/dora_layer.json'), 'utf8')) as { cases: Case[] };

describe.each(golden.cases.map((c) => [c.conv1d ? 'Conv1D' : 'nn.Linear', c.mask ? 'a dropout mask' : 'no dropout', c] as const))('PEFT\'s DoRA layer, %s, %s', (_, __, c) => {
  it('y, dx, dA, dB and dm as PEFT computes them', () => {
    const inputs = {
      T: c.T, inFeatures: c.in, outFeatures: c.out, r: c.r, scale: c.scale, conv1d: c.conv1d,
      x: c.x, W: c.W, bias: c.bias, A: c.A, B: c.B, m: c.m, mask: c.mask ?? undefined,
    };
    const tol = { abs: 1e-12, rel: 1e-10 };
    expect(mismatches(doraLayerForwardRef(inputs).y, c.y, tol), 'y').toEqual([]);
    const g = doraLayerBackwardRef(inputs, c.dy);
    for (const key of ['dx', 'dA', 'dB', 'dm'] as const) expect(mismatches(g[key], c[key], tol), key).toEqual([]);
  });
});
