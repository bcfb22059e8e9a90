// Train: a preset or every field of the config, with the trainable parameters and the memory estimate updating as
// you edit and each field's error naming its valid range; Start (or why not); then the live run (RunView).
import { useId, useMemo, useState, type ReactNode } from 'react';
import { PRESETS, type FieldError, type PresetName, type TrainConfig } from '../../train/config.ts';
import type { ModelType } from '../../model/config.ts';
import { METHODS } from '../../train/methods/registry.ts';
import { canPickFolder, TRAIN_EXPORT_KEY } from '../../store/slices/runs.ts';
import { effectiveConfig, isActive, startBlocker, trainConfigErrors } from '../../store/slices/train.ts';
import { useStudio } from '../../store/studio.ts';
import { formatBytes } from '../format.ts';
import { formatCount } from './ModelsScreen.tsx';
import { RunView } from './RunView.tsx';
import { defaultMemoryBudget } from './model-fit.ts';
import { trainPlan } from './train-plan.ts';

export function TrainScreen() {
  const run = useStudio((s) => s.liveRun);
  return (
    <section aria-labelledby="train-title" data-testid="screen-train" className="screen">
      <h2 id="train-title">Train</h2>
      {run && <RunView />}
      <TrainForm />
    </section>
  );
}

type Setter = (patch: Partial<TrainConfig>) => void;

