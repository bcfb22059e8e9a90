// The step profiler (issue 10, part 1): what one training step costs, dispatch by dispatch on the GPU and phase by
// phase on the CPU, with the API counters of src/gpu/counters.ts.
//
// How a trainer drives it (one StepProfiler per engine, reused for every step):
//
//   const profiler = new StepProfiler(engine);             // allocates its query sets and buffers once, here
//   profiler.begin(step);                                  // before recording the step
//   const rec = engine.record('step', { timing: profiler.timing });   // every recorder of the step (several are fine)
//   … record …;              profiler.cpu.mark('record');  // each mark charges the time since the previous mark
//   await rec.submitNoWait(); profiler.cpu.mark('submit');  // (or since begin) to the phase named
//   await rec.done();         profiler.cpu.mark('wait');
//   … read loss …;            profiler.cpu.mark('readback');
//   const profile = await profiler.end();                  // after every submission of the step is done
//
// `end()` takes the counters and CPU marks at once (synchronously) and then reads the timestamps, so the next
// step's begin() may follow end() before its promise settles. Recorders made with `profiler.timing` outside a
// begin/end pair are not timed (e.g. evaluation). Only one step is profiled at a time: a begin() without an end()
// (the step threw) is dropped by the next begin().
//
// With `timing` set, the Recorder gives every dispatch a compute pass of its own (so `passes` counts dispatches):
// where the adapter has timestamp-query each pass writes begin/end timestamps into a query set, resolved and copied
// into a persistent MAP_READ buffer by the step's own submission (`beforeFinish`) and read in `end()`. Without
// timestamp-query (SwiftShader, some browsers) the profile still has the counts, each kernel's calls, FLOPs and
// bytes, and the CPU side; `gpu_ms` and every `ms` are null.
//
// Dispatches past the query capacity (default 2048 a step, grown after a step that overflowed, up to 8192) are
// counted in `untimed`. The profiler's own buffers are made in its constructor (or when it grows), outside any step;
// its own read-back is not counted in `readbacks`.
//
// GC: where PerformanceObserver offers 'gc' entries (Node), the pauses that began during the step are summed into
// cpu.gc_ms (delivered asynchronously: a pause in the last moments of a step may be counted with the next one).
import { BufferUsage } from './buffers.ts';
import { countersSince, gpuCounters, snapshotCounters, type GpuCounters } from './counters.ts';
import type { Engine } from './engine.ts';
import type { DispatchCost, DispatchInfo, DispatchTiming } from './kernel.ts';

const QUERY_RESOLVE = 0x0200; // GPUBufferUsage.QUERY_RESOLVE
const MAP_READ = 0x0001; // GPUMapMode.READ
/** WebGPU's largest query set. */
const QUERIES_PER_SET = 4096;
const DISPATCHES_PER_SET = QUERIES_PER_SET / 2;

// ---------------------------------------------------------------------------------------------------------------
// the profile

/** One row of a breakdown: a kernel family, a layer or an op. */
export interface ProfileRow {
  name: string;
  calls: number;
  /** GPU milliseconds of its dispatches (null without timestamps). */
  ms: number | null;
  /** Its fraction of the step's timed GPU time (null without timestamps). */
  share: number | null;
  /** GFLOP/s over its timed dispatches (null without timestamps or without a FLOP count). */
  gflops: number | null;
  /** GB/s over its timed dispatches (null without timestamps or without a byte count). */
  gbps: number | null;
  /** FLOPs and bytes of its dispatches, as the kernel wrappers state them (src/gpu/kernels/cost.ts). */
  flops: number;
  bytes: number;
}

/** The CPU side of a step, in milliseconds: every phase the trainer marked, plus these. */
export interface CpuProfile {
  /** begin() → end(). */
  total_ms: number;
  /** Time not covered by any mark. */
  other_ms: number;
  /** GC pauses that began during the step (0 where not measurable, see gc_measured). */
  gc_ms: number;
  gc_measured: boolean;
  /** The trainer's phases, e.g. record_ms, submit_ms, wait_ms, readback_ms. */
  [phase: `${string}_ms`]: number;
}

