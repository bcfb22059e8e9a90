// Buffers by role for a recording that repeats (a training step): the forward's `b3.n1`, the backward's `dhs`, the
// first micro-batch's tokens… each role gets one buffer, sized once for the most rows the run will see, and the same
// buffer every step. So a steady-state step allocates nothing, its bind groups (cached by buffer identity in
// PipelineCache) are the same objects every step, and the pool's peak stays flat over rows of varied lengths.
//
// Sharing a role's buffer between recordings is safe because the GPU runs submissions in queue order and every CPU
// write into these buffers goes through Recorder.write (queued right before its own submission).
import { STORAGE_USAGE, type BufferPool } from './buffers.ts';

export class Workspace {
  private readonly slots = new Map<string, GPUBuffer>();
  /** Rows (tokens of a packed micro-batch) every row-sized buffer is allocated for, at least. */
  private reserved = 0;
  /** Bumped whenever a role's buffer is replaced by a larger one (a recording made before then is stale). */
  generation = 0;

  constructor(private readonly pool: BufferPool) {}

  /** Sizes row-scaled buffers for at least `rows` rows from now on (the run's largest micro-batch). */
  reserveRows(rows: number): void {
    this.reserved = Math.max(this.reserved, rows);
  }

  /** The rows to allocate for a recording of `T` rows. */
  rows(T: number): number {
    return Math.max(T, this.reserved);
  }

  /** The buffer of `role`, at least `bytes` long: the same one on every call while it is large enough. */
  get(role: string, bytes: number): GPUBuffer {
    const have = this.slots.get(role);
    if (have && have.size >= bytes) return have;
    if (have) {
      // A later dispatch on the queue may still read the old buffer: handing it back to the pool is safe (whoever
      // takes it next writes after those reads), destroying it would not be.
      this.pool.release(have);
      this.generation++;
    }
    const buffer = this.pool.acquire(bytes, STORAGE_USAGE, role);
    this.slots.set(role, buffer);
    return buffer;
  }

  /** Bytes held across all roles. */
  get bytes(): number {
    let n = 0;
    for (const b of this.slots.values()) n += b.size;
    return n;
  }

  /** Hands every buffer back to the pool. The workspace can be used again afterwards (it starts empty). */
  release(): void {
    for (const b of this.slots.values()) this.pool.release(b);
    this.slots.clear();
    this.generation++;
  }
}
