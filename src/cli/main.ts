// `npx lora-studio <command>`: the studio's engine without the browser. Errors are one `error: …` line on stderr
// and exit code 1; --debug adds the stack.
import { openNodeGpu } from '../gpu/node.ts';
import { evalCommand, EVAL_USAGE } from './eval.ts';
import { generateCommand, GENERATE_USAGE } from './generate.ts';
import { trainCommand, TRAIN_USAGE } from './train.ts';
import { mergeCommand, MERGE_USAGE } from './merge.ts';
import { exportGgufCommand, EXPORT_GGUF_USAGE } from './export-gguf.ts';
import { exportTrlCommand, EXPORT_TRL_USAGE } from './export-trl.ts';
import { compareMethodsCommand, COMPARE_METHODS_USAGE } from './compare-methods.ts';

const USAGE = `usage: lora-studio <command> [options]

commands:
  gpu        print the WebGPU adapter this machine gives, its limits and features
  eval       the mean next-token loss of a model on a JSONL file: ${EVAL_USAGE.replace('lora-studio eval ', '')}
  generate   text from a model, streamed as it comes: ${GENERATE_USAGE.replace('lora-studio generate ', '')}
  train      fine-tuning (LoRA, QLoRA, DoRA, IA³, full) into a PEFT adapter or a model folder: ${TRAIN_USAGE.replace('lora-studio train ', '')}
  compare-methods  the methods side by side on one model and dataset (one JSON line each, a table, a CSV): ${COMPARE_METHODS_USAGE.replace('lora-studio compare-methods ', '')}
  merge      the base model with an adapter folded in, as a plain model folder: ${MERGE_USAGE.replace('lora-studio merge ', '')}
  export-gguf  the model (merged, or with a GGUF LoRA adapter) for llama.cpp / Ollama: ${EXPORT_GGUF_USAGE.replace('lora-studio export-gguf ', '')}
  export-trl   the same run as a folder for TRL + accelerate on GPUs: ${EXPORT_TRL_USAGE.replace('lora-studio export-trl ', '')}

options:
  --debug    print stack traces with errors
  --help     this text`;

export class CliError extends Error {
  override name = 'CliError';
}

async function gpuCommand(): Promise<void> {
  const gpu = await openNodeGpu();
  console.log(
    JSON.stringify({ adapter: gpu.adapter, limits: gpu.limits, features: [...gpu.features] }, null, process.stdout.isTTY ? 2 : 0),
  );
  gpu.destroy();
}

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  gpu: gpuCommand,
  eval: evalCommand,
  generate: generateCommand,
  train: trainCommand,
  merge: (args) => mergeCommand(args),
  'export-gguf': (args) => exportGgufCommand(args),
  'export-trl': (args) => exportTrlCommand(args),
  'compare-methods': async (args) => void (await compareMethodsCommand(args)),
};

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  const args = argv.filter((a) => a !== '--debug');
  const [command, ...rest] = args;
  if (!command || command === '--help' || command === 'help') {
    console.log(USAGE);
    return command ? 0 : 1;
  }
  const run = COMMANDS[command];
  if (!run) {
    console.error(`error: unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    return 1;
  }
  try {
    await run(rest);
    return 0;
  } catch (err) {
    const e = err as Error;
    console.error(`error: ${oneLine(e?.message ?? String(err))}`);
    if (debug && e?.stack) console.error(e.stack);
    return 1;
  }
}

/** Typed errors may list several problems on indented lines (WeightsError, AdapterError): keep them, on one line. */
function oneLine(message: string): string {
  return message.split('\n').map((l) => l.trim()).filter(Boolean).join('; ');
}
