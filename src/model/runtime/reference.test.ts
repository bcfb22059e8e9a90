// The float64 whole-model reference: its forward loss equals transformers' on the committed fixtures, and its LoRA
// gradients (A and B of every linear, B ≠ 0) equal float64 central finite differences of its own loss, through
// whole tiny models (norm → attention with RoPE and GQA over two packed segments → MLP, 1–2 layers).
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { loraScale } from '../../train/methods/lora-scale.ts';
import { mismatches } from '../../gpu/ref/testing.ts';
import { Checkpoint } from '../checkpoint.ts';
import { nodeFolder } from '../sources/node-file.ts';
import { resolveWeights } from '../weights.ts';
import { readModelConfig } from './load.ts';
import { referenceGradients, referenceLoss, type RefModel } from './reference.ts';
import { FIXTURES, packRows, readGolden } from './testing.ts';
import { LLAMA3_SCALING, tinyGpt2Json, tinyLlamaJson, tinyLora, tinyModel, twoSegmentBatch } from './testing-tiny.ts';

describe.each(['llama', 'llama-rope-scaling', 'gpt2'])('reference forward against transformers: %s', (name) => {
  it('token-weighted loss equals the float64 golden', async () => {
    const golden = readGolden(name);
    const folder = nodeFolder(join(FIXTURES, 'models', name));
    const config = await readModelConfig(folder);
    const checkpoint = await Checkpoint.open(folder);
    const weights = new Map<string, ArrayLike<number>>();
    try {
      const report = resolveWeights(config, new Map(checkpoint.names().map((n) => [n, checkpoint.info(n).shape])));
      for (const [canonical, t] of report.tensors) weights.set(canonical, await checkpoint.readTensor(t.source, 'f32'));
    } finally {
      await checkpoint.close();
    }
    const model: RefModel = { config, weights, lora: { rank: 1, scale: 0, modules: new Map() } };
    const { lossSum, count } = referenceLoss(model, packRows(golden.rows));
    expect(count).toBe(golden.tokens);
    // The golden loss is written with 7 significant digits.
    expect(Math.abs(lossSum / count - golden.loss) / golden.loss).toBeLessThan(1e-6);
  });
});

const CASES = [
  { name: 'llama, 2 layers, GQA 4/2, RoPE', json: tinyLlamaJson({ layers: 2 }) },
  { name: 'llama, 1 layer, hidden 24 ≠ q width 32, llama3 rope_scaling, biases', json: tinyLlamaJson({ layers: 1, hidden: 24, ropeScaling: LLAMA3_SCALING, bias: true }) },
  { name: 'gpt2, 2 layers, fused Conv1D c_attn, GELU, learned positions, tied head', json: tinyGpt2Json({ layers: 2 }) },
];

describe.each(CASES)('reference LoRA gradients against finite differences: $name', ({ json }) => {
  it('dA and dB of every linear', () => {
    const tiny = tinyModel(json, 7);
    const lora = tinyLora(tiny.config, 2, 4, 11);
    // float64 copies: the finite differences perturb them in place.
    const pairs = new Map([...lora.pairs].map(([k, p]) => [k, { A: Float64Array.from(p.A), B: Float64Array.from(p.B) }]));
    const model: RefModel = { config: tiny.config, weights: tiny.weights, lora: { rank: lora.rank, scale: loraScale(lora.alpha, lora.rank), modules: pairs } };
    const batch = twoSegmentBatch(tiny.config.vocabSize, 3);
    const { count, grads } = referenceGradients(model, batch, 1 / referenceLoss(model, batch).count);
    expect(count).toBe(8); // 11 tokens, 2 row ends and 1 masked prompt token ignored
    expect([...grads.keys()].sort()).toEqual([...pairs.keys()].sort());

    const loss = () => {
      const l = referenceLoss(model, batch);
      return l.lossSum / l.count;
    };
    const h = 1e-5;
    const fd = (x: Float64Array) =>
      Float64Array.from(x, (v, i) => {
        x[i] = v + h;
        const up = loss();
        x[i] = v - h;
        const down = loss();
        x[i] = v;
        return (up - down) / (2 * h);
      });
    // Central differences at h = 1e-5 in float64: truncation ~h²·|f'''| ≈ 1e-10, rounding ~1e-16·|L|/h ≈ 1e-11.
    const tol = { abs: 1e-8, rel: 1e-6 };
    for (const [name, p] of pairs) {
      const g = grads.get(name)!;
      expect(mismatches(g.dA, fd(p.A), tol), `${name} dA`).toEqual([]);
      expect(mismatches(g.dB, fd(p.B), tol), `${name} dB`).toEqual([]);
      // B ≠ 0 makes dA carry signal: a check of zeros against zeros would prove nothing.
      expect(Math.max(...g.dA.map(Math.abs)), `${name} dA is not trivially zero`).toBeGreaterThan(1e-4);
      expect(Math.max(...g.dB.map(Math.abs)), `${name} dB is not trivially zero`).toBeGreaterThan(1e-4);
    }
  });
});