function TrainForm() {
  const config = useStudio((s) => s.trainConfig);
  const preset = useStudio((s) => s.trainPreset);
  const model = useStudio((s) => s.model);
  const dataset = useStudio((s) => s.dataset);
  const datasetId = useStudio((s) => s.datasetId);
  const liveRun = useStudio((s) => s.liveRun);
  const error = useStudio((s) => s.trainError);
  const set = useStudio((s) => s.setTrainConfig);
  const applyPreset = useStudio((s) => s.applyTrainPreset);
  const start = useStudio((s) => s.startTraining);
  const runName = useStudio((s) => s.runName);
  const setRunName = useStudio((s) => s.setRunName);
  const samplePrompt = useStudio((s) => s.samplePrompt);
  const setSamplePrompt = useStudio((s) => s.setSamplePrompt);
  const go = useStudio((s) => s.go);
  const from = useStudio((s) => s.trainFrom);
  const clearFrom = useStudio((s) => s.clearTrainFrom);
  const modelQuant = useStudio((s) => s.modelQuant);
  const gpu = useStudio((s) => s.gpu);
  const memoryBudget = useStudio((s) => s.memoryBudget);
  const method = METHODS[config.method] ?? METHODS.lora;
  /** The method's own settings are shown; another method's are not (they would not apply). */
  const has = (field: keyof TrainConfig) => method.settings.includes(field);
  const errors = useMemo(() => trainConfigErrors(config, modelQuant), [config, modelQuant]);
  const plan = useMemo(
    () => (model ? trainPlan(model, config, gpu ? { limits: gpu.limits, budgetBytes: memoryBudget ?? defaultMemoryBudget(gpu.limits) } : undefined) : null),
    [model, config, gpu, memoryBudget],
  );
  const blocker = startBlocker({ model, dataset, datasetId, liveRun, trainConfig: config }, errors) || plan?.problem || '';
  const locked = !!liveRun && isActive(liveRun.phase);

  return (
    <form
      className="train-form"
      aria-label="Training configuration"
      onSubmit={(e) => {
        e.preventDefault();
        start();
      }}
    >
      <fieldset className="presets" disabled={locked}>
        <legend>Preset</legend>
        <div className="preset-list">
          {(Object.keys(PRESETS) as PresetName[]).map((name) => (
            <button
              key={name}
              type="button"
              className={`card preset${preset === name ? ' selected' : ''}`}
              aria-pressed={preset === name}
              onClick={() => applyPreset(name)}
            >
              <strong>{PRESETS[name].title}</strong>
              <span className="small">{PRESETS[name].about}</span>
            </button>
          ))}
        </div>
        {preset === 'custom' && <p className="muted small">Edited: no preset matches exactly.</p>}
      </fieldset>

      {from && (
        <section className="card" data-testid="train-from" aria-label="Continuing an adapter">
          {from.method === 'lora' ? (
            <p>
              Continues from the adapter of <strong>{from.name}</strong>: the new run&apos;s LoRA starts from its A and B. Its rank, alpha,
              target modules and rsLoRA are the adapter&apos;s and cannot be changed here.
            </p>
          ) : METHODS[from.method]?.exports === 'model' ? (
            <p>
              Continues from the fully fine-tuned weights of <strong>{from.name}</strong>: the new run starts from that whole model, not
              from the base. The method cannot be changed here.
            </p>
          ) : (
            <p>
              Continues from the {METHODS[from.method]?.label ?? from.method} adapter of <strong>{from.name}</strong>: the new run starts from
              its tensors. The method and the target modules are the adapter&apos;s and cannot be changed here.
            </p>
          )}
          <button type="button" onClick={clearFrom} disabled={locked}>
            {METHODS[from.method]?.exports === 'model' ? 'Start from the base model instead' : `Start from a fresh ${METHODS[from.method]?.label ?? 'adapter'} instead`}
          </button>
        </section>
      )}

      <fieldset disabled={locked}>
        <legend>{method.label}</legend>
        <div className="form-grid">
          <Field label="Method" field="method" errors={errors}>
            {(id) => (
              <select id={id} value={config.method} disabled={!!from} onChange={(e) => set({ method: e.target.value as TrainConfig['method'] })}>
                {Object.values(METHODS).map((m) => (
                  <option key={m.id} value={m.id}>{m.label}</option>
                ))}
              </select>
            )}
          </Field>
          <Field label="Base weights" field="quant" errors={errors} help="chosen when loading the model (Models screen)">
            {(id) => (
              <output id={id} data-testid="base-weights">
                {modelQuant === 'nf4' ? `NF4${method.wrapsLinears ? ' (QLoRA)' : method.exports === 'model' ? ': not for this method' : ', frozen (this method wraps no layer)'}` : 'full precision'}
                {method.exports === 'model' && modelQuant !== 'nf4' && model?.dtype === 'f16' ? ' (f16 now: loaded again in f32 when the run starts)' : ''}
              </output>
            )}
          </Field>
          {has('rank') && <NumberField label="Rank r" field="rank" config={config} set={set} errors={errors} step={1} disabled={!!from} />}
          {has('alpha') && (
            <NumberField
              label="Alpha α" field="alpha" config={config} set={set} errors={errors} disabled={!!from}
              help={
                has('initR')
                  ? config.initR > 0 ? `scale α/init_r = ${(config.alpha / (config.initR + 1e-5)).toPrecision(3)} (PEFT: α / (ranknum + 1e-5))` : undefined
                  : config.rank > 0 ? `scale α/${config.rslora ? '√r' : 'r'} = ${(config.alpha / (config.rslora ? Math.sqrt(config.rank) : config.rank)).toPrecision(3)}` : undefined
              }
            />
          )}
          {has('dropout') && <NumberField label="Dropout" field="dropout" config={config} set={set} errors={errors} step={0.01} />}
          {has('initR') && <NumberField label="Initial rank init_r" field="initR" config={config} set={set} errors={errors} step={1} disabled={!!from} help="every layer's rank before the budget cuts it" />}
          {has('targetR') && <NumberField label="Target rank target_r" field="targetR" config={config} set={set} errors={errors} step={1} help="the average rank per layer at the end" />}
          {has('tinit') && <NumberField label="Warmup steps tinit" field="tinit" config={config} set={set} errors={errors} step={1} help="steps before the first cut" />}
          {has('tfinal') && <NumberField label="Final steps tfinal" field="tfinal" config={config} set={set} errors={errors} step={1} help="steps at the final rank pattern" />}
          {has('deltaT') && <NumberField label="Budget interval deltaT" field="deltaT" config={config} set={set} errors={errors} step={1} help="steps between two budget steps" />}
          {has('totalStep') && (
            <Field label="Total steps total_step" field="totalStep" errors={errors} help="empty = the run's own number of steps">
              {(id) => (
                <input
                  id={id} type="number" step={1} value={config.totalStep ?? ''}
                  onChange={(e) => set({ totalStep: e.target.value.trim() === '' ? null : Number(e.target.value) })}
                />
              )}
            </Field>
          )}
          {has('adaloraBeta1') && <NumberField label="Importance EMA β1" field="adaloraBeta1" config={config} set={set} errors={errors} step={0.01} />}
          {has('adaloraBeta2') && <NumberField label="Uncertainty EMA β2" field="adaloraBeta2" config={config} set={set} errors={errors} step={0.01} />}
          {has('orthRegWeight') && <NumberField label="Orthogonality weight" field="orthRegWeight" config={config} set={set} errors={errors} step={0.1} help="orth_reg_weight: keeps P and Q near orthonormal" />}
          {has('numVirtualTokens') && (
            <NumberField
              label="Virtual tokens" field="numVirtualTokens" config={config} set={set} errors={errors} step={1} disabled={!!from}
              help={model?.dims && config.numVirtualTokens > 0 ? virtualTokensHelp(config, model.dims) : undefined}
            />
          )}
          {has('prefixProjection') && (
            <Field label="Prefix projection" field="prefixProjection" errors={errors} help="train the prefix through an MLP (only the prefix is saved)">
              {(id) => <input id={id} type="checkbox" checked={config.prefixProjection} disabled={!!from} onChange={(e) => set({ prefixProjection: e.target.checked })} />}
            </Field>
          )}
          {has('encoderType') && (
            <Field label="Prompt encoder" field="encoderType" errors={errors} help="encoder_reparameterization_type: PEFT recommends the MLP">
              {(id) => (
                <select id={id} value={config.encoderType} disabled={!!from} onChange={(e) => set({ encoderType: e.target.value as TrainConfig['encoderType'] })}>
                  <option value="mlp">MLP</option>
                  <option value="lstm">bidirectional LSTM + MLP head</option>
                </select>
              )}
            </Field>
          )}
          {has('encoderNumLayers') && config.encoderType === 'lstm' && (
            <NumberField label="LSTM layers" field="encoderNumLayers" config={config} set={set} errors={errors} step={1} disabled={!!from} help="encoder_num_layers: stacked bidirectional layers" />
          )}
          {has('encoderDropout') && config.encoderType === 'lstm' && (
            <NumberField label="LSTM dropout" field="encoderDropout" config={config} set={set} errors={errors} step={0.05} disabled={!!from} help="between stacked layers: only 0 trains as PEFT" />
          )}
          {has('encoderHiddenSize') && (config.method !== 'prefix-tuning' || config.prefixProjection) && (
            <Field label="Encoder hidden size" field="encoderHiddenSize" errors={errors} help={encoderHiddenHelp(config, model?.dims)}>
              {(id) => (
                <input
                  id={id} type="number" step={1} value={config.encoderHiddenSize ?? ''}
                  onChange={(e) => set({ encoderHiddenSize: e.target.value.trim() === '' ? null : Number(e.target.value) })}
                />
              )}
            </Field>
          )}
          {has('promptInit') && (
            <Field label="Virtual tokens start as" field="promptInit" errors={errors}>
              {(id) => (
                <select id={id} value={config.promptInit} disabled={!!from} onChange={(e) => set({ promptInit: e.target.value as TrainConfig['promptInit'] })}>
                  <option value="random">random values, N(0, 1)</option>
                  <option value="text">the embeddings of a text</option>
                </select>
              )}
            </Field>
          )}
          {has('promptInitText') && config.promptInit === 'text' && (
            <Field label="Init text" field="promptInitText" errors={errors} help="its tokens, repeated or cut to the virtual tokens">
              {(id) => <input id={id} value={config.promptInitText} disabled={!!from} placeholder="Answer like a pirate:" onChange={(e) => set({ promptInitText: e.target.value })} />}
            </Field>
          )}
          {has('reductionFactor') && (
            <NumberField
              label="Reduction factor" field="reductionFactor" config={config} set={set} errors={errors} step={1} disabled={!!from}
              help={model?.dims && config.reductionFactor > 0 ? `bottleneck ${Math.max(1, Math.floor(model.dims.hiddenSize / config.reductionFactor))} wide on ${model.dims.hiddenSize}-wide outputs` : undefined}
            />
          )}
          {has('adapterActivation') && (
            <Field label="Adapter activation" field="adapterActivation" errors={errors}>
              {(id) => (
                <select id={id} value={config.adapterActivation} disabled={!!from} onChange={(e) => set({ adapterActivation: e.target.value as TrainConfig['adapterActivation'] })}>
                  <option value="relu">ReLU</option>
                  <option value="gelu_new">GELU (tanh)</option>
                  <option value="silu">SiLU</option>
                </select>
              )}
            </Field>
          )}
          {modelQuant === 'nf4' && (
            <Field label="Double quantization" field="doubleQuant" errors={errors}>
              {(id) => <input id={id} type="checkbox" checked={config.doubleQuant} onChange={(e) => set({ doubleQuant: e.target.checked })} />}
            </Field>
          )}
        </div>
        <p className="small" data-testid="method-explanation">{method.explanation}</p>
        <p className="small muted" data-testid="method-advice">{method.advice}</p>
        {method.exports === 'model' ? (
          <p className="small" data-testid="whole-model">
            Trains every weight of the model: no rank, alpha or target modules. Exported as a whole model folder
            (model.safetensors, config.json, tokenizer) that transformers loads, not as an adapter.
          </p>
        ) : from ? (
          <p className="small" data-testid="locked-targets">
            Target modules (the adapter&apos;s): <code>{from.targets.join(', ') || (method.wrapsLinears ? 'PEFT default' : 'none (virtual tokens)')}</code>{from.rslora ? ' · rsLoRA' : ''}
          </p>
        ) : method.wrapsLinears ? (
          <Targets config={config} set={set} errors={errors} />
        ) : (
          <p className="small" data-testid="no-targets">
            {config.method === 'prefix-tuning'
              ? 'Wraps no layer: every attention layer attends to its trained keys and values ahead of every row (of every packed row with packing); nothing merges into the weights.'
              : 'Wraps no layer: the virtual tokens go ahead of every row (of every packed row with packing); nothing merges into the weights.'}
          </p>
        )}
      </fieldset>

      <fieldset disabled={locked}>
        <legend>Optimisation</legend>
        <div className="form-grid">
          <NumberField
            label="Learning rate" field="lr" config={config} set={set} errors={errors} step="any"
            help={method.exports === 'model' ? 'full fine-tuning: 1e-5 to 5e-5, 1e-4 for a tiny model (the presets set LoRA’s rates)' : undefined}
          />
          <Field label="Schedule" field="schedule" errors={errors}>
            {(id) => (
              <select id={id} value={config.schedule} onChange={(e) => set({ schedule: e.target.value as TrainConfig['schedule'] })}>
                <option value="cosine">cosine</option>
                <option value="linear">linear</option>
                <option value="constant">constant</option>
              </select>
            )}
          </Field>
          <Choice
            label="Warmup"
            options={[['ratio', 'fraction of steps'], ['steps', 'steps']]}
            value={config.warmupSteps === null ? 'ratio' : 'steps'}
            onChange={(v) => set({ warmupSteps: v === 'steps' ? 10 : null })}
          />
          {config.warmupSteps === null
            ? <NumberField label="Warmup fraction" field="warmupRatio" config={config} set={set} errors={errors} step={0.01} />
            : <NumberField label="Warmup steps" field="warmupSteps" config={config} set={set} errors={errors} step={1} />}
          <Choice
            label="Length"
            options={[['epochs', 'epochs'], ['steps', 'max steps']]}
            value={config.maxSteps === null ? 'epochs' : 'steps'}
            onChange={(v) => set({ maxSteps: v === 'steps' ? 100 : null })}
          />
          {config.maxSteps === null
            ? <NumberField label="Epochs" field="epochs" config={config} set={set} errors={errors} step={1} />
            : <NumberField label="Max steps" field="maxSteps" config={config} set={set} errors={errors} step={1} />}
          <NumberField label="Batch size" field="batchSize" config={config} set={set} errors={errors} step={1} />
          <NumberField label="Gradient accumulation" field="gradAccum" config={config} set={set} errors={errors} step={1} help={`effective batch ${config.batchSize * config.gradAccum || '—'}`} />
          <NumberField label="Max length (tokens)" field="maxLength" config={config} set={set} errors={errors} step={1} help={model ? `model context ${model.maxPositions}` : undefined} />
          <NumberField label="Weight decay" field="weightDecay" config={config} set={set} errors={errors} step={0.01} />
          <NumberField label="Seed" field="seed" config={config} set={set} errors={errors} step={1} />
        </div>
      </fieldset>

      <fieldset disabled={locked}>
        <legend>Evaluation and checkpoints</legend>
        <div className="form-grid">
          <NumberField label="Eval split" field="evalSplit" config={config} set={set} errors={errors} step={0.01} help={dataset && config.evalSplit > 0 ? `≈ ${Math.max(1, Math.round(config.evalSplit * dataset.rows))} of ${dataset.rows} rows` : undefined} />
          <NumberField label="Evaluate every (steps, 0 = at the end)" field="evalEvery" config={config} set={set} errors={errors} step={1} />
          <NumberField label="Early stopping patience (0 = off)" field="earlyStoppingPatience" config={config} set={set} errors={errors} step={1} />
          <NumberField label="Checkpoint every (steps)" field="checkpointEvery" config={config} set={set} errors={errors} step={1} />
          <Field label="Run name" field={null} errors={errors}>
            {(id) => <input id={id} value={runName} onChange={(e) => setRunName(e.target.value)} placeholder="model · rank · dataset" />}
          </Field>
          <Field label="Sample prompt" field={null} errors={errors}>
            {(id) => <input id={id} value={samplePrompt} onChange={(e) => setSamplePrompt(e.target.value)} placeholder="the first row's prompt" />}
          </Field>
        </div>
      </fieldset>

      <section className="card plan" aria-labelledby="plan-title" data-testid="train-plan">
        <h3 id="plan-title">What this trains</h3>
        {!model && <p className="muted">No model loaded: <button type="button" className="link" onClick={() => go('models')}>pick one</button>.</p>}
        {plan && (
          <dl className="facts">
            <dt>Trainable parameters</dt>
            <dd data-testid="trainable-params">
              {plan.trainableParams.toLocaleString('en')} ({formatCount(plan.trainableParams)}
              {plan.wholeModel ? ': every weight of the model' : model ? `, ${((100 * plan.trainableParams) / (model.parameters + plan.trainableParams)).toFixed(3)}% of ${formatCount(model.parameters)}` : ''})
            </dd>
            <dt>{plan.wholeModel ? 'Trains' : `${method.label} on`}</dt>
            <dd>
              {plan.wholeModel ? 'the embeddings, the norms and every linear layer: ' : ''}
              <code>{plan.modules.join(', ') || '—'}</code>{model ? ` × ${model.layers} layers` : ''}
            </dd>
            <dt>GPU memory (estimate)</dt>
            <dd data-testid="memory-estimate">
              {plan.memory
                ? plan.wholeModel
                  ? `${formatBytes(plan.memory.totalBytes)}: weights in f32 ${formatBytes(plan.memory.baseWeightBytes)}, master weights + gradients + AdamW + trained copy ${formatBytes(plan.memory.loraBytes)}, activations ${formatBytes(plan.memory.activationBytes + plan.memory.transientBytes)}`
                  : `${formatBytes(plan.memory.totalBytes)}: weights ${formatBytes(plan.memory.baseWeightBytes)}, ${method.label} + AdamW ${formatBytes(plan.memory.loraBytes)}, activations ${formatBytes(plan.memory.activationBytes + plan.memory.transientBytes)}`
                : '—'}
            </dd>
          </dl>
        )}
        {plan?.problem && <p className="error small" role="alert" data-testid="plan-problem">{plan.problem}</p>}
        {dataset && <p className="muted small">Dataset: {dataset.fileName}, {dataset.rows} rows.</p>}
      </section>

      {error && <p className="error" role="alert" data-testid="train-error">{error}</p>}
      <div className="row">
        <button type="submit" className="primary" disabled={!!blocker} aria-describedby={blocker ? 'start-blocker' : undefined} data-testid="start-training">
          Start training
        </button>
        {blocker && <span id="start-blocker" className="muted" data-testid="start-blocker">{blocker}</span>}
      </div>
      <GpuClusterExport
        // Full fine-tuning: the config a run would start with (no target list: it trains every weight).
        config={method.exports === 'model' ? effectiveConfig(config, modelQuant) : config}
        name={runName}
        datasetId={datasetId}
        blocked={!model ? 'Load a model first.' : !dataset ? 'Load a dataset on the Data screen first.' : errors.length ? 'Fix the settings above first.' : ''}
      />
    </form>
  );
}

