import { beforeAll, describe, expect, it } from 'vitest';
import { readBuffer } from '../buffers.ts';
import type { Engine } from '../engine.ts';
import { dynamicMap, quantizeNf4 } from '../ref/nf4.ref.ts';
import { randomArray } from '../ref/testing.ts';
import { testEngine } from '../testing-gpu.ts';
import { releaseNf4, uploadNf4 } from './nf4.ts';

let e: Engine;
beforeAll(async () => {
  e = await testEngine();
});

async function bytes(buffer: GPUBuffer, n: number): Promise<Uint8Array> {
  return new Uint8Array(await readBuffer(e.device, buffer, n));
}

describe('uploadNf4', () => {
  it('puts the codes and absmax on the GPU byte for byte (odd byte counts padded)', async () => {
    const q = quantizeNf4(randomArray(7 * 13, 1), {}); // 91 elements: 46 code bytes, 2 blocks
    const w = uploadNf4(e, q, 7, 13);
    expect(w.doubleQuant).toBe(false);
    expect(await bytes(w.codes, q.codes.length)).toEqual(q.codes);
    if (!q.scales.doubleQuant) {
      expect(new Float32Array((await bytes(w.absmax, 8)).buffer)).toEqual(q.scales.absmax);
    }
    expect(w.stats).toBeNull();
    releaseNf4(e, w);
  });

  it('with double quantization: u8 absmax codes, then [dynamic map | absmax2] and the offset', async () => {
    const q = quantizeNf4(randomArray(300 * 64 + 3, 2), { doubleQuant: true }); // 301 blocks, 2 second-level
    const w = uploadNf4(e, q, 1, 300 * 64 + 3);
    if (!q.scales.doubleQuant) throw new Error('expected double quantization');
    expect(w.doubleQuant).toBe(true);
    expect(await bytes(w.absmax, 301)).toEqual(q.scales.absmax8);
    const stats = new Float32Array((await bytes(w.stats!, (256 + 2) * 4)).buffer);
    expect(stats.subarray(0, 256)).toEqual(dynamicMap());
    expect(stats.subarray(256)).toEqual(q.scales.absmax2);
    expect(w.offset).toBe(q.scales.offset);
  });

  it('rejects a shape that does not match the quantized element count', () => {
    expect(() => uploadNf4(e, quantizeNf4(randomArray(10, 3)), 3, 4)).toThrow(/10 quantized elements, expected 3·4/);
  });
});