/** What `lora-studio train --profile` prints after each step, as {"profile": StepProfile}. */
export interface StepProfile {
  step: number;
  dispatches: number;
  passes: number;
  submits: number;
  buffers_created: number;
  bind_groups_created: number;
  readbacks: number;
  /** Σ of every timed dispatch's begin→end, in ms; null without timestamp-query. */
  gpu_ms: number | null;
  /** First timed dispatch's begin → last one's end (null without timestamps). */
  span_ms: number | null;
  /** Σ of the gaps between one timed dispatch's end and the next one's begin: copies, clears, barriers, launch
   *  latency and CPU stalls between submissions (null without timestamps). */
  idle_ms: number | null;
  /** Dispatches that got no timestamps (past the query capacity). */
  untimed: number;
  cpu: CpuProfile;
  /** By kernel family (kernelFamily), slowest first (most FLOPs first without timestamps). */
  kernels: ProfileRow[];
  /** By layer: the first scope component (b0, b1, …, head, optimizer), in order of appearance. */
  layers: ProfileRow[];
  /** By op: the scope with its block component removed (fwd/attn.qkv summed over blocks), slowest first. */
  ops: ProfileRow[];
}

/** One dispatch as profiled: what it was and, when timed, its begin/end timestamps in ns. */
export interface ProfiledDispatch extends DispatchInfo {
  beginNs?: number;
  endNs?: number;
}

/** The family a kernel variant's label belongs to, for the breakdown by kernel: the label's first two components
 *  (matmul.blocked4, lora.tiled, attention.backward_dq, xent.logitsTiled, elementwise.add…), except where the second
 *  is a storage type or a norm kind: embedding.f16.pos → embedding, rope.inplace → rope, norm.rmsnorm.forward →
 *  norm.forward. */
export function kernelFamily(label: string): string {
  const parts = label.split('.');
  switch (parts[0]) {
    case 'embedding':
    case 'rope':
      return parts[0];
    case 'norm':
      return parts.length >= 3 ? `norm.${parts[2]}` : label;
    default:
      return parts.slice(0, 2).join('.');
  }
}

/** A scope component that names one block of the model: b3, h.11, layer12, blocks.0. */
const BLOCK = /^[A-Za-z_.]*\d+$/;

/** The layer of a scope (its first component) and its op (the scope without the block component). */
export function scopeParts(scope: string): { layer: string; op: string } {
  if (!scope) return { layer: '(unscoped)', op: '(unscoped)' };
  const parts = scope.split('/');
  const rest = parts.filter((p, i) => !(i === 0 && BLOCK.test(p)));
  return { layer: parts[0], op: rest.length ? rest.join('/') : parts[0] };
}

function durationNs(d: ProfiledDispatch): number | null {
  if (d.beginNs === undefined || d.endNs === undefined) return null;
  return Math.max(0, d.endNs - d.beginNs);
}

interface Acc {
  calls: number;
  ns: number;
  timed: number;
  flops: number;
  bytes: number;
  /** FLOPs and bytes of the timed dispatches only, for the rates. */
  timedFlops: number;
  timedBytes: number;
}

function aggregate(dispatches: readonly ProfiledDispatch[], keyOf: (d: ProfiledDispatch) => string, totalNs: number, timed: boolean): ProfileRow[] {
  const groups = new Map<string, Acc>();
  for (const d of dispatches) {
    const key = keyOf(d);
    let a = groups.get(key);
    if (!a) groups.set(key, (a = { calls: 0, ns: 0, timed: 0, flops: 0, bytes: 0, timedFlops: 0, timedBytes: 0 }));
    const flops = d.cost?.flops ?? 0;
    const bytes = d.cost?.bytes ?? 0;
    a.calls++;
    a.flops += flops;
    a.bytes += bytes;
    const ns = durationNs(d);
    if (ns !== null) {
      a.ns += ns;
      a.timed++;
      a.timedFlops += flops;
      a.timedBytes += bytes;
    }
  }
  return [...groups].map(([name, a]) => {
    const has = timed && a.timed > 0;
    const rate = (x: number) => (has && a.ns > 0 && x > 0 ? round(x / a.ns, 3) : null); // per ns = G per s
    return {
      name,
      calls: a.calls,
      ms: has ? round(a.ns / 1e6, 4) : null,
      share: has && totalNs > 0 ? round(a.ns / totalNs, 4) : null,
      gflops: rate(a.timedFlops),
      gbps: rate(a.timedBytes),
      flops: a.flops,
      bytes: a.bytes,
    };
  });
}

