import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { readModelConfig } from '../../model/runtime/load.ts';
import { nodeFolder } from '../../model/sources/node-file.ts';
import { selectTargetModules } from '../../model/weights.ts';
import { mergeModel, readWhole, type OutputFile } from '../merge.ts';
import { buildAdapterConfig, exportAdapter, importAdapter, zipAdapter } from '../peft.ts';
import { MergeCancelled, progressCounter, writeToDirectory, zipFiles, zipRefusal, ZIP_LIMIT_BYTES, type DirectoryLike, type WritableLike } from './merge.ts';

/** An output file made of the given chunks. */
function output(path: string, chunks: Uint8Array[]): OutputFile {
  return {
    path,
    size: chunks.reduce((s, c) => s + c.length, 0),
    async *chunks() {
      for (const c of chunks) yield c;
    },
  };
}

/** A folder in memory: committed files, plus every write and abort in order. */
class MemoryDirectory implements DirectoryLike {
  readonly dirs = new Map<string, MemoryDirectory>();
  readonly files = new Map<string, Uint8Array>();
  readonly log: string[] = [];
  async getDirectoryHandle(name: string) {
    let d = this.dirs.get(name);
    if (!d) this.dirs.set(name, (d = new MemoryDirectory()));
    return d;
  }
  async getFileHandle(name: string) {
    const dir = this;
    return {
      async createWritable(): Promise<WritableLike> {
        const parts: Uint8Array[] = [];
        return {
          async write(data) {
            dir.log.push(`write ${name} ${data.length}`);
            parts.push(data.slice());
          },
          async close() {
            dir.log.push(`close ${name}`);
            const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
            let at = 0;
            for (const p of parts) {
              all.set(p, at);
              at += p.length;
            }
            dir.files.set(name, all);
          },
          async abort() {
            dir.log.push(`abort ${name}`);
          },
        };
      },
    };
  }
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);

describe('writing a merged model into a folder', () => {
  it('writes each file chunk by chunk into <folder>/ and commits it', async () => {
    const root = new MemoryDirectory();
    const files = [output('model.safetensors', [bytes(10, 1), bytes(7, 2)]), output('config.json', [bytes(3, 3)]), output('empty.txt', [])];
    let counted = 0;
    await writeToDirectory(files, root, 'demo-merged', (n) => (counted += n));
    const dir = root.dirs.get('demo-merged')!;
    expect([...dir.files.keys()]).toEqual(['model.safetensors', 'config.json', 'empty.txt']);
    expect(dir.files.get('model.safetensors')).toEqual(Uint8Array.from([...bytes(10, 1), ...bytes(7, 2)]));
    expect(dir.files.get('empty.txt')!.length).toBe(0);
    expect(dir.log.slice(0, 3)).toEqual(['write model.safetensors 10', 'write model.safetensors 7', 'close model.safetensors']);
    expect(counted).toBe(20);
  });

  it('aborts the file being written when the merge is cancelled or a file comes out short', async () => {
    const root = new MemoryDirectory();
    const controller = new AbortController();
    const files = [output('a.bin', [bytes(4, 1), bytes(4, 2)]), output('b.bin', [bytes(4, 3)])];
    const cancelled = writeToDirectory(files, root, 'm', () => controller.abort(), controller.signal);
    await expect(cancelled).rejects.toBeInstanceOf(MergeCancelled);
    const dir = root.dirs.get('m')!;
    expect(dir.log).toEqual(['write a.bin 4', 'abort a.bin']);
    expect(dir.files.size).toBe(0);

    const short: OutputFile = { ...output('c.bin', [bytes(2, 1)]), size: 5 };
    await expect(writeToDirectory([short], root, 'n', () => {})).rejects.toThrow('c.bin: produced 2 bytes, declared 5');
    expect(root.dirs.get('n')!.log).toEqual(['write c.bin 2', 'abort c.bin']);
  });
});

describe('the .zip fallback', () => {
  it('stores every file under <folder>/, byte for byte', async () => {
    const files = [output('model.safetensors', [bytes(1000, 1), bytes(5, 2)]), output('config.json', [bytes(30, 3)]), output('merges.txt', [])];
    const blob = await zipFiles(files, 'demo-merged', () => {});
    const entries = unzipSync(new Uint8Array(await blob.arrayBuffer()));
    expect(Object.keys(entries)).toEqual(['demo-merged/model.safetensors', 'demo-merged/config.json', 'demo-merged/merges.txt']);
    expect(entries['demo-merged/model.safetensors']).toEqual(Uint8Array.from([...bytes(1000, 1), ...bytes(5, 2)]));
    expect(entries['demo-merged/merges.txt'].length).toBe(0);
    expect(blob.type).toBe('application/zip');
  });

  it('refuses a model above the limit, naming the CLI', () => {
    expect(zipRefusal(ZIP_LIMIT_BYTES)).toBe('');
    const message = zipRefusal(ZIP_LIMIT_BYTES + 1);
    expect(message).toContain('cannot stream a multi-file download');
    expect(message).toContain('npx lora-studio merge');
    expect(zipRefusal(1000 * 1024 ** 2)).toMatch(/^the merged model is 1000 MiB, more than the 200 MiB/);
  });

  it('zips a real merge: the merged model.safetensors, config.json and the tokenizer files', async () => {
    const folder = nodeFolder(join(process.cwd(), 'tests', 'fixtures', 'models', 'llama'));
    const config = await readModelConfig(folder);
    const modules = selectTargetModules(config, ['q_proj']).map((m) => ({
      peftPath: m.peftPath, inFeatures: m.inFeatures, outFeatures: m.outFeatures,
      A: new Float32Array(2 * m.inFeatures).fill(0.1), B: new Float32Array(m.outFeatures * 2).fill(0.2),
    }));
    const files = exportAdapter(modules, buildAdapterConfig({ baseModel: 'llama', rank: 2, alpha: 4, dropout: 0, targetModules: ['q_proj'], fanInFanOut: false, rslora: false }));
    const merged = await mergeModel(folder, await importAdapter(zipAdapter(files), config), 4096);
    try {
      const total = merged.files.reduce((s, f) => s + f.size, 0);
      const reports: [number, number][] = [];
      const counter = progressCounter(total, (d, t) => reports.push([d, t]), () => 0);
      const entries = unzipSync(new Uint8Array(await (await zipFiles(merged.files, 'llama-merged', (n) => counter.add(n))).arrayBuffer()));
      expect(Object.keys(entries).sort()).toEqual(
        ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => `llama-merged/${f}`),
      );
      expect(entries['llama-merged/model.safetensors']).toEqual(await readWhole(merged.files[0]));
      // The first report and the last (all bytes) come; the others are throttled away by the frozen clock.
      expect(reports).toHaveLength(2);
      expect(reports[0][0]).toBeGreaterThan(0);
      expect(reports[0][0]).toBeLessThan(total);
      expect(reports[1]).toEqual([total, total]);
    } finally {
      await merged.close();
    }
  });
});
