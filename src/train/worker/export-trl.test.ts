import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadJsonlDataset, splitEval } from '../../data/index.ts';
import { chatRows } from '../../export/trl-testing.ts';
import { readChatTemplate, readTokenizer } from '../../cli/load.ts';
import { readModelConfig } from '../../model/load.ts';
import { FIXTURES } from '../../model/runtime/testing.ts';
import { nodeFolder } from '../../model/sources/node-file.ts';
import { DEFAULT_CONFIG } from '../config.ts';
import { readWhole } from '../merge.ts';
import { importAdapter } from '../peft.ts';
import type { RunRecord } from '../../store/runs-db.ts';
import { trlConfigFiles, trlOutputFiles } from './export-trl.ts';
import { writeToDirectory, type DirectoryLike, type WritableLike } from './merge.ts';
import { state, type LoadedModel } from './state.ts';
import { truncateRows } from './run-rows.ts';

const LLAMA = join(FIXTURES, 'models', 'llama');

/** A folder in memory, sub-folders included: path → bytes. */
function memoryDirectory(files = new Map<string, Uint8Array>(), prefix = ''): DirectoryLike & { files: Map<string, Uint8Array> } {
  return {
    files,
    async getDirectoryHandle(name: string) {
      return memoryDirectory(files, `${prefix}${name}/`);
    },
    async getFileHandle(name: string) {
      if (name.includes('/')) throw new TypeError(`Name is not allowed: ${name}`); // as the browser answers
      return {
        async createWritable(): Promise<WritableLike> {
          const parts: Uint8Array[] = [];
          return {
            async write(data) { parts.push(data.slice()); },
            async close() { files.set(`${prefix}${name}`, new Uint8Array(parts.flatMap((p) => [...p]))); },
            async abort() {},
          };
        },
      };
    },
  };
}

afterEach(() => {
  state.model = null;
  state.datasets.clear();
});

async function setUp(maxLength: number) {
  const files = nodeFolder(LLAMA);
  const config = await readModelConfig(files);
  const tokenizer = (await readTokenizer(files, LLAMA))!;
  const template = await readChatTemplate(LLAMA, tokenizer);
  const model = { id: 'load-1', summary: { name: 'llama-fixture' }, config, files, tokenizer, template, quant: 'none', source: { kind: 'hub', repo: 'org/llama-fixture' } } as unknown as LoadedModel;
  state.model = model;
  const text = chatRows(10);
  const file = new File([text], 'chat.jsonl');
  const data = await loadJsonlDataset([new TextEncoder().encode(text)], { tokenizer, template, maxLength, fileName: 'chat.jsonl' });
  state.datasets.set('ds-1', { id: 'ds-1', modelId: 'load-1', data, summary: { fileName: 'chat.jsonl', rows: data.rows.length, format: 'messages' } as never, request: { file, maxLength, trainOnPrompt: false } });
  const adapter = await importAdapter(nodeFolder(join(FIXTURES, 'golden', 'train_llama_adapter')), config);
  return { model, data, adapter, text };
}

