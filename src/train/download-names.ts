// File names of a run's downloads, shared by the worker (export-adapter) and the page (Runs screen), so both name a
// run's files alike. No GPU import here: the page bundle takes it.

/** "demo · r4" → "demo-r4-adapter.zip"; the bare safetensors keeps PEFT's own name. */
export function adapterFileName(runName: string, as: 'zip' | 'safetensors'): string {
  if (as === 'safetensors') return 'adapter_model.safetensors';
  return `${runSlug(runName)}-adapter.zip`;
}

export function metricsFileName(runName: string): string {
  return `${runSlug(runName)}-metrics.csv`;
}

/** The folder (or .zip, without its extension) a run's merged model is saved as: "demo · r4" → "demo-r4-merged". */
export function mergedModelName(runName: string): string {
  return `${runSlug(runName)}-merged`;
}

/** The folder (or .zip) a full fine-tuning run's model is saved as: "demo · full" → "demo-full-model". */
export function fullModelName(runName: string): string {
  return `${runSlug(runName)}-model`;
}

/** The folder (or .zip) of a run's TRL + accelerate export: "demo · r4" → "demo-r4-trl". */
export function trlExportName(runName: string): string {
  return `${runSlug(runName)}-trl`;
}

function runSlug(runName: string): string {
  return runName.toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80) || 'run';
}