/** "Export for a GPU cluster": this configuration over the loaded model and dataset as train.py for TRL + accelerate,
 *  the rows as they would be trained, accelerate configs and a README (src/export/trl.ts), before any training. */
function GpuClusterExport({ config, name, datasetId, blocked }: { config: TrainConfig; name: string; datasetId: string | null; blocked: string }) {
  const exportConfig = useStudio((s) => s.exportTrainConfig);
  const cancel = useStudio((s) => s.cancelMerge);
  const state = useStudio((s) => s.merges[TRAIN_EXPORT_KEY]);
  const busy = state?.phase === 'merging';
  return (
    <details className="card" data-testid="trl-export" data-status={state?.phase ?? 'idle'}>
      <summary>Export for a GPU cluster</summary>
      <p className="small">
        When a run outgrows this tab: these settings as <code>train.py</code> for TRL + PEFT, the rows exactly as they would be
        trained, accelerate configs (DDP, FSDP, DeepSpeed) and a README. <code>python train.py</code> on one machine,{' '}
        <code>accelerate launch --config_file accelerate/ddp.yaml train.py</code> on many; the adapter it writes imports back on
        the Runs screen.
      </p>
      {blocked && <p className="muted small">{blocked}</p>}
      <div className="row">
        <button type="button" disabled={busy || !!blocked || !canPickFolder()} onClick={() => void exportConfig(config, name, datasetId, 'folder')}>
          Save into a folder…
        </button>
        <button type="button" disabled={busy || !!blocked} onClick={() => void exportConfig(config, name, datasetId, 'zip')}>
          Download .zip
        </button>
        {busy && <button type="button" onClick={() => cancel(TRAIN_EXPORT_KEY)}>Cancel</button>}
      </div>
      {busy && <p className="muted small" role="status">Exporting… {state.total > 0 ? `${formatBytes(state.done)} of ${formatBytes(state.total)}` : ''}</p>}
      {state && !busy && state.message && (
        <p className={state.phase === 'error' ? 'error small' : 'small'} role={state.phase === 'error' ? 'alert' : undefined} data-testid="trl-export-message">{state.message}</p>
      )}
    </details>
  );
}

