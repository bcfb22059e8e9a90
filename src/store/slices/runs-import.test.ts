// The Runs screen's adapter import, merge download and "Continue training": what the slices send to the engine and
// what they make of its answers (the worker's side is tested in src/train/worker/{import,merge}.test.ts).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, PRESETS } from '../../train/config.ts';
import type { DatasetSummary, EngineRequest, ModelSummary } from '../../train/protocol.ts';
import { setDownloader } from '../downloads.ts';
import { linkEngine } from '../engine-link.ts';
import { RunsDb } from '../runs-db.ts';
import { useStudio } from '../studio.ts';
import { adapterFolderFiles, canPickFolder, importedWhat, linkRunsDb, NO_FOLDER_PICKER } from './runs.ts';
import { MemoryKeyValue } from '../testing-kv.ts';


const model = { name: 'demo-llama', maxPositions: 256, defaultTargets: ['q_proj', 'v_proj'] } as ModelSummary;
const file = (name: string) => new File(['x'], name);
let sent: EngineRequest[];
let saved: { name: string; blob: Blob }[];

beforeEach(() => {
  sent = [];
  saved = [];
  linkEngine({ send: (r) => sent.push(r) });
  linkRunsDb(new RunsDb(new MemoryKeyValue(), { estimate: async () => null }));
  setDownloader((blob, name) => saved.push({ name, blob }));
  useStudio.setState({
    model, dataset: { fileName: 'chat.jsonl', rows: 8 } as DatasetSummary, datasetId: 'dataset-1', liveRun: null, trainError: '',
    trainConfig: { ...DEFAULT_CONFIG }, trainFrom: null, runName: '', merges: {},
    adapterImport: { phase: 'idle', request: null, done: 0, total: 0, message: '', warnings: [] },
  });
});
afterEach(() => {
  delete (globalThis as { showDirectoryPicker?: unknown }).showDirectoryPicker;
});

describe('an adapter folder', () => {
  it("keeps the shallowest adapter folder's own files, named after it", () => {
    const picked = [
      { path: 'out/adapter_config.json', file: file('adapter_config.json') },
      { path: 'out/adapter_model.safetensors', file: file('adapter_model.safetensors') },
      { path: 'out/README.md', file: file('README.md') },
      { path: 'out/checkpoint-50/adapter_config.json', file: file('adapter_config.json') },
      { path: 'out/checkpoint-50/adapter_model.safetensors', file: file('adapter_model.safetensors') },
    ];
    const { files, name } = adapterFolderFiles(picked);
    expect(name).toBe('out');
    expect(files).toEqual([picked[0].file, picked[1].file, picked[2].file]);
    // A drop gives paths inside the dropped folder: no folder name to take.
    expect(adapterFolderFiles([{ path: 'adapter_config.json', file: picked[0].file }], 'dropped').name).toBe('dropped');
  });

  it('says what to pick when there is no adapter_config.json', () => {
    expect(() => adapterFolderFiles([{ path: 'm/model.safetensors', file: file('model.safetensors') }])).toThrow(/no adapter_config\.json in the folder/);
  });
});

describe('importing', () => {
  it('needs the base model loaded', () => {
    useStudio.setState({ model: null });
    useStudio.getState().importAdapter({ kind: 'zip', file: file('a.zip') });
    expect(sent).toEqual([]);
    expect(useStudio.getState().adapterImport).toMatchObject({ phase: 'error', message: expect.stringMatching(/Load the base model first/) });
  });

  it('sends the source, shows the download, then the imported run', async () => {
    const zip = file('pirate.zip');
    useStudio.getState().importAdapter({ kind: 'zip', file: zip }, 'pirate');
    const req = sent[0] as Extract<EngineRequest, { type: 'import-adapter' }>;
    expect(req).toMatchObject({ type: 'import-adapter', source: { kind: 'zip', file: zip }, name: 'pirate' });
    expect(req.runId).toMatch(/^[a-z0-9]+-[a-z0-9]+$/);
    useStudio.getState().importAdapter({ kind: 'zip', file: zip }); // one at a time
    expect(sent).toHaveLength(1);

    useStudio.getState().applyEngineEvent({ type: 'progress', id: req.id, stage: 'download', done: 5, total: 10 });
    expect(useStudio.getState().adapterImport).toMatchObject({ phase: 'importing', done: 5, total: 10 });
    useStudio.getState().applyEngineEvent({ type: 'adapter-imported', id: req.id, runId: req.runId, name: 'pirate', modules: 4, warnings: ['w'] });
    expect(useStudio.getState().adapterImport).toMatchObject({ phase: 'done', warnings: ['w'], message: expect.stringContaining('Imported "pirate": 4 LoRA modules') });
  });

  it("shows the worker's refusal as it is", () => {
    useStudio.getState().importAdapter({ kind: 'hub', repo: 'org/x', token: 'hf_t' });
    const req = sent[0];
    useStudio.getState().applyEngineEvent({ type: 'error', id: (req as { id: string }).id, message: 'org/x:\n  tensor "…" has shape [4, 16], expected [4, 32]' });
    expect(useStudio.getState().adapterImport).toMatchObject({ phase: 'error', message: 'org/x:\n  tensor "…" has shape [4, 16], expected [4, 32]' });
  });
});

