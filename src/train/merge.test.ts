import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mismatches, randomArray } from '../gpu/ref/testing.ts';
import { Checkpoint } from '../model/checkpoint.ts';
import { f32ArrayToF16 } from '../gpu/half.ts';
import { readModelConfig } from '../model/load.ts';
import { SafetensorsError, SafetensorsFile, writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { memoryFolder, MemorySource } from '../model/sources/memory.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { expectedTensors, selectTargetModules } from '../model/weights.ts';
import { mergeLora, mergeModel, readWhole } from './merge.ts';
import { buildAdapterConfig, exportAdapter, importAdapter, type LoraAdapter } from './peft.ts';

const ROOT = join(__dirname, '..', '..');
const fixture = (name: string) => join(ROOT, 'tests', 'fixtures', 'models', name);

/** y = x·Wᵀ (Linear, W [out, in]) or x·W (Conv1D, W [in, out]) for one input row, in float64. */
function apply(W: Float32Array, x: Float64Array, n: number, m: number, conv1d: boolean): Float64Array {
  const y = new Float64Array(m);
  for (let o = 0; o < m; o++) for (let i = 0; i < n; i++) y[o] += x[i] * W[conv1d ? i * m + o : o * n + i];
  return y;
}

describe('mergeLora', () => {
  for (const conv1d of [false, true]) {
    it(`W' x = W x + s·B(A x) (${conv1d ? 'Conv1D, W stored [in, out]' : 'Linear, W stored [out, in]'})`, () => {
      const [n, m, r, s] = [7, 5, 3, 1.75];
      const W = randomArray(n * m, 1);
      const A = randomArray(r * n, 2);
      const B = randomArray(m * r, 3);
      const merged = mergeLora(W, A, B, s, conv1d, { inFeatures: n, outFeatures: m });
      expect(W).toEqual(randomArray(n * m, 1)); // W itself is left alone
      for (let t = 0; t < 4; t++) {
        const x = Float64Array.from(randomArray(n, 10 + t));
        const ax = new Float64Array(r);
        for (let k = 0; k < r; k++) for (let i = 0; i < n; i++) ax[k] += A[k * n + i] * x[i];
        const expected = apply(W, x, n, m, conv1d).map((v, o) => {
          let bax = 0;
          for (let k = 0; k < r; k++) bax += B[o * r + k] * ax[k];
          return v + s * bax;
        });
        expect(mismatches(apply(merged, x, n, m, conv1d), expected, { abs: 1e-6, rel: 1e-6 })).toEqual([]);
      }
    });
  }

  it('refuses inconsistent sizes', () => {
    expect(() => mergeLora(new Float32Array(6), new Float32Array(6), new Float32Array(4), 1, false, { inFeatures: 3, outFeatures: 3 })).toThrow(
      'mergeLora: W has 6 values, expected [3, 3]',
    );
    expect(() => mergeLora(new Float32Array(6), new Float32Array(6), new Float32Array(5), 1, false, { inFeatures: 3, outFeatures: 2 })).toThrow(/not \[r, 3\] and \[2, r\]/);
  });
});

async function randomAdapter(name: string, targets: string | string[], seed: number, scaleB = 0.5): Promise<LoraAdapter> {
  const model = await readModelConfig(nodeFolder(fixture(name)));
  const modules = selectTargetModules(model, targets).map((m, i) => ({
    peftPath: m.peftPath,
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    A: randomArray(2 * m.inFeatures, seed + 2 * i, 0.5),
    B: randomArray(m.outFeatures * 2, seed + 2 * i + 1, scaleB),
  }));
  const config = buildAdapterConfig({ baseModel: name, rank: 2, alpha: 3, dropout: 0, targetModules: targets, fanInFanOut: model.linearLayout === 'conv1d', rslora: false, model });
  return importAdapter(memoryFolder({ ...exportAdapter(modules, config) }), model);
}

describe('mergeModel', () => {
  // gpt2: f32 Conv1D with GPT-2's attn.bias buffers; qwen2: F16 storage, biases, tied; llama-sharded: two shards.
  for (const [name, targets] of [
    ['gpt2', 'all-linear'],
    ['qwen2', ['q_proj', 'v_proj', 'down_proj']],
    ['llama-sharded', 'all-linear'],
  ] as [string, string | string[]][]) {
    it(`writes every tensor as F16 with the adapter folded in: ${name}`, async () => {
      const folder = nodeFolder(fixture(name));
      const adapter = await randomAdapter(name, targets, 5);
      const merged = await mergeModel(folder, adapter, 1000); // small chunks: exercises the streaming path
      expect(merged.files.map((f) => f.path)).toEqual(['model.safetensors', 'config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']);
      const bytes = await readWhole(merged.files[0]);
      const out = await SafetensorsFile.open(new MemorySource('merged', bytes));
      expect(out.metadata).toEqual({ format: 'pt' });

      // Expected: every base tensor, merged where adapted, rounded to f16, written by the reference writer.
      const base = await Checkpoint.open(folder);
      const model = await readModelConfig(folder);
      const byCanonicalWeight = new Map(adapter.modules.map((m) => [`${m.module.canonical}.weight`, m]));
      const hfToCanonical = new Map(expectedTensors(model).map((e) => [e.hfName.replace(/^transformer\./, ''), e.canonical]));
      const expected = new Map<string, TensorToWrite>();
      let mergedCount = 0;
      for (const tensorName of base.names()) {
        const W = await base.readTensor(tensorName, 'f32');
        const m = byCanonicalWeight.get(hfToCanonical.get(tensorName.replace(/^transformer\./, '')) ?? '');
        if (m) mergedCount++;
        const value = m ? mergeLora(W, m.A, m.B, adapter.scale, m.module.fanInFanOut, m) : W;
        expected.set(tensorName, { dtype: 'F16', shape: base.info(tensorName).shape, data: f32ArrayToF16(value) });
      }
      expect(mergedCount).toBe(adapter.modules.length);
      expect(Buffer.from(bytes).equals(Buffer.from(writeSafetensors(expected, { format: 'pt' })))).toBe(true);

      const config = JSON.parse(new TextDecoder().decode(await readWhole(merged.files[1])));
      const original = JSON.parse(readFileSync(join(fixture(name), 'config.json'), 'utf8'));
      expect(config).toEqual({ ...original, dtype: 'float16' });
      expect(Buffer.from(await readWhole(merged.files[3])).equals(readFileSync(join(fixture(name), 'tokenizer.json')))).toBe(true);
      await merged.close();
      await base.close();
    });
  }

  it('keeps a legacy "torch_dtype" key as the key it updates', async () => {
    const merged = await mergeModel(nodeFolder(fixture('llama-rope-scaling')), await randomAdapter('llama-rope-scaling', ['q_proj'], 1));
    const config = JSON.parse(new TextDecoder().decode(await readWhole(merged.files[1])));
    expect(config.torch_dtype).toBe('float16');
    expect('dtype' in config).toBe(false);
    await merged.close();
  });

  it('refuses a merge that overflows f16, naming the tensor', async () => {
    const adapter = await randomAdapter('llama', ['v_proj'], 2, 1e6);
    const merged = await mergeModel(nodeFolder(fixture('llama')), adapter);
    const err = await readWhole(merged.files[0]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as Error).message).toMatch(/tensor "model\.layers\.0\.self_attn\.v_proj\.weight": element \d+ is infinite in f16 after merging/);
    await merged.close();
  });
});
