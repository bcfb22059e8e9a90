// "Continue training" from a saved run's adapter (trained here or imported): the new run's tensors start from that
// adapter's (LoRA's A and B, IA³'s vectors: Trainer's `initial`), so its first step begins exactly where the adapter
// is. The method, LoRA's rank and scale (alpha, rsLoRA) and the targets must be the adapter's: the Train screen locks
// them; this checks again. A full fine-tuning run continues from its saved weights: the new full run's master weights
// start from them (every tensor of the model, by its parameter name).
import type { TrainConfig } from '../config.ts';
import { loraScale } from '../methods/lora-scale.ts';
import { loraSegmentName } from '../lora-names.ts';
import { ia3SegmentName } from '../methods/ia3/config.ts';
import { PROMPT_EMBEDDINGS } from '../methods/prompt-tuning/config.ts';
import { doraMagnitudeSegmentName } from '../methods/dora/config.ts';
import { adaloraSegmentName } from '../methods/adalora/config.ts';
import { adapterMethod, type LoraAdapter } from '../peft.ts';
import { aMethodLabel, continuationMethod } from '../methods/registry.ts';
import { loadFullRunTensors, loadRunAdapterOfAnyKind, workerRunsDb } from './adapters.ts';
import { bottleneckInitial, bottleneckName } from '../methods/bottleneck/format.ts';
import { UserError, type LoadedModel } from './state.ts';

export interface Continuation {
  /** Segment name → its values (LoRA's lora_A [r, in] and lora_B [out, r], IA³'s ia3_l). */
  initial: Map<string, Float32Array>;
  parent: { runId: string; name: string; step: number };
}

/** What keeps `config` from continuing `adapter`, in words; empty when nothing does. */
export function continuationProblems(adapter: Pick<LoraAdapter, 'rank' | 'alpha' | 'rslora' | 'scale'>, config: Pick<TrainConfig, 'rank' | 'alpha' | 'rslora'>): string[] {
  const problems: string[] = [];
  if (config.rank !== adapter.rank) return [`rank ${config.rank} differs from the adapter's r = ${adapter.rank}`];
  const scale = loraScale(config.alpha, config.rank, config.rslora);
  if (Math.abs(scale - adapter.scale) > 1e-12 * Math.max(1, adapter.scale)) {
    problems.push(
      `alpha ${config.alpha}${config.rslora ? ' with rsLoRA' : ''} scales the update by ${scale.toPrecision(4)}, the adapter's ` +
        `lora_alpha ${adapter.alpha}${adapter.rslora ? ' with rsLoRA' : ''} by ${adapter.scale.toPrecision(4)}`,
    );
  }
  return problems;
}

/** An AdaLoRA adapter's SVD tensors padded to init_r and its rank mask (methods/adalora/format.ts) as a new AdaLoRA
 *  run's start: step 0 is the adapter. Its importance EMAs are not in the file and start from zero. */
function adaloraInitial(name: string, adapter: LoraAdapter, config: TrainConfig): Map<string, Float32Array> {
  const a = adapter.adalora!;
  if (config.initR !== a.initR) throw new UserError(`cannot continue "${name}": it has init_r ${a.initR} and this run asks for ${config.initR}`);
  if (config.alpha !== adapter.alpha) throw new UserError(`cannot continue "${name}": its lora_alpha is ${adapter.alpha} and this run asks for ${config.alpha}`);
  return new Map(
    [...a.tensors].flatMap(([path, t]) => [
      [loraSegmentName(path, 'A'), t.A],
      [loraSegmentName(path, 'B'), t.B],
      [adaloraSegmentName(path, 'E'), t.E],
      [adaloraSegmentName(path, 'mask'), t.mask],
    ]),
  );
}

/** The initial A and B maps of a run continuing run `runId`'s adapter, checked against `config` and the model. */
export async function continuationFor(runId: string, config: TrainConfig, model: LoadedModel): Promise<Continuation> {
  const record = await workerRunsDb().get(runId);
  if (!record) throw new UserError(`run ${runId}, to continue from, does not exist (deleted?)`);
  if (record.model.name !== model.summary.name) {
    throw new UserError(`"${record.name}" is an adapter of ${record.model.name}: load that model to continue it (loaded: ${model.summary.name})`);
  }
  const parent = { runId, name: record.name, step: record.adapter?.step ?? 0 };
  const full = await loadFullRunTensors(runId);
  if (full || config.method === 'full') {
    if (!full) throw new UserError(`cannot continue "${record.name}" with full fine-tuning: it saved an adapter, not the model's weights`);
    if (config.method !== 'full') throw new UserError(`cannot continue "${record.name}": it is a full fine-tuning run and this run trains ${config.method}`);
    return { initial: full, parent };
  }
  const adapter = await loadRunAdapterOfAnyKind(runId);
  if (adapter.kind === 'bottleneck') {
    if (config.method !== adapter.method) throw new UserError(`cannot continue "${record.name}": it is a ${bottleneckName(adapter.method)} bottleneck adapter and this run trains ${config.method}`);
    if (config.reductionFactor !== adapter.reductionFactor || config.adapterActivation !== adapter.activation) {
      throw new UserError(`cannot continue "${record.name}": its adapters have reduction factor ${adapter.reductionFactor} and ${adapter.activation}; this run asks for ${config.reductionFactor} and ${config.adapterActivation}`);
    }
    return { initial: bottleneckInitial(adapter), parent };
  }
  const method = continuationMethod(adapterMethod(adapter));
  if (config.method !== method) throw new UserError(`cannot continue "${record.name}": it is ${aMethodLabel(method)} adapter and this run trains ${config.method}`);
  if (adapter.kind === 'lora' && adapter.adalora) return { initial: adaloraInitial(record.name, adapter, config), parent };
  if (adapter.kind === 'prompt') {
    // P-tuning's table (the encoder's output) continues as plain virtual tokens; a prefix's (after the projection, if
    // the run had one) as a plain prefix, without the MLP.
    if (config.numVirtualTokens !== adapter.numVirtualTokens) throw new UserError(`cannot continue "${record.name}": it has ${adapter.numVirtualTokens} virtual tokens and this run asks for ${config.numVirtualTokens}`);
    if (method === 'prefix-tuning' && config.prefixProjection) throw new UserError(`cannot continue "${record.name}" with prefix projection: the adapter holds the prefix only (PEFT saves no MLP); continue without it`);
    return { initial: new Map([[PROMPT_EMBEDDINGS, adapter.embeddings]]), parent };
  }
  if (adapter.kind === 'ia3') return { initial: new Map(adapter.modules.map((m) => [ia3SegmentName(m.peftPath), m.l])), parent };
  const problems = continuationProblems(adapter, config);
  if (problems.length) throw new UserError(`cannot continue "${record.name}": ${problems.join('; ')}`);
  return {
    initial: new Map(
      adapter.modules.flatMap((m) => [
        [loraSegmentName(m.peftPath, 'A'), m.A] as const,
        [loraSegmentName(m.peftPath, 'B'), m.B] as const,
        // DoRA: the magnitudes too, so step 0 is the adapter (not m reset to the row norms).
        ...(m.magnitude ? [[doraMagnitudeSegmentName(m.peftPath), m.magnitude] as const] : []),
      ]),
    ),
    parent,
  };
}
