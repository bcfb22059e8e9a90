// A full fine-tuning run's trained weights as the studio keeps them: in the run's saved "adapter" record of the runs
// store (the place every other method keeps its PEFT files, so saving, pruning, deleting and counting bytes stay one
// path), as two files of the same names that are not a PEFT adapter: adapter_config.json says so (the studio's own
// marker, the base model, the tensor count), adapter_model.safetensors holds every trained tensor in f32 under
// transformers' parameter name (Trainer.trainedTensors()), flat. It is never downloaded as it is: the Runs screen
// builds the model folder transformers loads from it and the base model's files (methods/full/model-folder.ts), and
// Compare and the Playground put it on the loaded model with methods/full/inference.ts. Browser-safe.
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../model/safetensors.ts';
import { MemorySource } from '../model/sources/memory.ts';
import type { AdapterFiles } from './peft.ts';

/** adapter_config.json's key that marks a full fine-tuning run's weights (never a PEFT key). */
export const FULL_RUN_MARKER = 'lora_studio_full_fine_tuning';

export interface FullRunConfig {
  [FULL_RUN_MARKER]: true;
  /** What the files are, for whoever opens the browser's storage. */
  about: string;
  base_model_name_or_path: string;
  tensors: number;
}

/** The run's trained tensors as its saved record's two files; a NaN or an infinity is refused, naming the tensor. */
export function fullRunFiles(tensors: ReadonlyMap<string, Float32Array>, baseModel: string): AdapterFiles {
  if (tensors.size === 0) throw new Error('no trained tensors to save');
  const out = new Map<string, TensorToWrite>();
  for (const [name, values] of tensors) {
    const bad = values.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${name}: element ${bad} is ${values[bad]}; the run diverged, nothing saved`);
    out.set(name, { dtype: 'F32', shape: [values.length], data: values });
  }
  const config: FullRunConfig = {
    [FULL_RUN_MARKER]: true,
    about: 'LoRA Studio: every trained weight of a full fine-tuning run (flat f32, transformers parameter names); not a PEFT adapter. Download it from the Runs screen as a model folder.',
    base_model_name_or_path: baseModel,
    tensors: tensors.size,
  };
  return {
    'adapter_config.json': new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`),
    'adapter_model.safetensors': writeSafetensors(out),
  };
}

/** Whether a saved record holds a full fine-tuning run's weights (not PEFT files). */
export function isFullRunFiles(files: Pick<AdapterFiles, 'adapter_config.json'>): boolean {
  try {
    return (JSON.parse(new TextDecoder().decode(files['adapter_config.json'])) as Record<string, unknown>)[FULL_RUN_MARKER] === true;
  } catch {
    return false;
  }
}

/** The trained tensors back, by name; `where` names the run in errors. */
export async function readFullRunTensors(files: AdapterFiles, where: string): Promise<Map<string, Float32Array>> {
  if (!isFullRunFiles(files)) throw new Error(`${where}: its saved weights are not a full fine-tuning run's (no ${FULL_RUN_MARKER} in adapter_config.json)`);
  const file = await SafetensorsFile.open(new MemorySource(`${where}/adapter_model.safetensors`, files['adapter_model.safetensors']));
  const out = new Map<string, Float32Array>();
  for (const name of file.names()) out.set(name, (await file.readTensor(name, 'f32')) as Float32Array);
  return out;
}

/** Why full fine-tuning cannot run on this GPU, in words; empty when it can. The engine keeps a full run's f32
 *  master weights (and their gradients and moments) in one storage binding each (methods/full/runtime.ts refuses
 *  above it with the same reason); the Train screen and the worker say so before anything is loaded. */
export function fullBindingRefusal(params: number, maxStorageBufferBindingSize: number, bufferLength = params): string {
  const bytes = bufferLength * 4;
  if (bytes <= maxStorageBufferBindingSize) return '';
  const mb = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  return (
    `full fine-tuning keeps this model's ${params.toLocaleString('en-US')} parameters as one f32 buffer of ${mb(bytes)}, above this GPU's ` +
    `largest binding (${mb(maxStorageBufferBindingSize)}): fine-tune it with LoRA or QLoRA instead`
  );
}
