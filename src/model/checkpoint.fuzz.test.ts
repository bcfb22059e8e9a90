// Fuzzing the model checkpoint reader (issue 14): a sharded model (model.safetensors.index.json and two shards)
// whose index has entries removed, added or given hostile values (paths outside the folder, missing shards, a tensor
// in the wrong shard, non-strings) and whose shards have bytes flipped, cut and inserted. Checkpoint.open and reading
// every tensor either work or end in a SafetensorsError naming the folder's file — never another exception.
// Seeds and case counts: testing-fuzz.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Checkpoint, INDEX_FILE } from './checkpoint.ts';
import { SafetensorsError, writeSafetensors } from './safetensors.ts';
import { memoryFolder } from './sources/memory.ts';
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TEST_TIMEOUT, fuzzBanner, fuzzParams } from './testing-fuzz.ts';

const SHARDS = {
  'model-00001-of-00002.safetensors': writeSafetensors({
    'model.embed_tokens.weight': { dtype: 'F32', shape: [4, 3], data: Float32Array.from({ length: 12 }, (_, i) => i) },
    'model.norm.weight': { dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0x3c00, 0x4000]) },
  }, { format: 'pt' }),
  'model-00002-of-00002.safetensors': writeSafetensors({
    'model.layers.0.mlp.down_proj.weight': { dtype: 'BF16', shape: [3, 2], data: new Uint16Array(6).fill(0x3f80) },
  }, { format: 'pt' }),
};
const WEIGHT_MAP: Record<string, unknown> = {
  'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
  'model.norm.weight': 'model-00001-of-00002.safetensors',
  'model.layers.0.mlp.down_proj.weight': 'model-00002-of-00002.safetensors',
};
const FOLDER = 'org/sharded';

const tensorName = fc.constantFrom(...Object.keys(WEIGHT_MAP), 'lm_head.weight', '', '__metadata__');
const shardValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...Object.keys(SHARDS), '../model-00001-of-00002.safetensors', '/etc/passwd', 'a/../../x', '..\\x', 'missing.safetensors', '', 'model.safetensors.index.json'),
  fc.constantFrom(null, 1, true, [], {}),
  fc.string({ maxLength: 8 }),
);
const indexEdit = fc.record({ tensor: tensorName, remove: fc.boolean(), shard: shardValue });
const byteEdit = fc.record({ shard: fc.constantFrom(...Object.keys(SHARDS)), kind: fc.constantFrom('flip', 'cut', 'insert'), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });
const indexShape = fc.constantFrom('map', 'map', 'map', 'no-map', 'map-is-list', 'not-json', 'empty-map');

describe(`model checkpoints (sharded), fuzzed (FUZZ_SEED=${FUZZ_SEED}, ${FUZZ_RUNS} cases)`, () => {
  it('a hostile index and damaged shards open and read, or end in a SafetensorsError naming the file', async () => {
    console.log(fuzzBanner('model checkpoints'));
    await fc.assert(
      fc.asyncProperty(fc.array(indexEdit, { maxLength: 3 }), fc.array(byteEdit, { maxLength: 3 }), indexShape, async (edits, bytes, shape) => {
        const map = { ...WEIGHT_MAP };
        for (const e of edits) {
          if (e.remove) delete map[e.tensor];
          else map[e.tensor] = e.shard;
        }
        const shards: Record<string, Uint8Array> = Object.fromEntries(Object.entries(SHARDS).map(([k, v]) => [k, v.slice()]));
        for (const b of bytes) {
          let s = shards[b.shard];
          const at = b.at % Math.max(1, s.length);
          if (b.kind === 'flip') s[at] = b.value;
          else if (b.kind === 'cut') s = s.slice(0, at);
          else s = new Uint8Array([...s.subarray(0, at), b.value, ...s.subarray(at)]);
          shards[b.shard] = s;
        }
        const index = shape === 'not-json' ? '{"weight_map": {' : JSON.stringify(
          shape === 'no-map' ? { metadata: {} } : shape === 'map-is-list' ? { weight_map: Object.keys(map) } : { weight_map: shape === 'empty-map' ? {} : map },
        );
        try {
          const ck = await Checkpoint.open(memoryFolder({ ...shards, [INDEX_FILE]: index }, FOLDER));
          for (const name of ck.names()) await ck.readTensor(name, 'f32');
          // What opened is what the index names, each tensor in the shard it names.
          expect(ck.names().sort()).toEqual(Object.keys(map).sort());
        } catch (e) {
          if (!(e instanceof SafetensorsError)) throw new Error(`untyped failure: ${String(e)}`, { cause: e });
          expect(e.message.startsWith(`${FOLDER}`), e.message).toBe(true);
        }
      }),
      fuzzParams(),
    );
  }, FUZZ_TEST_TIMEOUT);
});
