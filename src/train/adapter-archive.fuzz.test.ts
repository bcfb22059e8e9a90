// Fuzzing the adapter archive reader (issue 14) with fast-check: mutated archives (bytes flipped, cut, inserted) and
// hostile entry names either open or end in an AdapterError naming the archive: never another exception, never a
// hang. Seeds and case counts: src/model/testing-fuzz.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import type { ModelConfig } from '../model/config.ts';
import { readModelConfig } from '../model/load.ts';
import { SafetensorsError } from '../model/safetensors.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { selectTargetModules } from '../model/weights.ts';
import { openAdapterArchive } from './adapter-archive.ts';
import { AdapterError } from './adapter-error.ts';
import { buildAdapterConfig, exportAdapter, importAdapter, zipAdapter } from './peft.ts';
import { deflated, rawZip } from './testing-archive.ts';
import { FUZZ_RUNS, FUZZ_SEED, FUZZ_TEST_TIMEOUT, fuzzBanner, fuzzParams } from '../model/testing-fuzz.ts';

const params = fuzzParams();

const fixture = (name: string) => join(__dirname, '..', '..', 'tests', 'fixtures', 'models', name);

async function adapterZip(model: ModelConfig) {
  const modules = selectTargetModules(model, ['q_proj', 'v_proj']).map((m, i) => ({
    peftPath: m.peftPath,
    inFeatures: m.inFeatures,
    outFeatures: m.outFeatures,
    A: Float32Array.from({ length: 2 * m.inFeatures }, (_, j) => Math.sin(i + j)),
    B: Float32Array.from({ length: m.outFeatures * 2 }, (_, j) => Math.cos(i + j)),
  }));
  return exportAdapter(modules, buildAdapterConfig({ baseModel: 'x', rank: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'], fanInFanOut: false, rslora: false }));
}

/** Resolves, or rejects with a typed error whose message starts with the archive's name. */
async function expectTyped(run: Promise<unknown>, file: string): Promise<void> {
  try {
    await run;
  } catch (e) {
    if (!(e instanceof AdapterError || e instanceof SafetensorsError)) throw new Error(`untyped failure: ${String(e)}`, { cause: e });
    if (e instanceof AdapterError) expect(e.message.startsWith(file)).toBe(true);
  }
}

describe(`adapter archives, fuzzed (FUZZ_SEED=${FUZZ_SEED}, ${FUZZ_RUNS} cases each)`, () => {
  it('mutated archives open or end in a typed error naming the archive', async () => {
    console.log(fuzzBanner('adapter archives'));
    const model = await readModelConfig(nodeFolder(fixture('llama')));
    const files = await adapterZip(model);
    const bases = [zipAdapter(files), zipSync({ 'run/adapter_config.json': files['adapter_config.json'], 'run/adapter_model.safetensors': files['adapter_model.safetensors'] }, { level: 0 })];
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), value: fc.constant(0) }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: bases.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 8 }), async (which, mutations) => {
        let bytes = bases[which].slice();
        for (const m of mutations) {
          const at = m.at % Math.max(1, bytes.length);
          if (m.kind === 'flip') bytes[at] = m.value;
          else if (m.kind === 'cut') bytes = bytes.slice(0, at);
          else bytes = new Uint8Array([...bytes.subarray(0, at), m.value, ...bytes.subarray(at)]);
        }
        await expectTyped(importAdapter(bytes, model, 'fuzz.zip'), 'fuzz.zip');
      }),
      params,
    );
  }, FUZZ_TEST_TIMEOUT);

  it('hostile entry names and declared sizes are refused with the entry named, or stay inside the archive', async () => {
    const model = await readModelConfig(nodeFolder(fixture('llama')));
    const files = await adapterZip(model);
    const segment = fc.oneof(fc.constantFrom('..', '.', '', 'run', 'C:', '\\..', 'adapter_config.json', 'adapter_model.safetensors', '__MACOSX'), fc.string({ maxLength: 6 }));
    const name = fc.tuple(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.constantFrom('/', '\\')).map(([parts, sep]) => parts.join(sep));
    await fc.assert(
      fc.asyncProperty(name, name, fc.option(fc.nat({ max: 2 ** 32 - 1 })), async (configName, weightsName, declared) => {
        const weights = deflated(weightsName, files['adapter_model.safetensors']);
        const zip = rawZip([deflated(configName, files['adapter_config.json']), declared === null ? weights : { ...weights, size: declared }]);
        try {
          const folder = await openAdapterArchive(zip, model, 'names.zip');
          expect(await folder.open('adapter_config.json')).not.toBeNull();
          for (const n of [configName, weightsName].map((x) => x.replace(/\\/g, '/'))) {
            expect(n.startsWith('/') || /^[A-Za-z]:/.test(n) || n.split('/').includes('..'), n).toBe(false);
          }
        } catch (e) {
          if (!(e instanceof AdapterError)) throw new Error(`untyped failure: ${String(e)}`, { cause: e });
          expect(e.message.startsWith('names.zip: ')).toBe(true);
        }
      }),
      params,
    );
  }, FUZZ_TEST_TIMEOUT);
});
