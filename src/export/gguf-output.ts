// The studio's "Download for llama.cpp / Ollama": the merged model as `model.gguf` and an Ollama `Modelfile`, as the
// same OutputFile list the merged-safetensors download streams (src/train/worker/merge.ts writes either into a picked
// folder or a .zip).
import type { ModelFiles } from '../model/checkpoint.ts';
import type { MergedModel, OutputFile } from '../train/merge.ts';
import type { PeftAdapter } from '../train/peft.ts';
import { exportGguf, type GgufExportType } from './gguf-model.ts';
import { ollamaModelfile } from './modelfile.ts';

export const GGUF_MODEL_FILE = 'model.gguf';

export async function ggufOutputFiles(
  folder: ModelFiles,
  adapter: PeftAdapter | null,
  type: GgufExportType,
  name: string,
  maxChunkBytes?: number,
): Promise<MergedModel & { fallbacks: string[] }> {
  const ex = await exportGguf(folder, { adapter, type, name, maxChunkBytes });
  const modelfile = new TextEncoder().encode(ollamaModelfile({ model: `./${GGUF_MODEL_FILE}`, chatTemplate: ex.chatTemplate, stops: ex.eosTokens }).text);
  const files: OutputFile[] = [
    { path: GGUF_MODEL_FILE, size: ex.file.size, chunks: () => ex.file.chunks() },
    { path: 'Modelfile', size: modelfile.length, async *chunks() { yield modelfile; } },
  ];
  return { files, close: ex.close, fallbacks: ex.fallbacks };
}
