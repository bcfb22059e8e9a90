// Every shader in every variant the code can instantiate compiles: validated by Dawn's null backend (no execution),
// so a WGSL typo fails here with its file, line and column.
import { describe, expect, it } from 'vitest';
import { openNodeGpu } from './node.ts';
import { PipelineCache, type KernelSpec } from './kernel.ts';
import { allKernelSpecs } from './kernels/registry.ts';

async function validate(specs: KernelSpec[]) {
  const gpu = await openNodeGpu({ dawnFlags: ['backend=null'] });
  const cache = new PipelineCache(gpu.device);
  const failures: string[] = [];
  for (const spec of specs) {
    cache.get(spec);
    await cache.ready().catch((err: Error) => failures.push(err.message));
  }
  return failures;
}

describe('every shader variant compiles (Dawn null backend)', () => {
  it('with f16 and without', async () => {
    const specs = [...allKernelSpecs(true), ...allKernelSpecs(false)];
    expect(specs.length).toBeGreaterThan(0);
    expect(await validate(specs)).toEqual([]);
  });

  it('a broken shader fails with its file, line and column', async () => {
    const good = allKernelSpecs(false)[0];
    const lines = good.wgsl.split('\n');
    const target = lines.findIndex((l) => l.includes('fn store'));
    lines[target + 1] = '  if (m >= p.M || n >= p.N) { return; ' + ' // missing brace';
    const broken: KernelSpec = { ...good, label: 'broken', wgsl: lines.join('\n') };
    const failures = await validate([broken]);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(new RegExp(`src/shaders/matmul\\.wgsl:\\d+:\\d+: error`));
    expect(failures[0]).toContain('broken');
  });
});