function Field({ label, field, errors, help, children }: {
  label: string;
  field: keyof TrainConfig | null;
  errors: FieldError[];
  help?: string;
  children: (id: string, describedBy: string | undefined) => ReactNode;
}) {
  const id = useId();
  const errId = useId();
  const error = field ? errors.find((e) => e.field === field) : undefined;
  return (
    <div className={`field${error ? ' invalid' : ''}`} data-field={field ?? undefined}>
      <label htmlFor={id}>{label}</label>
      {children(id, error ? errId : undefined)}
      {help && !error && <span className="muted small">{help}</span>}
      {error && <span id={errId} className="error small field-error" role="alert">{error.message}</span>}
    </div>
  );
}

/** A number input that keeps what is typed (an empty or half-typed value is an error, not a silent default). */
function NumberField({ label, field, config, set, errors, step, help, disabled }: {
  label: string;
  field: keyof TrainConfig;
  config: TrainConfig;
  set: Setter;
  errors: FieldError[];
  step?: number | 'any';
  help?: string;
  disabled?: boolean;
}) {
  const value = config[field] as number | null;
  const [draft, setDraft] = useState<string | null>(null);
  const shown = draft ?? (value === null || Number.isNaN(value) ? '' : String(value));
  return (
    <Field label={label} field={field} errors={errors} help={help}>
      {(id, describedBy) => (
        <input
          id={id}
          type="number"
          step={step ?? 'any'}
          inputMode="decimal"
          value={shown}
          disabled={disabled}
          aria-invalid={describedBy ? true : undefined}
          aria-describedby={describedBy}
          onChange={(e) => {
            setDraft(e.target.value);
            const text = e.target.value.trim();
            set({ [field]: text === '' ? Number.NaN : Number(text) } as Partial<TrainConfig>);
          }}
          onBlur={() => setDraft(null)}
        />
      )}
    </Field>
  );
}

