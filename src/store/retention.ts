// The checkpoint-retention policy (issue 14), applied by RunsDb wherever a checkpoint or an adapter is written.
//
//   1. A run keeps one checkpoint: its newest (resume and device-loss recovery need only that one). The one before
//      is deleted once the new one's pointer is committed, so while a checkpoint is written both exist and a crash
//      or a full disk at any point leaves the last good one (runs-db.ts, swap).
//   2. When the storage is full (the estimate says a write will not fit, or the write fails with a quota error),
//      checkpoints that nothing needs any more are pruned, oldest first, until the write fits: those of *finished*
//      runs whose adapter is saved. A finished run cannot be resumed, and its adapter (what Download, Continue and
//      Merge use) is kept; its card says the checkpoint was pruned, when and for which run.
//   3. Never pruned: the checkpoint of a run that can still resume (running, paused, stopped, failed, interrupted),
//      a finished run's checkpoint when its adapter was not saved (the only copy of what it learnt), adapters, and
//      the run being written. When pruning is not enough the write is refused with a StorageFullError that says
//      what was pruned and which runs' checkpoints the user could delete; the run's last good checkpoint stays.
import type { RunRecord } from './runs-db.ts';

/** How many checkpoints each run keeps (the newest). */
export const CHECKPOINTS_PER_RUN = 1;

export interface PruneCandidate {
  runId: string;
  name: string;
  key: string;
  step: number;
  bytes: number;
}

/** Checkpoints the policy lets go when storage is full, in the order they go (least recently updated run first).
 *  `writing`: the run being saved, never a candidate. */
export function prunableCheckpoints(runs: readonly RunRecord[], writing: string): PruneCandidate[] {
  return runs
    .filter((r) => r.id !== writing && r.status === 'finished' && r.checkpoint && r.adapter)
    .sort((a, b) => a.updated - b.updated || a.created - b.created)
    .map((r) => ({ runId: r.id, name: r.name, key: r.checkpoint!.key, step: r.checkpoint!.step, bytes: r.checkpoint!.bytes }));
}

/** The first candidates whose bytes add up to `shortfall` (at least one; all of them when the shortfall is unknown). */
export function pickToPrune(candidates: readonly PruneCandidate[], shortfall: number | null): PruneCandidate[] {
  const out: PruneCandidate[] = [];
  let freed = 0;
  for (const c of candidates) {
    if (out.length > 0 && shortfall !== null && freed >= shortfall) break;
    out.push(c);
    freed += c.bytes;
  }
  return out;
}

/** Checkpoints the policy keeps that the user could delete to make room (named in the storage-full message). */
export function keptCheckpoints(runs: readonly RunRecord[], writing: string): PruneCandidate[] {
  const prunable = new Set(prunableCheckpoints(runs, writing).map((c) => c.key));
  return runs
    .filter((r) => r.id !== writing && r.checkpoint && !prunable.has(r.checkpoint.key))
    .map((r) => ({ runId: r.id, name: r.name, key: r.checkpoint!.key, step: r.checkpoint!.step, bytes: r.checkpoint!.bytes }))
    .sort((a, b) => b.bytes - a.bytes);
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
  if (bytes >= 1024 ** 2) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

/** `the checkpoint of finished run "a" (step 3, 129.0 KiB)`, joined. */
export function describeCheckpoints(list: readonly PruneCandidate[], kind: string): string {
  return list.map((c) => `the checkpoint of ${kind}"${c.name}" (step ${c.step}, ${formatBytes(c.bytes)})`).join(', ');
}

/** What the pruned run's card says afterwards. */
export function prunedNote(c: PruneCandidate, forRun: string, at: Date): string {
  return `Its checkpoint (step ${c.step}) was pruned on ${at.toISOString().slice(0, 16).replace('T', ' ')} UTC when storage was full, ` +
    `to save run "${forRun}"; the adapter is kept.`;
}

/** What the run being saved shows while it goes on, after pruning made room for its checkpoint. */
export function prunedNotice(pruned: readonly PruneCandidate[], step: number): string {
  return `The browser's storage was full: to save the checkpoint of step ${step}, the retention policy pruned ${describeCheckpoints(pruned, 'finished run ')} ` +
    `(${pruned.length === 1 ? 'its adapter is' : 'their adapters are'} kept). Delete runs you no longer need on the Runs screen to make room.`;
}
