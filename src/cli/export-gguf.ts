// `lora-studio export-gguf`: a model for llama.cpp, Ollama and LM Studio (src/export/gguf-model.ts).
//   --model DIR --out FILE                         the model as GGUF
//   --model DIR --adapter A --out FILE             the model with the adapter merged in
//   --model DIR --adapter A --out FILE --lora-out L the model unmerged in FILE and the adapter as a GGUF LoRA adapter
// An Ollama Modelfile is written beside --out (FILE with ".Modelfile" for ".gguf"). Every file is written to a
// temporary name and renamed, as `merge` does, so an interrupted export never leaves a half file under the real name.
import { stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { exportAdapterGguf, exportGguf, GGUF_EXPORT_TYPES, type GgufExportType } from '../export/gguf-model.ts';
import type { GgufFile } from '../export/gguf.ts';
import { ollamaModelfile } from '../export/modelfile.ts';
import { bottleneckRefusal } from '../train/methods/bottleneck/format.ts';
import { adapterMethod } from '../train/peft.ts';
import { oneOf, optionalString, parseFlags, requiredString, UsageError } from './args.ts';
import { openModelFolder, percent, processIo, readAnyAdapter, writeChunksAtomic, type CliIo } from './load.ts';

export const EXPORT_GGUF_USAGE =
  'lora-studio export-gguf --model DIR [--adapter DIR|FILE.zip] --out FILE.gguf [--type f32|f16|q8_0] [--lora-out FILE.gguf] [--force]';

const FLAGS = {
  model: { type: 'string' },
  adapter: { type: 'string' },
  out: { type: 'string' },
  type: { type: 'string' },
  'lora-out': { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

export async function exportGgufCommand(args: string[], io: CliIo = processIo): Promise<void> {
  const flags = parseFlags('export-gguf', args, FLAGS);
  if (flags.help) {
    io.stdout(`usage: ${EXPORT_GGUF_USAGE}`);
    return;
  }
  const modelDir = requiredString('export-gguf', flags, 'model');
  const out = requiredString('export-gguf', flags, 'out');
  const type = oneOf('export-gguf', flags, 'type', GGUF_EXPORT_TYPES, 'f16');
  const adapterPath = optionalString(flags, 'adapter');
  const loraOut = optionalString(flags, 'lora-out');
  if (loraOut !== undefined && adapterPath === undefined) throw new UsageError('export-gguf: --lora-out needs --adapter');
  const modelfilePath = out.endsWith('.gguf') ? `${out.slice(0, -5)}.Modelfile` : `${out}.Modelfile`;
  if (!flags.force) {
    for (const path of [out, loraOut, modelfilePath]) {
      if (path && (await stat(path).catch(() => null))) throw new UsageError(`export-gguf: ${path} already exists (--force overwrites)`);
    }
  }

  const folder = await openModelFolder(modelDir);
  const adapter = adapterPath === undefined ? null : await readAnyAdapter(adapterPath, folder.config);
  const method = adapter && adapterMethod(adapter);
  if (adapter?.kind === 'prompt') {
    const what = method === 'prefix-tuning' ? 'a key/value prefix' : 'virtual tokens';
    throw new UsageError(`export-gguf: ${adapterPath} is a ${adapter.peftType} adapter: llama.cpp has no ${what} and there is nothing to merge; export the base model without --adapter`);
  }
  if (adapter?.kind === 'bottleneck') throw new UsageError(`export-gguf: ${bottleneckRefusal('the GGUF export', adapter.method, adapterPath!)}`);
  if (method === 'ia3' && loraOut !== undefined) {
    throw new UsageError(`export-gguf: ${adapterPath} is an IA³ adapter, which has no LoRA form for --lora-out; export it merged (without --lora-out)`);
  }
  if (method === 'dora' && loraOut !== undefined) {
    throw new UsageError(`export-gguf: ${adapterPath} is a DoRA adapter (use_dora), which llama.cpp's LoRA GGUF cannot hold; export it merged (without --lora-out)`);
  }
  if (method === 'adalora' && loraOut !== undefined) {
    throw new UsageError(`export-gguf: ${adapterPath} is an AdaLoRA adapter (per-layer ranks, scale α / (init_r + 1e-5)), which llama.cpp's LoRA GGUF cannot hold; export it merged (without --lora-out)`);
  }
  for (const w of adapter?.warnings ?? []) io.stderr(`export-gguf: ${adapterPath}: ${w}`);
  const merged = adapter !== null && loraOut === undefined;
  const name = basename(modelDir.replace(/\/+$/, '')) + (merged ? `+${basename(adapterPath!.replace(/\/+$/, ''))}` : '');

  const model = await exportGguf(folder.files, { adapter: merged ? adapter : null, type, name });
  try {
    await writeGguf(model.file, out, io, 'model');
  } finally {
    await model.close();
  }
  for (const t of model.fallbacks) io.stderr(`export-gguf: ${t}: rows are not a multiple of 32, written as F16 instead of Q8_0`);

  let alpha: number | null = null;
  if (loraOut !== undefined) {
    if (adapter?.kind === 'ia3') throw new Error('unreachable: IA³ refused above');
    const lora = exportAdapterGguf(folder.config, adapter!, { type: type === 'f16' ? 'f16' : 'f32', name: basename(adapterPath!) });
    alpha = lora.alpha;
    await writeGguf(lora.file, loraOut, io, 'adapter');
  }

  const here = (p: string) => {
    const r = relative(dirname(modelfilePath), p);
    return r.startsWith('.') || r.startsWith('/') ? r : `./${r}`;
  };
  const modelfile = ollamaModelfile({ model: here(out), adapter: loraOut ? here(loraOut) : null, chatTemplate: model.chatTemplate, stops: model.eosTokens });
  await writeFile(modelfilePath, modelfile.text);
  if (!modelfile.template && model.chatTemplate) io.stderr(`export-gguf: ${modelfilePath}: TEMPLATE left out (the chat template is not ChatML or Llama 3; Ollama uses the GGUF's own)`);
  io.stderr(`export-gguf: wrote ${modelfilePath} (ollama create NAME -f ${modelfilePath})`);
  io.stdout(
    JSON.stringify({
      out,
      type,
      merged,
      ...(adapter ? { method, modules: adapter.modules.length, ...(adapter.kind !== 'ia3' && { rank: adapter.rank, scale: adapter.scale }) } : {}),
      ...(loraOut ? { loraOut, alpha } : {}),
      modelfile: modelfilePath,
      template: modelfile.template,
    }),
  );
}

async function writeGguf(file: GgufFile, target: string, io: CliIo, what: string): Promise<void> {
  const temporary = join(dirname(target), `.${basename(target)}.partial`);
  await writeChunksAtomic(file.chunks(), temporary, target, (done) => {
    if (io.tty) io.progress(`export-gguf: writing the ${what} ${percent(done, file.size)}`);
  });
  if (io.tty) io.progress('');
  io.stderr(`export-gguf: wrote ${target} (${file.size} bytes)`);
}

export type { GgufExportType };
