// The studio's GGUF download: model.gguf (the adapter merged in) and an Ollama Modelfile, through the same .zip
// writer as the merged-safetensors download.
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { readModelConfig } from '../model/load.ts';
import { FIXTURES } from '../model/runtime/testing.ts';
import { nodeFolder } from '../model/sources/node-file.ts';
import { importAdapter } from '../train/peft.ts';
import { zipFiles } from '../train/worker/merge.ts';
import { parseGguf, readGgufTensor } from './gguf.ts';
import { ggufOutputFiles } from './gguf-output.ts';

describe('GGUF download files', () => {
  it('model.gguf with the adapter merged in and a Modelfile, in one .zip', async () => {
    const folder = nodeFolder(join(FIXTURES, 'models', 'gpt2'));
    const config = await readModelConfig(folder);
    const adapter = await importAdapter(nodeFolder(join(FIXTURES, 'golden', 'train_gpt2_adapter')), config);
    adapter.modules.forEach((m) => m.B.fill(0.01)); // a visible change
    const out = await ggufOutputFiles(folder, adapter, 'f32', 'my run');
    const plain = await ggufOutputFiles(folder, null, 'f32', 'base');
    try {
      expect(out.files.map((f) => f.path)).toEqual(['model.gguf', 'Modelfile']);
      const zip = unzipSync(new Uint8Array(await (await zipFiles(out.files, 'my-run-merged-gguf', () => {})).arrayBuffer()));
      const gguf = zip['my-run-merged-gguf/model.gguf'];
      expect(gguf.length).toBe(out.files[0].size);
      const p = parseGguf(gguf);
      expect(p.metadata.get('general.name')).toBe('my run');
      const base = new Uint8Array(plain.files[0].size);
      let at = 0;
      for await (const c of plain.files[0].chunks()) (base.set(c, at), (at += c.length));
      const q = parseGguf(base);
      const name = `blk.0.${adapter.modules[0].module.canonical.endsWith('qkv') ? 'attn_qkv' : 'attn_output'}.weight`;
      const merged = readGgufTensor(gguf, p.tensors.find((t) => t.name === name)!);
      const original = readGgufTensor(base, q.tensors.find((t) => t.name === name)!);
      expect(merged).not.toEqual(original);
      expect(new TextDecoder().decode(zip['my-run-merged-gguf/Modelfile'])).toMatch(/^# Ollama Modelfile[^\n]*\nFROM \.\/model\.gguf\n/);
    } finally {
      await out.close();
      await plain.close();
    }
  });
});
