// Fuzzing the safetensors reader (issue 14) with fast-check: a valid file with bytes flipped, cut and inserted, and
// headers whose JSON is built from hostile pieces (offsets past the end, overlapping, negative, huge shapes, unknown
// dtypes), open and read every tensor, or end in a SafetensorsError naming the file — never another exception,
// never an allocation past the file's size. Seeds and case counts: testing-fuzz.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemorySource } from './sources/memory.ts';
import { SafetensorsError, SafetensorsFile, writeSafetensors } from './safetensors.ts';
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TEST_TIMEOUT, fuzzBanner, fuzzParams } from './testing-fuzz.ts';

const params = fuzzParams();

/** Opens and reads every tensor (as f32); resolves or throws a SafetensorsError naming `name`, nothing else. */
async function readAll(bytes: Uint8Array, name: string): Promise<void> {
  const source = new MemorySource(name, bytes);
  try {
    const file = await SafetensorsFile.open(source);
    for (const tensor of file.names()) await file.readTensor(tensor, 'f32');
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw new Error(`untyped failure: ${String(e)}`, { cause: e });
    expect(e.message.startsWith(`${name}: `)).toBe(true);
  }
  // Whatever the header claims, nothing past the file is read.
  expect(source.bytesRead).toBeLessThanOrEqual(bytes.length * 2 + 8);
}

function withHeader(header: string, dataBytes: number): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

describe(`safetensors, fuzzed (FUZZ_SEED=${FUZZ_SEED}, ${FUZZ_RUNS} cases each)`, () => {
  it('mutated files open and read, or end in a SafetensorsError naming the file', async () => {
    console.log(fuzzBanner('safetensors'));
    const valid = writeSafetensors(
      {
        'a.weight': { dtype: 'F32', shape: [3, 4], data: Float32Array.from({ length: 12 }, (_, i) => i / 3) },
        'b.weight': { dtype: 'F16', shape: [5], data: new Uint16Array([0x3c00, 0x4000, 0x4200, 0x4400, 0x4500]) },
        'c.bias': { dtype: 'BF16', shape: [2, 1], data: new Uint16Array([0x3f80, 0x4000]) },
      },
      { format: 'pt' },
    );
    const mutation = fc.record({ kind: fc.constantFrom('flip', 'cut', 'insert'), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 6 }), async (mutations) => {
        let bytes = valid.slice();
        for (const m of mutations) {
          const at = m.at % Math.max(1, bytes.length);
          if (m.kind === 'flip') bytes[at] = m.value;
          else if (m.kind === 'cut') bytes = bytes.slice(0, at);
          else bytes = new Uint8Array([...bytes.subarray(0, at), m.value, ...bytes.subarray(at)]);
        }
        await readAll(bytes, 'fuzz.safetensors');
      }),
      params,
    );
  }, FUZZ_TEST_TIMEOUT);

  it('hostile headers (offsets, shapes, dtypes, metadata) are refused with the file named', async () => {
    const number = fc.oneof(fc.integer({ min: -4, max: 64 }), fc.constantFrom(2 ** 31, 2 ** 32, 2 ** 53, 1e300, 0.5, -0));
    const entry = fc.record({
      dtype: fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'F64', 'BOOL', '', 'f32'),
      shape: fc.oneof(fc.array(number, { maxLength: 4 }), fc.constant('x' as unknown as number[])),
      data_offsets: fc.oneof(fc.tuple(number, number), fc.array(number, { maxLength: 3 })),
    });
    const header = fc.dictionary(fc.oneof(fc.constantFrom('__metadata__', 'w', ''), fc.string({ maxLength: 4 })), fc.oneof(entry, fc.constant({ format: 'pt' }) as fc.Arbitrary<unknown>), { maxKeys: 4 });
    await fc.assert(
      fc.asyncProperty(header, fc.integer({ min: 0, max: 128 }), async (h, dataBytes) => {
        await readAll(withHeader(JSON.stringify(h), dataBytes), 'hostile.safetensors');
      }),
      params,
    );
  }, FUZZ_TEST_TIMEOUT);
});
