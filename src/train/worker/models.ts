// 'load-model': a model from the bundled folder, the Hugging Face Hub or a local folder → weights on the GPU,
// tokenizer and chat template in worker state → 'model-loaded' with its summary. Progress events carry bytes:
// stage 'download' (Hub files into the browser's cache), then 'weights' (the checkpoint streamed to the GPU).
import { tuneKernels, type TuningCache } from '../../gpu/kernels/matmul-tuning.ts';
import type { ModelFiles } from '../../model/checkpoint.ts';
import { readModelConfig, loadTransformer, releaseTransformer } from '../../model/runtime/load.ts';
import { kernelChoiceFor, type KernelChoice } from '../../model/runtime/linear.ts';
import type { Transformer } from '../../model/runtime/transformer.ts';
import { blobFolder } from '../../model/sources/blob.ts';
import { MemoryModelCache, type ModelCache } from '../../model/sources/cache.ts';
import { OpfsModelCache } from '../../model/sources/cache-opfs.ts';
import { downloadModel, hubModel } from '../../model/sources/hub.ts';
import { urlFolder } from '../../model/sources/url.ts';
import { loadTokenizerFiles } from '../../model/tokenizer-files.ts';
import type { EngineRequest, ModelSource } from '../protocol.ts';
import { requireEngine, state, UserError, type Post } from './state.ts';
import { modelSummary } from './summary.ts';
import { idbTuningCache } from './tuning-cache.ts';

type LoadModel = Extract<EngineRequest, { type: 'load-model' }>;

/** Progress events at most this often (the last one of a stage always comes). */
const PROGRESS_INTERVAL_MS = 100;

let hubCache: ModelCache | null = null;
/** OPFS where the browser has it (a second load works offline), else memory. */
export function modelCache(): ModelCache {
  hubCache ??= OpfsModelCache.available() ? new OpfsModelCache() : new MemoryModelCache();
  return hubCache;
}

/** The bundled folder's URL: public/ is served at the app's root, which is the worker script's base too. */
function bundledUrl(path: string): string {
  const clean = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (clean.split('/').some((p) => p === '..' || p === '')) throw new UserError(`"${path}" is not a bundled model folder`);
  return new URL(`${clean}/`, new URL(import.meta.env.BASE_URL, self.location.origin)).href;
}

/** The files of a source, downloading a Hub model into the cache first. */
async function filesOf(source: ModelSource, onProgress: (done: number, total: number) => void): Promise<ModelFiles> {
  switch (source.kind) {
    case 'bundled':
      return urlFolder(bundledUrl(source.path), source.path.split('/').filter(Boolean).at(-1) ?? source.path);
    case 'folder': {
      if (source.files.length === 0) throw new UserError('the folder is empty: pick a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)');
      const top = source.files.find((f) => f.webkitRelativePath)?.webkitRelativePath.split('/')[0];
      return blobFolder(source.files, top || 'local folder');
    }
    case 'hub': {
      const hub = hubModel(source.repo, {
        baseUrl: source.baseUrl,
        revision: source.revision,
        token: source.token || null,
        cache: modelCache(),
      });
      await downloadModel(hub, (p) => onProgress(p.bytesDone, p.bytesTotal ?? 0));
      return hub;
    }
  }
}

/** The kernel variants for this adapter, measured once per session (and remembered across sessions). */
async function kernels(cache: TuningCache): Promise<KernelChoice> {
  if (!state.kernels) {
    const { matmul, nf4 } = await tuneKernels(requireEngine(), cache);
    state.kernels = { ...kernelChoiceFor(matmul.variant), nf4: nf4.variant };
  }
  return state.kernels;
}

/** Frees a transformer's weights (every buffer once, load.ts's releaseTransformer) and trims the pool. */
export function releaseWeights(tf: Transformer): void {
  releaseTransformer(requireEngine(), tf);
}

/** Frees the loaded model's weights (and the datasets tokenized for it) before another one loads. */
export function unloadModel(): void {
  const loaded = state.model;
  if (!loaded) return;
  state.model = null;
  state.datasets.clear();
  releaseWeights(loaded.transformer);
}

export async function handleLoadModel(req: LoadModel, post: Post): Promise<void> {
  const e = requireEngine();
  let lastEmit = 0;
  const progress = (stage: string) => (done: number, total: number) => {
    const now = performance.now();
    if (now - lastEmit < PROGRESS_INTERVAL_MS && done < total) return;
    lastEmit = now;
    post({ type: 'progress', id: req.id, stage, done, total });
  };

  const files = await filesOf(req.source, progress('download'));
  // Everything that can be wrong with the files is found before the GPU is touched.
  const config = await readModelConfig(files);
  // tokenizer.json, tokenizer_config.json and chat_template.jinja, size-checked; errors name the folder and the file.
  const { tokenizer = null, template = null } = (await loadTokenizerFiles(files)) ?? {};

  if (!state.kernels) post({ type: 'progress', id: req.id, stage: 'tuning', done: 0, total: 0 });
  const choice = await kernels(await idbTuningCache());
  unloadModel();

  const quant = req.quant ?? 'none';
  const dtype = e.gpu.hasF16 ? 'f16' : 'f32';
  // The UI reads the start of this stage as "the previous model is gone" (see slices/models.ts).
  post({ type: 'progress', id: req.id, stage: 'weights', done: 0, total: 0 });
  const transformer = await loadTransformer(e, files, choice, { dtype, quant, onProgress: progress('weights') });
  const summary = modelSummary(files.name, config, {
    dtype,
    hasChatTemplate: template !== null && !template.isFallback,
    weightBytes: transformer.model.weightBytes,
  });
  state.model = { id: req.id, summary, config, files, transformer, tokenizer, template, quant, source: req.source };
  post({ type: 'model-loaded', id: req.id, model: summary });
}
