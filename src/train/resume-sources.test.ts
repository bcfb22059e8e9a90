// What a run keeps of its model and dataset loads for a one-click resume after a closed tab.
import { describe, expect, it } from 'vitest';
import { MAX_KEPT_DATASET_BYTES, resumeSourcesFor } from './resume-sources.ts';

const options = { maxLength: 64, trainOnPrompt: false };

describe('resumeSourcesFor', () => {
  it('keeps a bundled model and a sample dataset URL with its load options', () => {
    const s = resumeSourcesFor('run-1', { source: { kind: 'bundled', path: 'models/demo-llama' }, quant: 'nf4', name: 'demo-llama' }, { file: { url: 'http://127.0.0.1/datasets/a.jsonl', name: 'a.jsonl' }, ...options, format: 'openai' });
    expect(s).toEqual({
      runId: 'run-1',
      model: { source: { kind: 'bundled', path: 'models/demo-llama' }, quant: 'nf4', name: 'demo-llama' },
      dataset: { file: { url: 'http://127.0.0.1/datasets/a.jsonl', name: 'a.jsonl' }, name: 'a.jsonl', maxLength: 64, trainOnPrompt: false, format: 'openai' },
    });
  });

  it('never stores a Hub token (the files are cached by then)', () => {
    const s = resumeSourcesFor('r', { source: { kind: 'hub', repo: 'org/m', revision: 'main', token: 'hf_secret', baseUrl: 'http://127.0.0.1:9/' }, quant: 'none', name: 'org/m' }, { file: { url: 'u', name: 'n' }, ...options });
    expect(s.model?.source).toEqual({ kind: 'hub', repo: 'org/m', revision: 'main', baseUrl: 'http://127.0.0.1:9/' });
    expect(JSON.stringify(s)).not.toContain('hf_secret');
  });

  it('keeps no local model folder, and no dropped file over the limit', () => {
    const folder = resumeSourcesFor('r', { source: { kind: 'folder', files: [new File(['{}'], 'config.json')] }, quant: 'none', name: 'm' }, { file: new File(['{"text":"a"}\n'], 'small.jsonl'), ...options });
    expect(folder.model).toBeNull();
    expect(folder.dataset).toMatchObject({ name: 'small.jsonl', maxLength: 64 });
    expect(folder.dataset?.file).toBeInstanceOf(File);
    const big = new File([new Uint8Array(MAX_KEPT_DATASET_BYTES + 1)], 'big.jsonl');
    expect(resumeSourcesFor('r', { source: { kind: 'bundled', path: 'm' }, quant: 'none', name: 'm' }, { file: big, ...options }).dataset).toBeNull();
  });
});