function Choice({ label, options, value, onChange }: { label: string; options: [string, string][]; value: string; onChange(v: string): void }) {
  const name = useId();
  return (
    <fieldset className="choice">
      <legend>{label}</legend>
      {options.map(([v, text]) => (
        <label key={v}>
          <input type="radio" name={name} value={v} checked={value === v} onChange={() => onChange(v)} /> {text}
        </label>
      ))}
    </fieldset>
  );
}

function Targets({ config, set, errors }: { config: TrainConfig; set: Setter; errors: FieldError[] }) {
  const model = useStudio((s) => s.model);
  // The method's own default (PEFT's mapping for it: LoRA's and IA³'s differ).
  const defaults = model ? [...((METHODS[config.method] ?? METHODS.lora).defaultTargets[model.modelType as ModelType] ?? model.defaultTargets)] : [];
  const name = useId();
  const t = config.targets;
  const mode = t.length === 0 ? 'default' : t.length === 1 && (t[0] === 'all-linear' || t[0] === 'attention') ? t[0] : 'custom';
  const modules = model?.linearModules ?? [];
  const error = errors.find((e) => e.field === 'targets');
  return (
    <fieldset className="choice targets" data-testid="targets">
      <legend>Target modules</legend>
      <label><input type="radio" name={name} checked={mode === 'default'} onChange={() => set({ targets: [] })} /> PEFT default{model ? ` (${defaults.join(', ')})` : ''}</label>
      <label><input type="radio" name={name} checked={mode === 'attention'} onChange={() => set({ targets: ['attention'] })} /> every attention projection</label>
      <label><input type="radio" name={name} checked={mode === 'all-linear'} onChange={() => set({ targets: ['all-linear'] })} /> all-linear (every linear layer but the head)</label>
      <label><input type="radio" name={name} checked={mode === 'custom'} onChange={() => set({ targets: defaults.length ? defaults : ['q_proj'] })} disabled={!model} /> choose:</label>
      {mode === 'custom' && (
        <div className="row">
          {modules.map((m) => (
            <label key={m}>
              <input
                type="checkbox"
                checked={t.includes(m)}
                onChange={(e) => set({ targets: e.target.checked ? [...t, m] : t.filter((x) => x !== m) })}
              />{' '}
              <code>{m}</code>
            </label>
          ))}
        </div>
      )}
      {error && <span className="error small" role="alert">{error.message}</span>}
    </fieldset>
  );
}