describe('merging', () => {
  it('asks for a .zip and saves the Blob it gets', async () => {
    await useStudio.getState().mergeRun('run-1', 'f16', 'zip');
    const req = sent[0] as Extract<EngineRequest, { type: 'merge-model' }>;
    expect(req).toMatchObject({ type: 'merge-model', runId: 'run-1', dtype: 'f16', to: { kind: 'zip' } });
    useStudio.getState().applyEngineEvent({ type: 'progress', id: req.id, stage: 'merge', done: 1, total: 4 });
    expect(useStudio.getState().merges['run-1']).toMatchObject({ phase: 'merging', done: 1, total: 4 });
    const blob = new Blob([new Uint8Array(4)]);
    useStudio.getState().applyEngineEvent({
      type: 'merged', id: req.id, runId: 'run-1', files: [{ path: 'model.safetensors', size: 3 }, { path: 'config.json', size: 1 }],
      zip: { fileName: 'demo-merged.zip', blob },
    });
    expect(saved).toEqual([{ name: 'demo-merged.zip', blob }]);
    expect(useStudio.getState().merges['run-1']).toMatchObject({ phase: 'done', message: expect.stringContaining('demo-merged.zip (2 files') });
  });

  it('says what to do when the browser cannot save into a folder', async () => {
    expect(canPickFolder()).toBe(false);
    await useStudio.getState().mergeRun('run-1', 'f16', 'folder');
    expect(sent).toEqual([]);
    expect(useStudio.getState().merges['run-1']).toMatchObject({ phase: 'error', message: NO_FOLDER_PICKER });
    expect(NO_FOLDER_PICKER).toContain('npx lora-studio merge');
  });

  it('sends the picked folder to the worker; cancel and a closed picker', async () => {
    const handle = { kind: 'directory', name: 'models' } as unknown as FileSystemDirectoryHandle;
    let options: unknown;
    (globalThis as { showDirectoryPicker?: unknown }).showDirectoryPicker = async (o: unknown) => ((options = o), handle);
    await useStudio.getState().mergeRun('run-2', 'f32', 'folder');
    expect(options).toMatchObject({ mode: 'readwrite' });
    const req = sent[0] as Extract<EngineRequest, { type: 'merge-model' }>;
    expect(req.to).toEqual({ kind: 'directory', handle });
    useStudio.getState().cancelMerge('run-2');
    expect(sent[1]).toEqual({ type: 'abort-merge', id: req.id });
    useStudio.getState().applyEngineEvent({ type: 'error', id: req.id, message: 'the merge was cancelled' });
    expect(useStudio.getState().merges['run-2'].phase).toBe('cancelled');

    (globalThis as { showDirectoryPicker?: unknown }).showDirectoryPicker = async () => {
      throw new DOMException('closed', 'AbortError');
    };
    await useStudio.getState().mergeRun('run-3', 'f16', 'folder');
    expect(sent).toHaveLength(2);
    expect(useStudio.getState().merges['run-3']).toBeUndefined();
  });
});

describe('continuing a run', () => {
  const run = { id: 'run-9', name: 'pirate', config: { ...DEFAULT_CONFIG, rank: 16, alpha: 32, rslora: true, targets: ['model.layers.0.self_attn.q_proj'] } };

  it("takes the adapter's rank, alpha, rsLoRA and targets, and keeps them through edits and presets", () => {
    useStudio.getState().continueFromRun(run);
    let s = useStudio.getState();
    expect(s.screen).toBe('train');
    expect(s.runName).toBe('pirate (continued)');
    expect(s.trainConfig).toMatchObject({ rank: 16, alpha: 32, rslora: true, targets: ['model.layers.0.self_attn.q_proj'] });
    s.setTrainConfig({ rank: 4, lr: 1e-3 });
    s.applyTrainPreset('quality');
    s = useStudio.getState();
    expect(s.trainConfig).toMatchObject({ rank: 16, alpha: 32, rslora: true, targets: ['model.layers.0.self_attn.q_proj'], lr: PRESETS.quality.config.lr });
  });

  it('starts with initFromRunId once; a fresh LoRA afterwards', () => {
    useStudio.getState().continueFromRun(run);
    useStudio.getState().startTraining();
    const req = sent.find((r) => r.type === 'start-training') as Extract<EngineRequest, { type: 'start-training' }>;
    expect(req.initFromRunId).toBe('run-9');
    expect(req.config.rank).toBe(16);
    useStudio.getState().applyEngineEvent({
      type: 'run-started', id: req.id, runId: req.runId, name: 'pirate (continued)', totalSteps: 1, trainable: '', trainableParams: 1,
      resumedFrom: null, trainRows: 8, evalRows: 0, config: req.config,
    });
    expect(useStudio.getState().trainFrom).toBeNull();
  });

  it('can be undone before starting', () => {
    useStudio.getState().continueFromRun(run);
    useStudio.getState().clearTrainFrom();
    useStudio.getState().setTrainConfig({ rank: 4 });
    expect(useStudio.getState().trainConfig.rank).toBe(4);
  });
});

describe('importedWhat', () => {
  it('names what an imported adapter holds, per kind', () => {
    expect(importedWhat('LoRA', 4)).toBe('4 LoRA modules');
    expect(importedWhat('P-tuning', 8)).toBe('a P-tuning adapter of 8 virtual tokens');
    expect(importedWhat('Houlsby adapters', 1)).toBe('Houlsby adapters on 1 module');
  });
});
