import { beforeEach, describe, expect, it } from 'vitest';
import type { DatasetSummary, EngineRequest, ModelSummary } from '../../train/protocol.ts';
import { linkEngine } from '../engine-link.ts';
import { useStudio } from '../studio.ts';
import { DEFAULT_MAX_LENGTH_CAP, effectiveMaxLength } from './dataset.ts';

const model = { name: 'demo', maxPositions: 256 } as ModelSummary;
const summary: DatasetSummary = {
  fileName: 'chat.jsonl', format: 'messages', rows: 8, skipped: 1, truncated: 0, trainedTokens: 80, totalTokens: 200,
  errors: [{ line: 5, reason: 'invalid JSON' }], histogram: { edges: [0, 10, 20], counts: [3, 5] }, samples: [],
};

let sent: EngineRequest[] = [];
const lastDatasetRequest = () => sent.filter((r) => r.type === 'load-dataset').at(-1) as Extract<EngineRequest, { type: 'load-dataset' }>;

beforeEach(() => {
  sent = [];
  linkEngine({ send: (r) => sent.push(r) });
  useStudio.setState({
    model, modelStatus: 'loaded', modelRequest: 'model-0', datasetStatus: 'idle', datasetRequest: null, datasetSource: null,
    dataset: null, datasetId: null, datasetError: '', maxLength: null, trainOnPrompt: false,
  });
});

describe('dataset slice', () => {
  it('sends the file with the model-derived max length and records the summary', () => {
    const file = new File(['{"text": "hi"}\n'], 'chat.jsonl');
    useStudio.getState().loadDataset(file);
    const req = lastDatasetRequest();
    expect(req.file).toBe(file);
    expect(req.maxLength).toBe(256);
    expect(req.trainOnPrompt).toBe(false);
    useStudio.getState().applyEngineEvent({ type: 'progress', id: req.id, stage: 'dataset', done: 10, total: 16 });
    expect(useStudio.getState().datasetProgress).toMatchObject({ done: 10, total: 16 });
    useStudio.getState().applyEngineEvent({ type: 'dataset-loaded', id: req.id, dataset: summary });
    expect(useStudio.getState()).toMatchObject({ datasetStatus: 'loaded', dataset: summary, datasetId: req.id });
  });

  it('re-tokenizes the current file when options change or a new model loads', () => {
    useStudio.getState().loadDataset({ url: '/datasets/chat-pirate.jsonl', name: 'chat-pirate.jsonl' });
    const first = lastDatasetRequest();
    useStudio.getState().applyEngineEvent({ type: 'dataset-loaded', id: first.id, dataset: summary });

    useStudio.getState().setDatasetOptions({ maxLength: 64, trainOnPrompt: true });
    expect(lastDatasetRequest()).toMatchObject({ maxLength: 64, trainOnPrompt: true, file: { url: '/datasets/chat-pirate.jsonl' } });

    useStudio.getState().applyEngineEvent({ type: 'model-loaded', id: 'model-0', model: { ...model, maxPositions: 2048 } });
    expect(useStudio.getState().dataset).toBeNull();
    expect(sent.filter((r) => r.type === 'load-dataset')).toHaveLength(3);
    expect(lastDatasetRequest().maxLength).toBe(64);
  });

  it('rejects a max length below 2 without sending', () => {
    useStudio.getState().loadDataset(new File(['x'], 'a.jsonl'));
    const count = sent.length;
    useStudio.getState().setDatasetOptions({ maxLength: 1 });
    expect(useStudio.getState().datasetError).toMatch(/at least 2/);
    expect(sent).toHaveLength(count);
  });

  it('shows the reason when every line is rejected', () => {
    useStudio.getState().loadDataset(new File(['nope'], 'bad.jsonl'));
    const req = lastDatasetRequest();
    useStudio.getState().applyEngineEvent({ type: 'error', id: req.id, message: 'bad.jsonl: no usable row — every line was rejected' });
    expect(useStudio.getState()).toMatchObject({ datasetStatus: 'error', dataset: null });
    expect(useStudio.getState().datasetError).toContain('line');
  });

  it('caps the default max length', () => {
    expect(effectiveMaxLength(null, 256)).toBe(256);
    expect(effectiveMaxLength(null, 32768)).toBe(DEFAULT_MAX_LENGTH_CAP);
    expect(effectiveMaxLength(null, null)).toBe(DEFAULT_MAX_LENGTH_CAP);
    expect(effectiveMaxLength(100, 256)).toBe(100);
  });
});
