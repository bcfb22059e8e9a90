// P-tuning's page-side module: its tensors (PEFT's encoder shapes, H defaulting to the hidden size), the export as PEFT
// saves PromptEncoderConfig (adapter_config.json from tests/fixtures/golden/train_ptuning_*_adapter, written by the
// real PEFT) with the encoder's output as prompt_embeddings, and PEFT's initialisation ranges; the same for the LSTM
// encoder (tests/fixtures/golden/train_ptuning_lstm_*_adapter), its settings from the CLI and the refused dropout.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { promptEncoderRef } from '../../../gpu/ref/prompt-encoder.ref.ts';
import { mismatches } from '../../../gpu/ref/testing.ts';
import { parseModelConfig, type ModelConfig } from '../../../model/config.ts';
import { SafetensorsFile } from '../../../model/safetensors.ts';
import { MemorySource } from '../../../model/sources/memory.ts';
import { nodeFolder } from '../../../model/sources/node-file.ts';
import { configFromFlags } from '../../../cli/train.ts';
import { lstmEncoderRef } from '../../../gpu/ref/lstm.ref.ts';
import { DEFAULT_CONFIG, normalizeConfig, validateConfig, type TrainConfig } from '../../config.ts';
import { P_TUNING_TENSORS, pTuningMethod, pTuningSegmentName, pTuningShapes } from './config.ts';
import { lstmEncoderParams } from './lstm.ts';
import { pTuningLstmInit } from './lstm-runtime.ts';
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

  describe('with the LSTM encoder', () => {
    const lstm = (layers: number, extra: Partial<TrainConfig> = {}): TrainConfig => ({ ...c, encoderType: 'lstm', encoderHiddenSize: 8, encoderNumLayers: layers, ...extra });

    it('trains the table, the bidirectional LSTM (PEFT\'s names and order) and the 2H-wide head', () => {
      const llama = fixture('llama');
      const C = llama.hiddenSize;
      const H = 8;
      const direction = (K: number) => 4 * H * K + 4 * H * H + 2 * 4 * H;
      const head = 2 * H * 2 * H + 2 * H + C * 2 * H + C;
      expect(pTuningMethod.footprint([], lstm(1), llama).params).toBe(4 * C + 2 * direction(C) + head);
      expect(pTuningMethod.footprint([], lstm(2), llama).params).toBe(4 * C + 2 * direction(C) + 2 * direction(2 * H) + head);
      expect(pTuningMethod.ownTensors!(llama, lstm(2)).map((t) => t.name)).toEqual([
        'prompt_encoder.embedding.weight',
        ...[0, 1].flatMap((l) => ['', '_reverse'].flatMap((r) => ['weight_ih', 'weight_hh', 'bias_ih', 'bias_hh'].map((w) => `prompt_encoder.lstm_head.${w}_l${l}${r}`))),
        'prompt_encoder.mlp_head.0.weight', 'prompt_encoder.mlp_head.0.bias', 'prompt_encoder.mlp_head.2.weight', 'prompt_encoder.mlp_head.2.bias',
      ]);
    });

    it('refuses dropout between stacked LSTM layers (torch\'s masks cannot be matched); one layer has none to apply', () => {
      expect(pTuningMethod.validate(lstm(2, { encoderDropout: 0.1 })).map((e) => e.field)).toEqual(['encoderDropout']);
      expect(pTuningMethod.validate(lstm(2, { encoderDropout: 0.1 }))[0].message).toMatch(/not supported.*use 0, or one layer/);
      expect(pTuningMethod.validate(lstm(1, { encoderDropout: 0.1 }))).toEqual([]);
      expect(pTuningMethod.validate({ ...c, encoderDropout: 0.1 })).toEqual([]); // the MLP: PEFT ignores it
      expect(validateConfig(lstm(2, { encoderType: 'gru' as never })).map((e) => e.field)).toEqual(['encoderType']);
      expect(validateConfig(lstm(0)).map((e) => e.field)).toEqual(['encoderNumLayers']);
    });

    it('takes its settings from the CLI, and a config saved before them is the MLP', () => {
      expect(configFromFlags({ method: 'p-tuning', 'encoder-type': 'lstm', 'encoder-num-layers': '1', 'encoder-hidden-size': '8' })).toMatchObject({
        method: 'p-tuning', encoderType: 'lstm', encoderNumLayers: 1, encoderHiddenSize: 8, encoderDropout: 0,
      });
      expect(() => configFromFlags({ method: 'p-tuning', 'encoder-type': 'gru' })).toThrow(/--encoder-type "gru": must be mlp or lstm/);
      expect(() => configFromFlags({ method: 'p-tuning', 'encoder-type': 'lstm', 'encoder-dropout': '0.1' })).toThrow(/--encoder-dropout "0.1": dropout between the LSTM encoder's 2 layers is not supported/);
      const { encoderType: _t, encoderNumLayers: _l, encoderDropout: _d, ...old } = DEFAULT_CONFIG;
      expect(normalizeConfig(old as TrainConfig)).toMatchObject({ encoderType: 'mlp', encoderNumLayers: 2, encoderDropout: 0 });
    });

    it.each([['gpt2', 2], ['llama', 1]] as const)('%s (%i layers): exports adapter_config.json as PEFT saves it, the LSTM encoder\'s output as prompt_embeddings', async (name, layers) => {
      const model = fixture(name);
      const C = model.hiddenSize;
      const init = pTuningLstmInit(4, C, 8, layers, 7);
      const tensors = new Map([...init].map(([k, v]) => [`prompt_encoder.${k}`, v]));
      const files = pTuningMethod.exportAdapter({ tensors, modules: [], targetModules: [], config: lstm(layers), model, baseModel: `tests/fixtures/models/${name}` });
      const dir = join(ROOT, 'tests/fixtures/golden', `train_ptuning_lstm_${name}_adapter`);
      expect(JSON.parse(new TextDecoder().decode(files['adapter_config.json']))).toEqual(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')));
      const ours = await SafetensorsFile.open(new MemorySource('ours', files['adapter_model.safetensors']));
      const theirs = await SafetensorsFile.open((await nodeFolder(dir).open('adapter_model.safetensors'))!);
      expect(ours.names()).toEqual(theirs.names());
      expect(ours.info('prompt_embeddings').shape).toEqual(theirs.info('prompt_embeddings').shape);
      const { P } = lstmEncoderRef(lstmEncoderParams((t) => init.get(t)!, layers), { n: 4, C, H: 8 });
      expect(mismatches(await ours.readTensor('prompt_embeddings', 'f32'), P, { abs: 1e-6, rel: 1e-6 })).toEqual([]);
    });

    it('draws PEFT\'s ranges: the table N(0, 1), the LSTM U(±1/√H), the head U(±1/√2H), reproducibly', () => {
      const H = 24;
      const init = pTuningLstmInit(8, 40, H, 2, 3);
      for (const [t, bound] of [['lstm_head.weight_ih_l0', 1 / Math.sqrt(H)], ['lstm_head.bias_hh_l1_reverse', 1 / Math.sqrt(H)], ['mlp_head.0.weight', 1 / Math.sqrt(2 * H)], ['mlp_head.2.bias', 1 / Math.sqrt(2 * H)]] as const) {
        const v = init.get(t)!;
        expect(Math.max(...v.map(Math.abs)), t).toBeLessThanOrEqual(bound);
        expect(Math.max(...v.map(Math.abs)), t).toBeGreaterThan(0.8 * bound);
      }
      expect(init.get('embedding.weight')).toEqual(pTuningInit(8, 40, H, 3).get('embedding.weight'));
      expect(pTuningLstmInit(8, 40, H, 2, 3)).toEqual(init);
    });
  });
});
