// The worker's one training run (running or paused) and, after a lost device, what recovery needs to start it again:
// the state the training loop (training.ts), the controls, the export and recovery.ts share.
import type { Engine } from '../../gpu/engine.ts';
import { RunsDb, idbKeyValue, type RunRecord } from '../../store/runs-db.ts';
import type { EngineEvent, EngineRequest, StepMetrics } from '../protocol.ts';
import type { Trainer } from '../trainer.ts';
import type { LoadedModel } from './state.ts';

export type StartTraining = Extract<EngineRequest, { type: 'start-training' }>;
type RunControl = Extract<EngineRequest, { type: 'pause' | 'resume' | 'stop' }>;
type ExportAdapter = Extract<EngineRequest, { type: 'export-adapter' }>;

/** Posts an event, moving the listed buffers instead of copying them. */
export type PostTransfer = (event: EngineEvent, transfer?: Transferable[]) => void;
/** Runs GPU work in the worker's request order (engine-worker.ts's queue). */
export type Exclusive = <T>(work: () => Promise<T>) => Promise<T>;

export interface ActiveRun {
  id: string;
  /** The request that started it: recovery starts it again with it after a lost device. */
  request: StartTraining;
  /** The engine it trains on (a lost device's engine stays dead; recovery makes a new one). */
  engine: Engine;
  /** Set when the device was lost under it: the loop ends without writing anything, recovery takes over. */
  lost: boolean;
  record: RunRecord;
  trainer: Trainer;
  model: LoadedModel;
  control: 'run' | 'pause' | 'stop';
  /** Why the loop paused by itself (storage full), shown with the paused state. */
  pauseMessage: string;
  wake: (() => void) | null;
  pending: StepMetrics[];
  lastFlush: number;
  promptIds: number[];
  sampleEvery: number;
  lastEvalStep: number;
  lastSampleStep: number;
  /** Training wall time before this session (resumed runs) and since the current stretch began. */
  secondsBefore: number;
  stretchStart: number;
  releaseLock: () => void;
}

let active: ActiveRun | null = null;
let runsDb: RunsDb | null = null;

/** The runs store of this worker (IndexedDB). */
export function db(): RunsDb {
  runsDb ??= new RunsDb(idbKeyValue());
  return runsDb;
}

/** The run this worker is training (running or paused), if any. */
export function activeRun(): ActiveRun | null {
  return active;
}

export function setActiveRun(run: ActiveRun | null): void {
  active = run;
}

/** The run abandoned by a lost device, if any (its controls are remembered for the restart). */
export function currentLostRun(): LostRun | null {
  return lostRun;
}

/** The run this worker is training (running or paused), if any: model and dataset loads must wait for it. */
export function activeRunId(): string | null {
  return active?.id ?? null;
}

/** What recovery needs to start a run again on a new device. */
export interface LostRun {
  request: StartTraining;
  runId: string;
  name: string;
  /** What the user last asked: a paused run comes back paused, a stopping one stops. */
  control: 'run' | 'pause' | 'stop';
  /** The step trained when the device went, and the step of the last saved checkpoint. */
  step: number;
  checkpointStep: number | null;
  /** The run's Web Lock, kept across the recovery so no other tab takes the run meanwhile. */
  releaseLock: () => void;
}

/** A run abandoned by a lost device until recovery starts it again or gives it up: pause, resume and stop sent
 *  meanwhile change the state it comes back in. */
let lostRun: LostRun | null = null;

/** The device under the active run is gone: the run stops being active at once (its loop ends quietly at its next
 *  await, its GPU state died with the device) and what restarting it needs is returned. Null when no run is active. */
export function abandonActiveRun(): LostRun | null {
  const run = active;
  if (!run) return null;
  active = null;
  run.lost = true;
  run.wake?.(); // a paused loop wakes up to end
  return (lostRun = {
    request: run.request,
    runId: run.id,
    name: run.record.name,
    control: run.control,
    step: run.trainer.step,
    checkpointStep: run.record.checkpoint?.step ?? null,
    releaseLock: run.releaseLock,
  });
}

/** Recovery gave the lost run up (or started it again): controls for it are answered as usual again. */
export function forgetLostRun(runId: string): void {
  if (lostRun?.runId === runId) lostRun = null;
}
