// What the NF4 training tests (dora-nf4.gpu.test.ts, adalora-nf4.gpu.test.ts) share: the Llama fixture with every
// linear weight replaced by its NF4 quantization decoded (src/gpu/ref/nf4.ref.ts), so a dense run over it is the
// reference of a run over the NF4-quantized fixture (bitsandbytes, PEFT's NF4, is not installable here). Test-only.
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { dequantizeNf4, quantizeNf4 } from '../gpu/ref/nf4.ref.ts';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { FIXTURES } from '../model/runtime/testing.ts';

/** The Llama fixture with every linear weight (…_proj.weight, [out, in]) replaced by its NF4 quantization decoded,
 *  written under `tmp`. */
export async function decodedNf4Fixture(tmp: string): Promise<string> {
  const src = join(FIXTURES, 'models', 'llama');
  const dir = join(tmp, 'llama-nf4-decoded');
  mkdirSync(dir);
  for (const f of readdirSync(src)) if (f !== 'model.safetensors') copyFileSync(join(src, f), join(dir, f));
  const file = await SafetensorsFile.open((await nodeFolder(src).open('model.safetensors'))!);
  const out = new Map<string, TensorToWrite>();
  let linears = 0;
  for (const name of file.names()) {
    const data = await file.readTensor(name, 'f32');
    const shape = file.info(name).shape;
    const decoded = /_proj\.weight$/.test(name) ? (linears++, dequantizeNf4(quantizeNf4(data, { doubleQuant: false }))) : data;
    out.set(name, { dtype: 'F32', shape, data: Float32Array.from(decoded) });
  }
  await file.close();
  expect(linears).toBeGreaterThan(0);
  writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(out, { format: 'pt' }));
  return dir;
}