describe('Runs: "Export for a GPU cluster" (worker side)', () => {
  it('the loaded dataset truncated and split as the training handler does, with the source lines, into nested folders', async () => {
    const { model, data, adapter, text } = await setUp(80);
    const config = { ...DEFAULT_CONFIG, maxLength: 40, evalSplit: 0.3, seed: 5, rank: adapter.rank };
    const record = { name: 'demo · r4', config, dataset: { fileName: 'chat.jsonl', rows: data.rows.length, format: 'messages', evalRows: 3 } } as unknown as RunRecord;
    const files = await trlOutputFiles(record, model, adapter);

    // What the training handler trains on: truncateRows, then splitEval with the run's seed.
    const { rows } = truncateRows(data.rows, 40);
    const split = splitEval(rows, 0.3, 5);
    const text_ = async (path: string) => new TextDecoder().decode(await readWhole(files.find((f) => f.path === path)!));
    const jsonl = async (path: string) => (await text_(path)).trim().split('\n').map((l) => JSON.parse(l));
    const plain = (r: { input_ids: Int32Array; labels: Int32Array }) => ({ input_ids: [...r.input_ids], labels: [...r.labels] });
    expect(await jsonl('data/train.jsonl')).toEqual(split.train.map(plain));
    expect(await jsonl('data/eval.jsonl')).toEqual(split.eval.map(plain));
    expect(split.eval.length).toBe(3);
    expect(rows.some((r) => r.input_ids.length === 40)).toBe(true); // truncation happened
    // Each source line, through the loader at the run's length, is its exported row (same order).
    for (const set of ['train', 'eval']) {
      const again = await loadJsonlDataset([new TextEncoder().encode(await text_(`data/${set}.source.jsonl`))], { tokenizer: model.tokenizer, template: model.template, maxLength: 40 });
      expect(again.rows.map(plain)).toEqual(await jsonl(`data/${set}.jsonl`));
    }
    expect(text.split('\n').filter(Boolean)).toHaveLength(data.rows.length + 1); // the bad line is in no export

    const run = JSON.parse(await text_('run.json'));
    expect(run.model.id).toBe('org/llama-fixture');
    expect(run.method.lora.target_modules).toEqual(adapter.config.target_modules);
    expect(run.config).toEqual(config);

    const dir = memoryDirectory();
    await writeToDirectory(files, dir, 'demo-r4-trl', () => {});
    expect([...dir.files.keys()].sort()).toContain('demo-r4-trl/data/train.jsonl');
    expect([...dir.files.keys()].sort()).toContain('demo-r4-trl/accelerate/ddp.yaml');
  });

  it('Train screen: the form\'s config over the loaded model and dataset, targets by the method registry, checked first', async () => {
    const { data } = await setUp(80);
    const config = { ...DEFAULT_CONFIG, maxLength: 64, targets: ['attention'], evalSplit: 0 };
    const to = { kind: 'zip' } as const;
    const files = await trlConfigFiles({ type: 'export-trl', id: 'x', config, name: ' ', datasetId: 'ds-1', to });
    const run = JSON.parse(new TextDecoder().decode(await readWhole(files.find((f) => f.path === 'run.json')!)));
    expect(run.name).toBe('llama-fixture · r8 · chat.jsonl');
    expect(run.method.lora.target_modules).toEqual(['k_proj', 'o_proj', 'q_proj', 'v_proj']);
    expect(run.data).toMatchObject({ train_rows: data.rows.length, eval_rows: 0 });
    expect(files.map((f) => f.path)).not.toContain('data/eval.jsonl');
    await expect(trlConfigFiles({ type: 'export-trl', id: 'x', config: { ...config, rank: 0 }, name: '', datasetId: 'ds-1', to })).rejects.toThrow(/rank = 0: must be an integer/);
    await expect(trlConfigFiles({ type: 'export-trl', id: 'x', config: { ...config, targets: ['nope'] }, name: '', datasetId: 'ds-1', to })).rejects.toThrow(/^targets nope: /);
    await expect(trlConfigFiles({ type: 'export-trl', id: 'x', config: { ...config, maxLength: 4096 }, name: '', datasetId: 'ds-1', to })).rejects.toThrow("maxLength = 4096: must be ≤ the model's 128 positions");
    await expect(trlConfigFiles({ type: 'export-trl', id: 'x', config, name: '', datasetId: 'ds-9', to })).rejects.toThrow('dataset ds-9 is not loaded');
  });

  it('refuses without the run\'s dataset loaded, naming it', async () => {
    const { model, adapter } = await setUp(80);
    const record = { name: 'other', config: DEFAULT_CONFIG, dataset: { fileName: 'other.jsonl', rows: 7, format: 'messages', evalRows: 0 } } as unknown as RunRecord;
    await expect(trlOutputFiles(record, model, adapter)).rejects.toThrow('"other" trained on other.jsonl (7 rows): load that dataset on the Data screen');
  });
});