const byTimeThenFlops = (a: ProfileRow, b: ProfileRow) => (b.ms ?? -1) - (a.ms ?? -1) || b.flops - a.flops || a.name.localeCompare(b.name);

/** The profile of one step from its dispatches (in submission order), counters and CPU phases. Pure: the unit
 *  tests feed it synthetic dispatches. */
export function summarizeProfile(
  step: number,
  dispatches: readonly ProfiledDispatch[],
  counters: GpuCounters,
  cpu: CpuProfile,
  timestamps: boolean,
): StepProfile {
  let totalNs = 0;
  let idleNs = 0;
  let first: number | null = null;
  let last: number | null = null;
  let prevEnd: number | null = null;
  let untimed = 0;
  for (const d of dispatches) {
    const ns = durationNs(d);
    if (ns === null) {
      untimed++;
      continue;
    }
    totalNs += ns;
    first = first === null ? d.beginNs! : Math.min(first, d.beginNs!);
    last = last === null ? d.endNs! : Math.max(last, d.endNs!);
    if (prevEnd !== null) idleNs += Math.max(0, d.beginNs! - prevEnd);
    prevEnd = d.endNs!;
  }
  const timed = timestamps && first !== null;
  const layers = aggregate(dispatches, (d) => scopeParts(d.scope).layer, totalNs, timed);
  return {
    step,
    dispatches: counters.dispatches,
    passes: counters.passes,
    submits: counters.submits,
    buffers_created: counters.buffersCreated,
    bind_groups_created: counters.bindGroupsCreated,
    readbacks: counters.readbacks,
    gpu_ms: timed ? round(totalNs / 1e6, 4) : null,
    span_ms: timed ? round((last! - first!) / 1e6, 4) : null,
    idle_ms: timed ? round(idleNs / 1e6, 4) : null,
    untimed: timestamps ? untimed : dispatches.length,
    cpu,
    kernels: aggregate(dispatches, (d) => kernelFamily(d.kernel), totalNs, timed).sort(byTimeThenFlops),
    layers,
    ops: aggregate(dispatches, (d) => scopeParts(d.scope).op, totalNs, timed).sort(byTimeThenFlops),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------------------------------------------------------
// the CPU side

/** Phase marks: `mark(name)` charges the time since the previous mark (or since begin) to `name`; `add(name, ms)`
 *  charges a duration measured elsewhere. Names are reported as `<name>_ms`. */
export class CpuPhases {
  private last = 0;
  private phases = new Map<string, number>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Starts over (StepProfiler.begin calls it). */
  reset(): void {
    this.phases = new Map();
    this.last = this.now();
  }

  mark(name: string): void {
    const t = this.now();
    this.add(name, t - this.last);
    this.last = t;
  }

  add(name: string, ms: number): void {
    this.phases.set(name, (this.phases.get(name) ?? 0) + ms);
  }

  /** The phases so far, as `<name>_ms` fields. */
  snapshot(): Record<`${string}_ms`, number> {
    const out: Record<`${string}_ms`, number> = {};
    for (const [name, ms] of this.phases) out[`${name}_ms`] = round(ms, 3);
    return out;
  }

  get markedMs(): number {
    let s = 0;
    for (const ms of this.phases.values()) s += ms;
    return s;
  }
}

/** GC pauses from PerformanceObserver 'gc' entries where the host has them (Node); none elsewhere. */
class GcWatch {
  private readonly entries: { start: number; duration: number }[] = [];
  private observer: PerformanceObserver | null = null;
  readonly measured: boolean;

  constructor() {
    const PO = (globalThis as { PerformanceObserver?: typeof PerformanceObserver }).PerformanceObserver;
    this.measured = !!PO && (PO.supportedEntryTypes ?? []).includes('gc');
    if (!this.measured || !PO) return;
    this.observer = new PO((list) => {
      for (const e of list.getEntries()) this.entries.push({ start: e.startTime, duration: e.duration });
      if (this.entries.length > 4096) this.entries.splice(0, this.entries.length - 4096);
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** Milliseconds of GC pauses that began in [from, to], forgetting older entries. */
  take(from: number, to: number): number {
    let ms = 0;
    for (const e of this.entries) if (e.start >= from && e.start <= to) ms += e.duration;
    const keep = this.entries.filter((e) => e.start > to);
    this.entries.length = 0;
    this.entries.push(...keep);
    return ms;
  }

  dispose(): void {
    this.observer?.disconnect();
    this.observer = null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the profiler

export interface StepProfilerOptions {
  /** Time the GPU with timestamp queries (default: when the adapter has timestamp-query). */
  timestamps?: boolean;
  /** Dispatches timed per step before growing (default 2048: one query set). */
  maxDispatches?: number;
  /** The most it grows to after a step that overflowed (default 8192). */
  growTo?: number;
  /** Watch GC pauses where the host reports them (default true). */
  gc?: boolean;
}

interface Active {
  step: number;
  before: GpuCounters;
  started: number;
  dispatches: ProfiledDispatch[];
  /** Queries handed out, and the first one not yet resolved by a submission. */
  queries: number;
  resolved: number;
  /** The read-back buffer of this step (two alternate, so a step's read may overlap the next one's recording). */
  readback: number;
  overflowed: boolean;
}

export class StepProfiler {
  readonly timestamps: boolean;
  readonly cpu = new CpuPhases();
  /** Pass to every `engine.record(label, { timing })` of a profiled step. */
  readonly timing: DispatchTiming;

  private readonly device: GPUDevice;
  private querySets: GPUQuerySet[] = [];
  private resolveBuffer: GPUBuffer | null = null;
  private readbacks: GPUBuffer[] = [];
  private readbackBusy: (Promise<void> | null)[] = [null, null];
  private capacity = 0; // dispatches
  private readonly growTo: number;
  private active: Active | null = null;
  private nextReadback = 0;
  private readonly gc: GcWatch | null;
  /** The dispatches of the step ended last, with their timestamps (relative to its first one): for tests and for
   *  a closer look than the breakdowns. */
  lastDispatches: readonly ProfiledDispatch[] = [];

  constructor(e: Engine, options: StepProfilerOptions = {}) {
    this.device = e.device;
    this.timestamps = options.timestamps ?? e.gpu.features.has('timestamp-query');
    this.growTo = Math.max(options.growTo ?? 8192, options.maxDispatches ?? 0);
    if (this.timestamps) this.allocate(options.maxDispatches ?? DISPATCHES_PER_SET);
    this.gc = options.gc === false ? null : new GcWatch();
    this.timing = {
      timestampWrites: (info) => this.onDispatch(info),
      beforeFinish: (encoder) => this.resolve(encoder),
    };
  }

  /** Dispatches one step can time now. */
  get maxDispatches(): number {
    return this.capacity;
  }

  private allocate(dispatches: number): void {
    const sets = Math.ceil(dispatches / DISPATCHES_PER_SET);
    const counters = gpuCounters(this.device);
    while (this.querySets.length < sets) {
      this.querySets.push(this.device.createQuerySet({ type: 'timestamp', count: QUERIES_PER_SET, label: `profiler.queries.${this.querySets.length}` }));
    }
    this.capacity = Math.max(this.capacity, dispatches);
    const bytes = this.capacity * 2 * 8;
    if (!this.resolveBuffer) {
      counters.buffersCreated++;
      this.resolveBuffer = this.device.createBuffer({ size: QUERIES_PER_SET * 8, usage: QUERY_RESOLVE | BufferUsage.COPY_SRC, label: 'profiler.resolve' });
    }
    this.readbacks = this.readbacks.map((b, i) => {
      if (b.size >= bytes) return b;
      b.destroy();
      counters.buffersCreated++;
      return this.device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: `profiler.readback.${i}` });
    });
    while (this.readbacks.length < 2) {
      counters.buffersCreated++;
      this.readbacks.push(this.device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST, label: `profiler.readback.${this.readbacks.length}` }));
    }
  }

  /** Starts profiling `step`: counters and CPU phases from here. Record the step after this. A step begun and never
   *  ended (its recording or submission threw) is dropped. */
  begin(step: number): void {
    this.cpu.reset();
    const readback = this.nextReadback;
    this.nextReadback = 1 - this.nextReadback;
    this.active = {
      step,
      before: snapshotCounters(this.device),
      started: performance.now(),
      dispatches: [],
      queries: 0,
      resolved: 0,
      readback,
      overflowed: false,
    };
  }

  /** Whether a step is being profiled (between begin and end). */
  get profiling(): boolean {
    return this.active !== null;
  }

  private onDispatch(info: DispatchInfo): GPUComputePassTimestampWrites | null {
    const a = this.active;
    if (!a) return null;
    a.dispatches.push({ ...info });
    if (!this.timestamps) return null;
    if (a.queries + 2 > this.capacity * 2) {
      a.overflowed = true;
      return null;
    }
    const q = a.queries;
    a.queries += 2;
    (a.dispatches[a.dispatches.length - 1] as ProfiledDispatch & { query?: number }).query = q;
    const set = this.querySets[Math.floor(q / QUERIES_PER_SET)];
    const local = q % QUERIES_PER_SET;
    return { querySet: set, beginningOfPassWriteIndex: local, endOfPassWriteIndex: local + 1 };
  }

  /** Resolves the queries this submission wrote and copies them into the step's read-back buffer. */
  private resolve(encoder: GPUCommandEncoder): void {
    const a = this.active;
    if (!a || !this.timestamps || a.resolved === a.queries) return;
    const resolve = this.resolveBuffer!;
    const readback = this.readbacks[a.readback];
    let q = a.resolved;
    while (q < a.queries) {
      const set = Math.floor(q / QUERIES_PER_SET);
      const local = q % QUERIES_PER_SET;
      const count = Math.min(a.queries, (set + 1) * QUERIES_PER_SET) - q;
      // Resolved at offset 0 (resolveQuerySet wants 256-byte aligned offsets), then copied to where they belong;
      // commands in one encoder, and submissions on one queue, run in order, so the reuse is safe.
      encoder.resolveQuerySet(this.querySets[set], local, count, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, readback, q * 8, count * 8);
      q += count;
    }
    a.resolved = a.queries;
  }

  /** Ends the step begun last: call it once every submission of the step is done. Reads the timestamps. */
  async end(): Promise<StepProfile> {
    const a = this.active;
    if (!a) throw new Error('StepProfiler.end(): no step was begun');
    this.active = null;
    const ended = performance.now();
    const counters = countersSince(this.device, a.before);
    const marks = this.cpu.snapshot();
    const gcMs = this.gc?.take(a.started, ended) ?? 0;
    const total = ended - a.started;
    const cpu: CpuProfile = {
      ...marks,
      total_ms: round(total, 3),
      other_ms: round(Math.max(0, total - this.cpu.markedMs), 3),
      gc_ms: round(gcMs, 3),
      gc_measured: this.gc?.measured ?? false,
    };
    if (this.timestamps && a.resolved < a.queries) {
      throw new Error(`StepProfiler.end(): step ${a.step} has ${a.queries - a.resolved} timestamp queries no submission resolved (a recorder made with profiler.timing was never submitted)`);
    }
    if (this.timestamps && a.queries > 0) {
      const buffer = this.readbacks[a.readback];
      const reading = (async () => {
        await buffer.mapAsync(MAP_READ, 0, a.queries * 8);
        try {
          const stamps = new BigUint64Array(buffer.getMappedRange(0, a.queries * 8).slice(0));
          const base = stamps[0];
          for (const d of a.dispatches as (ProfiledDispatch & { query?: number })[]) {
            if (d.query === undefined) continue;
            // Relative to the step's first timestamp, so Number keeps every nanosecond.
            d.beginNs = Number(stamps[d.query] - base);
            d.endNs = Number(stamps[d.query + 1] - base);
            delete d.query;
          }
        } finally {
          buffer.unmap();
        }
      })();
      this.readbackBusy[a.readback] = reading;
      try {
        await reading;
      } finally {
        this.readbackBusy[a.readback] = null;
      }
    }
    if (a.overflowed && this.capacity < this.growTo) {
      await Promise.all(this.readbackBusy);
      this.allocate(Math.min(this.growTo, Math.max(a.dispatches.length, this.capacity * 2)));
    }
    this.lastDispatches = a.dispatches;
    return summarizeProfile(a.step, a.dispatches, counters, cpu, this.timestamps);
  }

  /** Frees the query sets and buffers, and stops watching GC. */
  dispose(): void {
    for (const s of this.querySets) s.destroy();
    this.resolveBuffer?.destroy();
    for (const b of this.readbacks) b.destroy();
    this.querySets = [];
    this.readbacks = [];
    this.resolveBuffer = null;
    this.gc?.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the tables

function fmt(x: number | null, digits: number): string {
  return x === null ? '–' : x.toFixed(digits);
}

/** A rate: fixed digits from 1 up, two significant digits below (CPU drivers run at GFLOP/s, not TFLOP/s). */
export function formatRate(x: number | null): string {
  if (x === null) return '–';
  return x >= 1 || x === 0 ? x.toFixed(2) : x.toPrecision(2);
}

function table(title: string, rows: readonly ProfileRow[], limit: number): string {
  const head = [title, 'calls', 'ms', 'share', 'TFLOP/s', 'GB/s'];
  const shown = rows.slice(0, limit);
  const body = shown.map((r) => [
    r.name,
    String(r.calls),
    fmt(r.ms, 3),
    r.share === null ? '–' : `${(r.share * 100).toFixed(1)}%`,
    formatRate(r.gflops === null ? null : r.gflops / 1000),
    formatRate(r.gbps),
  ]);
  if (rows.length > shown.length) {
    const rest = rows.slice(limit);
    const ms = rest.every((r) => r.ms === null) ? null : rest.reduce((s, r) => s + (r.ms ?? 0), 0);
    const share = rest.every((r) => r.share === null) ? null : rest.reduce((s, r) => s + (r.share ?? 0), 0);
    body.push([`(${rest.length} more)`, String(rest.reduce((s, r) => s + r.calls, 0)), fmt(ms, 3), share === null ? '–' : `${(share * 100).toFixed(1)}%`, '', '']);
  }
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** The profile as text: a summary, then tables by kernel family, by op and by layer (ms, share, TFLOP/s, GB/s). */
export function formatProfile(p: StepProfile, options: { limit?: number } = {}): string {
  const limit = options.limit ?? 30;
  const c = p.cpu;
  const phases = Object.entries(c)
    .filter(([k]) => k.endsWith('_ms') && !['total_ms', 'other_ms', 'gc_ms'].includes(k))
    .map(([k, v]) => `${k.slice(0, -3)} ${(v as number).toFixed(1)}`);
  const gpu =
    p.gpu_ms === null
      ? 'GPU time: not measured (no timestamp-query)'
      : `GPU ${p.gpu_ms.toFixed(2)} ms in dispatches, span ${p.span_ms!.toFixed(2)} ms, idle gaps ${p.idle_ms!.toFixed(2)} ms` +
        (p.untimed ? `, ${p.untimed} dispatches untimed` : '');
  const lines = [
    `step ${p.step} profile: ${p.dispatches} dispatches, ${p.passes} passes, ${p.submits} submits, ${p.buffers_created} buffers and ` +
      `${p.bind_groups_created} bind groups created, ${p.readbacks} read-backs`,
    gpu,
    `CPU ${c.total_ms.toFixed(1)} ms: ${[...phases, `other ${c.other_ms.toFixed(1)}`].join(', ')}; GC ${c.gc_measured ? `${c.gc_ms.toFixed(1)} ms` : 'not measured'}`,
    '',
    table('kernel', p.kernels, limit),
    '',
    table('op', p.ops, limit),
    '',
    table('layer', p.layers, limit),
  ];
  return lines.join('\n');
}
