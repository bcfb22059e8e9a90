import { describe, expect, it } from 'vitest';
import { Checkpoint } from './checkpoint.ts';
import { SafetensorsError, writeSafetensors } from './safetensors.ts';
import { memoryFolder } from './sources/memory.ts';

const shardA = writeSafetensors({ 'a.weight': { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
const shardB = writeSafetensors({ 'b.weight': { dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) } });
const index = (map: Record<string, unknown>) => JSON.stringify({ metadata: { total_size: 10 }, weight_map: map });
const good = { 'a.weight': 'model-00001-of-00002.safetensors', 'b.weight': 'model-00002-of-00002.safetensors' };

async function openError(files: Record<string, Uint8Array | string>): Promise<SafetensorsError> {
  try {
    await Checkpoint.open(memoryFolder(files, 'dir'));
  } catch (e) {
    expect(e).toBeInstanceOf(SafetensorsError);
    return e as SafetensorsError;
  }
  throw new Error('expected the checkpoint to be rejected');
}

describe('Checkpoint', () => {
  it('opens a single model.safetensors', async () => {
    const ckpt = await Checkpoint.open(memoryFolder({ 'model.safetensors': shardA }, 'dir'));
    expect(ckpt.names()).toEqual(['a.weight']);
    expect(Array.from(await ckpt.readTensor('a.weight', 'f32'))).toEqual([1, 2]);
  });

  it('opens shards through the index and finds each tensor in its shard', async () => {
    const ckpt = await Checkpoint.open(
      memoryFolder({ 'model.safetensors.index.json': index(good), 'model-00001-of-00002.safetensors': shardA, 'model-00002-of-00002.safetensors': shardB }, 'dir'),
    );
    expect(ckpt.names().sort()).toEqual(['a.weight', 'b.weight']);
    expect(ckpt.fileOf('b.weight').name).toBe('dir/model-00002-of-00002.safetensors');
    expect(Array.from(await ckpt.readTensor('b.weight', 'f32'))).toEqual([1]);
    expect(ckpt.totalBytes()).toBe(10);
  });

  it('says when there are no weights at all', async () => {
    const err = await openError({ 'config.json': '{}' });
    expect(err.message).toMatch(/^dir: no model.safetensors or model.safetensors.index.json/);
  });

  const cases: [string, Record<string, Uint8Array | string>, RegExp][] = [
    ['an index that is not JSON', { 'model.safetensors.index.json': '{weight_map' }, /dir\/model.safetensors.index.json: not valid JSON/],
    ['an index without weight_map', { 'model.safetensors.index.json': '{"metadata": {}}' }, /"weight_map" must be an object/],
    [
      'a missing shard',
      { 'model.safetensors.index.json': index(good), 'model-00001-of-00002.safetensors': shardA },
      /dir\/model.safetensors.index.json: tensor "b.weight": is mapped to shard "model-00002-of-00002.safetensors", which is not in dir/,
    ],
    [
      'a tensor in two shards',
      { 'model.safetensors.index.json': index({ 'a.weight': 's1.safetensors', x: 's2.safetensors' }), 's1.safetensors': shardA, 's2.safetensors': shardA },
      /dir\/s2.safetensors: tensor "a.weight": also in shard dir\/s1.safetensors/,
    ],
    [
      'a tensor mapped to a shard that lacks it',
      { 'model.safetensors.index.json': index({ 'a.weight': 's1.safetensors', 'b.weight': 's1.safetensors' }), 's1.safetensors': shardA },
      /tensor "b.weight": is mapped to shard "s1.safetensors", which has no such tensor/,
    ],
    [
      'a tensor mapped to the wrong shard',
      { 'model.safetensors.index.json': index({ 'a.weight': 's2.safetensors', 'b.weight': 's1.safetensors' }), 's1.safetensors': shardA, 's2.safetensors': shardB },
      /tensor "a.weight": is mapped to shard "s2.safetensors" but is in dir\/s1.safetensors/,
    ],
    [
      'a shard tensor the index does not list',
      { 'model.safetensors.index.json': index({ 'a.weight': 's1.safetensors' }), 's1.safetensors': writeSafetensors({ 'a.weight': { dtype: 'F32', shape: [1], data: new Float32Array(1) }, extra: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }) },
      /dir\/s1.safetensors: tensor "extra": is not listed in dir\/model.safetensors.index.json/,
    ],
    ['a shard path leaving the folder', { 'model.safetensors.index.json': index({ 'a.weight': '../secret.safetensors' }) }, /tensor "a.weight": shard path "..\/secret.safetensors" leaves the model folder/],
    ['a non-string shard', { 'model.safetensors.index.json': index({ 'a.weight': 3 }) }, /tensor "a.weight": shard must be a file name, got 3/],
    ['a corrupt shard', { 'model.safetensors.index.json': index({ 'a.weight': 's1.safetensors' }), 's1.safetensors': shardA.subarray(0, 20) }, /dir\/s1.safetensors: header length \d+ is beyond the end of the file/],
  ];
  for (const [what, files, pattern] of cases) {
    it(`rejects ${what}`, async () => {
      expect((await openError(files)).message).toMatch(pattern);
    });
  }
});
