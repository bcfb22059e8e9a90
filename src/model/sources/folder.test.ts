import { describe, expect, it } from 'vitest';
import { Checkpoint, readJsonFile, type ModelFiles } from '../checkpoint.ts';
import { writeSafetensors } from '../safetensors.ts';
import { directoryHandleFolder, droppedFolder, fileListFolder, pickFolder } from './folder.ts';
import { FakeDirectoryHandle, fakeDataTransfer, fakeFileList } from './testing-fs.ts';

const weights = writeSafetensors({ 'lm_head.weight': { dtype: 'F32', shape: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => i - 5.5) } });
const model = {
  'config.json': '{"model_type":"gpt2"}',
  'tokenizer.json': '{"model":{}}',
  'model.safetensors': weights,
  'extra/notes.txt': 'nested',
};

/** Every read a source makes goes through Blob.slice of a range, never the whole file. */
function countSlices(): { restore(): void; calls: [number, number][] } {
  const original = Blob.prototype.slice;
  const calls: [number, number][] = [];
  Blob.prototype.slice = function (this: Blob, start?: number, end?: number, type?: string) {
    calls.push([start ?? 0, end ?? this.size]);
    return original.call(this, start, end, type);
  };
  return { calls, restore: () => (Blob.prototype.slice = original) };
}

async function checkModelFolder(folder: ModelFiles): Promise<void> {
  expect(await readJsonFile(folder, 'config.json')).toEqual({ model_type: 'gpt2' });
  expect(await folder.open('generation_config.json')).toBeNull();
  const nested = await folder.open('extra/notes.txt');
  expect(new TextDecoder().decode(await nested!.read(0, nested!.size))).toBe('nested');
  const slices = countSlices();
  try {
    const checkpoint = await Checkpoint.open(folder);
    expect(Array.from(await checkpoint.readTensor('lm_head.weight', 'f32'))).toEqual(Array.from({ length: 12 }, (_, i) => i - 5.5));
  } finally {
    slices.restore();
  }
  expect(slices.calls.length).toBeGreaterThan(1);
  expect(slices.calls.every(([a, b]) => b - a < weights.length)).toBe(true);
}

describe('folder sources', () => {
  it('reads a FileSystemDirectoryHandle folder, walking subfolders; absent files are null', async () => {
    const handle = FakeDirectoryHandle.from('tiny-gpt2', model);
    const folder = directoryHandleFolder(handle.asHandle());
    expect(folder.name).toBe('tiny-gpt2');
    await checkModelFolder(folder);
    expect(await folder.open('extra')).toBeNull(); // a folder, not a file
    expect(await folder.open('config.json/x')).toBeNull(); // a file, not a folder
    expect(await folder.open('../config.json')).toBeNull();
    expect((await folder.open('model.safetensors'))!.name).toBe('tiny-gpt2/model.safetensors');
  });

  it('reads an <input webkitdirectory> FileList without its top folder', async () => {
    const folder = fileListFolder(fakeFileList('my-model', model));
    expect(folder.name).toBe('my-model');
    await checkModelFolder(folder);
    expect(await folder.open('my-model/config.json')).toBeNull();
  });

  it('reads a dropped folder, through every readEntries batch', async () => {
    const dropped = FakeDirectoryHandle.from('dropped-model', model);
    const folder = await droppedFolder(fakeDataTransfer([dropped]));
    expect(folder.name).toBe('dropped-model');
    await checkModelFolder(folder); // 4 entries at the top, handed out 2 at a time
  });

  it('reads dropped loose files as one folder', async () => {
    const loose = FakeDirectoryHandle.from('x', { 'config.json': model['config.json'], 'model.safetensors': weights });
    const folder = await droppedFolder(fakeDataTransfer([...loose.children.values()]));
    expect(folder.name).toBe('dropped files');
    expect(await readJsonFile(folder, 'config.json')).toEqual({ model_type: 'gpt2' });
    expect((await Checkpoint.open(folder)).names()).toEqual(['lm_head.weight']);
  });

  it('says what to do when nothing usable is dropped or there is no picker', async () => {
    await expect(droppedFolder(fakeDataTransfer([]))).rejects.toThrow(/drop a model folder/);
    await expect(pickFolder()).rejects.toThrow(/cannot open folders with a picker: drop the model folder/);
  });

  it('pickFolder opens the folder the picker returns', async () => {
    const handle = FakeDirectoryHandle.from('picked', model);
    const g = globalThis as { showDirectoryPicker?: unknown };
    g.showDirectoryPicker = async () => handle;
    try {
      const folder = await pickFolder();
      expect(folder.name).toBe('picked');
      expect(await readJsonFile(folder, 'config.json')).toEqual({ model_type: 'gpt2' });
    } finally {
      delete g.showDirectoryPicker;
    }
  });
});
