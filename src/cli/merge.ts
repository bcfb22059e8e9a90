// `lora-studio merge`: the base model with a PEFT LoRA adapter folded in (W + s·B·A, Conv1D-aware), written as a
// plain Hugging Face folder that loads without PEFT. Streams tensor by tensor (src/train/merge.ts); every file is
// written to a temporary name and renamed, so an interrupted merge never leaves a half file under the real name.
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { mergeModel, promptMergeRefusal } from '../train/merge.ts';
import { adapterMethod } from '../train/peft.ts';
import { bottleneckRefusal } from '../train/methods/bottleneck/format.ts';
import { oneOf, parseFlags, requiredString, UsageError } from './args.ts';
import { openModelFolder, processIo, readAnyAdapter, writeChunksAtomic, type CliIo } from './load.ts';

export const MERGE_USAGE = 'lora-studio merge --model DIR --adapter DIR|FILE.zip --out DIR [--dtype f16|f32]';

const FLAGS = {
  model: { type: 'string' },
  adapter: { type: 'string' },
  out: { type: 'string' },
  dtype: { type: 'string' },
} as const;

export async function mergeCommand(args: string[], io: CliIo = processIo): Promise<void> {
  const values = parseFlags('merge', args, FLAGS);
  const modelDir = requiredString('merge', values, 'model');
  const adapterPath = requiredString('merge', values, 'adapter');
  const out = requiredString('merge', values, 'out');
  const dtype = oneOf('merge', values, 'dtype', ['f16', 'f32'] as const, 'f16');
  const existing = await stat(join(out, 'model.safetensors')).catch(() => null);
  if (existing) throw new UsageError(`${out} already holds a model.safetensors: choose another --out`);

  const folder = await openModelFolder(modelDir);
  const adapter = await readAnyAdapter(adapterPath, folder.config);
  if (adapter.kind === 'prompt') throw new UsageError(`merge: ${promptMergeRefusal(adapter, adapterPath)} (eval and generate take it with --adapter)`);
  if (adapter.kind === 'bottleneck') throw new UsageError(`merge: ${bottleneckRefusal('merging', adapter.method, adapterPath)}`);
  const merged = await mergeModel(folder.files, adapter, undefined, dtype);
  await mkdir(out, { recursive: true });
  try {
    for (const file of merged.files) {
      const target = join(out, file.path);
      await writeChunksAtomic(file.chunks(), `${target}.partial`, target);
      io.stderr(`merge: wrote ${target} (${file.size} bytes)`);
    }
  } finally {
    await merged.close();
  }
  const lora = adapter.kind === 'ia3' ? {} : { rank: adapter.rank, scale: adapter.scale };
  io.stdout(JSON.stringify({ out, dtype, method: adapterMethod(adapter), modules: adapter.modules.length, ...lora }));
}
