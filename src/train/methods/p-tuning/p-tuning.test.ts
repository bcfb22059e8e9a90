// P-tuning's page-side module: its tensors (PEFT's encoder shapes, H defaulting to the hidden size), the export as PEFT
// saves PromptEncoderConfig (adapter_config.json from tests/fixtures/golden/train_ptuning_*_adapter, written by the
// real PEFT) with the encoder's output as prompt_embeddings, and PEFT's initialisation ranges.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { promptEncoderRef } from '../../../gpu/ref/prompt-encoder.ref.ts';
import { mismatches } from '../../../gpu/ref/testing.ts';
import { parseModelConfig, type ModelConfig } from '../../../model/config.ts';
import { SafetensorsFile } from '../../../model/safetensors.ts';
import { MemorySource } from '../../../model/sources/memory.ts';
import { nodeFolder } from '../../../model/sources/node-file.ts';
import { DEFAULT_CONFIG } from '../../config.ts';
import { P_TUNING_TENSORS, pTuningMethod, pTuningSegmentName, pTuningShapes } from './config.ts';
import { pTuningInit } from './runtime.ts';

const ROOT = join(import.meta.dirname, '../../../..');
const fixture = (name: string): ModelConfig =>
  parseModelConfig(JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/models', name, 'config.json'), 'utf8')), name);
const c = { ...DEFAULT_CONFIG, method: 'p-tuning' as const, numVirtualTokens: 4, encoderHiddenSize: 16 };

describe('P-tuning', () => {
  it('trains the table and the MLP encoder; H is the hidden size unless set', () => {
    const llama = fixture('llama');
    const C = llama.hiddenSize;
    expect(pTuningMethod.footprint([], c, llama).params).toBe(4 * C + 16 * C + 16 + 16 * 16 + 16 + C * 16 + C);
    expect(pTuningMethod.footprint([], { ...c, encoderHiddenSize: null }, llama).params).toBe(4 * C + 3 * C * C + 2 * C + C);
    expect(pTuningMethod.validate(c)).toEqual([]);
  });

  it.each(['gpt2', 'llama', 'qwen3'])('%s: exports adapter_config.json as PEFT saves PromptEncoderConfig, the encoder\'s output as prompt_embeddings', async (name) => {
    const model = fixture(name);
    const init = pTuningInit(4, model.hiddenSize, 16, 7);
    const tensors = new Map(P_TUNING_TENSORS.map((t) => [pTuningSegmentName(t), init.get(t)!]));
    const files = pTuningMethod.exportAdapter({ tensors, modules: [], targetModules: [], config: c, model, baseModel: `tests/fixtures/models/${name}` });
    const peft = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/golden', `train_ptuning_${name}_adapter`, 'adapter_config.json'), 'utf8'));
    expect(JSON.parse(new TextDecoder().decode(files['adapter_config.json']))).toEqual(peft);
    const ours = await SafetensorsFile.open(new MemorySource('ours', files['adapter_model.safetensors']));
    const theirs = await SafetensorsFile.open((await nodeFolder(join(ROOT, 'tests/fixtures/golden', `train_ptuning_${name}_adapter`)).open('adapter_model.safetensors'))!);
    expect(ours.names()).toEqual(theirs.names());
    expect(ours.info('prompt_embeddings').shape).toEqual(theirs.info('prompt_embeddings').shape);
    const get = (t: (typeof P_TUNING_TENSORS)[number]) => init.get(t)!;
    const { P } = promptEncoderRef({ E: get('embedding.weight'), W0: get('mlp_head.0.weight'), b0: get('mlp_head.0.bias'), W2: get('mlp_head.2.weight'), b2: get('mlp_head.2.bias'), W4: get('mlp_head.4.weight'), b4: get('mlp_head.4.bias') }, { n: 4, C: model.hiddenSize, H: 16 });
    expect(mismatches(await ours.readTensor('prompt_embeddings', 'f32'), P, { abs: 1e-6, rel: 1e-6 })).toEqual([]);
  });

  it('draws PEFT\'s ranges: the table N(0, 1), each Linear U(±1/√fan_in), reproducibly', () => {
    const init = pTuningInit(8, 40, 24, 3);
    const shapes = pTuningShapes(8, 40, 24);
    for (const t of P_TUNING_TENSORS) expect(init.get(t)!.length, t).toBe(shapes[t].reduce((a, b) => a * b, 1));
    for (const [t, fanIn] of [['mlp_head.0.weight', 40], ['mlp_head.2.bias', 24], ['mlp_head.4.weight', 24]] as const) {
      const v = init.get(t)!;
      expect(Math.max(...v.map(Math.abs)), t).toBeLessThanOrEqual(1 / Math.sqrt(fanIn));
      expect(Math.max(...v.map(Math.abs)), t).toBeGreaterThan(0.8 / Math.sqrt(fanIn));
    }
    expect(pTuningInit(8, 40, 24, 3)).toEqual(init);
  });
});