type Dims = { hiddenSize: number; numLayers: number; numKvHeads: number; headDim: number };

/** What the virtual tokens are: rows ahead of every input (prompt tuning, P-tuning), or every layer's key/value
 *  prefix (prefix tuning: layers × 2 × the key/value width, PEFT's token_dim). */
function virtualTokensHelp(c: TrainConfig, d: Dims): string {
  if (c.method !== 'prefix-tuning') return `ahead of every row: ${c.numVirtualTokens} × ${d.hiddenSize} values`;
  return `keys and values ahead of every layer's: ${c.numVirtualTokens} × ${d.numLayers} layers × 2 × ${d.numKvHeads * d.headDim} values`;
}

/** The encoder's default width, as PEFT fills it: the hidden size (P-tuning), token_dim (prefix tuning). */
function encoderHiddenHelp(c: TrainConfig, d: Dims | undefined): string {
  if (c.method === 'prefix-tuning') return `empty = the key/value width${d ? ` (${d.numKvHeads * d.headDim})` : ''}, as PEFT`;
  const lstm = c.encoderType === 'lstm' ? '; the LSTM\'s width (its head is twice as wide)' : '';
  return `empty = the model's hidden size${d ? ` (${d.hiddenSize})` : ''}, as PEFT${lstm}`;
}
