// The whole-block gradient check: the GPU runtime (transformer.ts's recordForward + recordBackward, LoRA attached by
// the trainer's lora-state.ts) against the float64 reference (reference.ts, itself checked against finite
// differences in reference.test.ts), on tiny random models loaded through the real loader from an in-memory
// config.json + model.safetensors. LoRA on every linear (q, k, v, o, gate, up, down; GPT-2's c_attn, c_proj, c_fc,
// c_proj) with B ≠ 0, two packed segments, one forward + backward with gradScale = 1/counted: the loss and every
// module's dA and dB must match. Both matmul/LoRA kernel variants the runtime can pick for a dense model.
import { beforeAll, describe, expect, it } from 'vitest';
import { readF32, writeBuffer } from '../../gpu/buffers.ts';
import type { Engine } from '../../gpu/engine.ts';
import { loraScale } from '../../train/methods/lora-scale.ts';
import { mismatches } from '../../gpu/ref/testing.ts';
import { driverName, testEngine } from '../../gpu/testing-gpu.ts';
import { attachLora, detachLora, readLoraTensors } from '../../train/lora-state.ts';
import { kernelChoiceFor } from './linear.ts';
import { loadTransformer } from './load.ts';
import { referenceGradients } from './reference.ts';
import { LLAMA3_SCALING, refModel, tinyGpt2Json, tinyLlamaJson, tinyLora, tinyModel, twoSegmentBatch } from './testing-tiny.ts';
import { recordBackward, recordForward, releaseActs, releaseBatch, uploadBatch } from './transformer.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

const MODELS = [
  { name: 'llama, 2 layers, GQA 4/2, RoPE', json: tinyLlamaJson({ layers: 2 }) },
  { name: 'llama, 1 layer, hidden 24, llama3 rope_scaling, biases', json: tinyLlamaJson({ layers: 1, hidden: 24, ropeScaling: LLAMA3_SCALING, bias: true }) },
  { name: 'gpt2, 2 layers', json: tinyGpt2Json({ layers: 2 }) },
];
const CASES = [
  // blocked4: dense LoRA layers take the unfused route (the chosen base matmul, then the rank-r terms beside it).
  ...MODELS.flatMap((m) => (['naive', 'tiled', 'blocked4'] as const).map((variant) => ({ ...m, variant, stored: 'F32' as const }))),
  // f16 weights: f16 storage where the adapter has shader-f16 (the f16 matmul, LoRA, embedding and head paths),
  // else the same values widened to f32. Rounded to f16 before either side sees them, so the tolerance is unchanged.
  { ...MODELS[0], name: `${MODELS[0].name}, f16 weights`, variant: 'tiled' as const, stored: 'F16' as const },
];

describe.each(CASES)(`whole-model LoRA gradients, GPU (${driverName}) vs float64 reference: $name, $variant`, ({ json, variant, stored }) => {
  it('loss and dA, dB of every linear', async () => {
    const tiny = tinyModel(json, 7, stored);
    const lora = tinyLora(tiny.config, 2, 4, 11);
    const hostBatch = twoSegmentBatch(tiny.config.vocabSize, 3);

    const tf = await loadTransformer(e, tiny.files, kernelChoiceFor(variant), {
      dtype: stored === 'F16' && e.gpu.hasF16 ? 'f16' : 'f32',
      quant: 'none',
    });
    const spec = { rank: lora.rank, alpha: lora.alpha, dropout: 0, rslora: false, targets: ['all-linear'], loraPlusRatio: 1 };
    const pathOf = new Map(lora.modules.map((m) => [m.canonical, m.peftPath]));
    const initialA = new Map([...lora.pairs].map(([canonical, p]) => [pathOf.get(canonical)!, p.A]));
    const state = attachLora(e, tf.model, spec, 0, initialA);
    expect(state.modules.length).toBe(lora.pairs.size);
    // attachLora starts B at zero (PEFT); a nonzero B makes dA nonzero, so write it into the flat params buffer.
    for (const m of state.modules) {
      writeBuffer(e.device, state.params, lora.pairs.get(m.module.canonical)!.B, state.layout.segments[m.bSegment].offset * 4);
    }

    const batch = uploadBatch(e, hostBatch);
    const rec = e.record('block-grad');
    const acts = recordForward(rec, e, tf, batch, true);
    recordBackward(rec, e, tf, batch, acts, { gradScale: 1 / batch.counted, accumulateGrads: false });
    await rec.submit();
    const [lossSum, count] = await readF32(e.device, acts.total, 2);
    const got = await readLoraTensors(e, state, 'grads');
    releaseActs(e, acts);
    releaseBatch(e, batch);
    detachLora(e, state);

    const want = referenceGradients(refModel(tiny, lora, loraScale(lora.alpha, lora.rank)), hostBatch, 1 / batch.counted);
    expect(count).toBe(want.count);
    // Observed on lavapipe and SwiftShader: the loss within 1e-7 relative, every gradient within a tenth of the
    // tolerance below (f32 through two blocks against float64), so each bound has an order of magnitude to spare.
    expect(Math.abs(lossSum - want.lossSum) / want.lossSum).toBeLessThan(1e-6);
    for (const t of got) {
      const w = want.grads.get(t.module.canonical)!;
      for (const [which, actual, expected] of [['dA', t.A, w.dA], ['dB', t.B, w.dB]] as const) {
        const scale = Math.max(...expected.map(Math.abs));
        expect(scale, `${t.module.canonical} ${which} carries signal`).toBeGreaterThan(1e-4);
        expect(mismatches(actual, expected, { abs: 1e-5 * scale, rel: 1e-4 }), `${t.module.canonical} ${which}`).toEqual([]);
      }
    }
  });
});
