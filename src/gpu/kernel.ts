// Kernels: a typed descriptor per pipeline variant, a per-device pipeline cache whose creation errors carry the
// kernel's label and the WGSL line:column, and a recorder that puts many dispatches into one command submission.
import { BufferUsage, writeQueue, type TypedArray } from './buffers.ts';
import { gpuCounters } from './counters.ts';

export type BindingAccess = 'read' | 'read_write';

/** A whole buffer, or a range of one (offset a multiple of 256 bytes), e.g. one tensor inside a flat buffer. */
export type BufferRef = GPUBuffer | GPUBufferBinding;

/** One compiled variant of a kernel family. Built by the family's module (e.g. kernels/matmul.ts), never by hand. */
export interface KernelSpec {
  /** Pipeline label: unique per variant, shown in every error about it. */
  readonly label: string;
  /** The .wgsl file it came from, for error messages. */
  readonly file: string;
  readonly wgsl: string;
  readonly entryPoint: string;
  /** Pipeline-overridable constants (bool as 0/1). */
  readonly constants: Readonly<Record<string, number>>;
  /** @group(0) storage bindings 0..n-1 in order; the params uniform, if any, is binding n. */
  readonly bindings: readonly BindingAccess[];
  /** Byte size of the params uniform struct (0 = none). Checked against every params buffer. */
  readonly paramsBytes: number;
}

export class ShaderCompileError extends Error {
  override name = 'ShaderCompileError';
}

export class KernelError extends Error {
  override name = 'KernelError';
}

interface CompiledKernel {
  /** The cache key: label and constants. */
  key: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Settles once compilation messages and validation are known; rejects with ShaderCompileError/KernelError. */
  checked: Promise<void>;
  /** Bind groups made for this pipeline, by the identity and range of every buffer bound (see bindGroupKey). */
  bindGroups: Map<string, GPUBindGroup>;
}

function formatCompileErrors(spec: KernelSpec, messages: readonly GPUCompilationMessage[]): string {
  const lines = spec.wgsl.split('\n');
  return messages
    .map((m) => {
      const source = lines[m.lineNum - 1] ?? '';
      return `${spec.file}:${m.lineNum}:${m.linePos}: ${m.type}: ${m.message}\n    ${source.trim()}`;
    })
    .join('\n');
}

/** Bind groups kept at most, over all pipelines: a run's steady state needs one per dispatch of a step (~700 for
 *  a 12-layer model); past this many (buffers come and go during evaluation, sampling, another run) the cache starts
 *  again rather than holding destroyed buffers' bind groups forever. */
const MAX_CACHED_BIND_GROUPS = 16384;

/** Bytes of one uniform chunk: the params of up to 256 dispatches (one per 256-byte slot). */
const UNIFORM_CHUNK_BYTES = 64 * 1024;

/**
 * Every dispatch's params uniform lives in a few device-wide chunks, bound with a dynamic offset, so no dispatch
 * creates a buffer and a dispatch's bind group stays the same from step to step. A recorder fills CPU copies of the
 * chunks while recording and writes them with queue.writeBuffer right before its submit: writes and submits are
 * ordered on the queue, so two recorders sharing a chunk never see each other's params.
 */
export class UniformArena {
  private readonly chunks: GPUBuffer[] = [];

  constructor(private readonly device: GPUDevice) {}

  readonly chunkBytes = UNIFORM_CHUNK_BYTES;

  /** The slot size: params are at most a few dozen bytes, each slot is one offset alignment (256 on most GPUs). */
  get slotBytes(): number {
    return Math.max(256, this.device.limits.minUniformBufferOffsetAlignment ?? 256);
  }

  chunk(index: number): GPUBuffer {
    while (this.chunks.length <= index) {
      gpuCounters(this.device).buffersCreated++;
      this.chunks.push(
        this.device.createBuffer({
          size: this.chunkBytes,
          usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST,
          label: `uniforms.${this.chunks.length}`,
        }),
      );
    }
    return this.chunks[index];
  }
}

/** A small integer per GPUBuffer object, for bind-group keys (buffers have no identity a Map key can combine). */
const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 1;
export function bufferId(buffer: GPUBuffer): number {
  let id = bufferIds.get(buffer);
  if (id === undefined) bufferIds.set(buffer, (id = nextBufferId++));
  return id;
}

/** Creates and caches pipelines per device. Creation is synchronous so a step can be recorded without awaiting;
 *  `ready()` (awaited by every submit) surfaces shader errors with file, line and column. Also owns what every
 *  recorder on the device shares: the uniform arena and the bind groups already made. */
export class PipelineCache {
  private readonly compiled = new Map<string, CompiledKernel>();
  private readonly pending = new Set<Promise<void>>();
  private cachedBindGroups = 0;

  private unusedBinding: GPUBuffer | null = null;
  readonly uniforms: UniformArena;

  constructor(readonly device: GPUDevice) {
    this.uniforms = new UniformArena(device);
  }

  /** A small read-only storage buffer to fill a binding that the chosen variant does not read (e.g. no bias). */
  get unused(): GPUBuffer {
    if (!this.unusedBinding) {
      gpuCounters(this.device).buffersCreated++;
      this.unusedBinding = this.device.createBuffer({ size: 16, usage: BufferUsage.STORAGE, label: 'unused-binding' });
    }
    return this.unusedBinding;
  }

  get(spec: KernelSpec): CompiledKernel {
    const key = `${spec.label}|${JSON.stringify(spec.constants)}`;
    const hit = this.compiled.get(key);
    if (hit) return hit;
    const { device } = this;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: spec.wgsl, label: spec.label });
    const layout = device.createBindGroupLayout({
      label: spec.label,
      entries: [
        ...spec.bindings.map((access, binding) => ({
          binding,
          visibility: 4 /* GPUShaderStage.COMPUTE */,
          buffer: { type: (access === 'read' ? 'read-only-storage' : 'storage') as GPUBufferBindingType },
        })),
        ...(spec.paramsBytes > 0
          ? [
              {
                binding: spec.bindings.length,
                visibility: 4,
                buffer: { type: 'uniform' as GPUBufferBindingType, hasDynamicOffset: true, minBindingSize: spec.paramsBytes },
              },
            ]
          : []),
      ],
    });
    const pipeline = device.createComputePipeline({
      label: spec.label,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout], label: spec.label }),
      compute: { module, entryPoint: spec.entryPoint, constants: { ...spec.constants } },
    });
    const validation = device.popErrorScope();
    const checked = (async () => {
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === 'error');
      if (errors.length > 0) throw new ShaderCompileError(`${spec.label}: WGSL does not compile\n${formatCompileErrors(spec, errors)}`);
      const error = await validation;
      if (error) throw new KernelError(`${spec.label}: pipeline creation failed: ${error.message}`);
    })();
    checked.catch(() => {}); // reported through ready(); never an unhandled rejection
    const entry: CompiledKernel = { key, pipeline, layout, checked, bindGroups: new Map() };
    this.compiled.set(key, entry);
    this.pending.add(checked);
    return entry;
  }

  /** The bind group of `kernel` over these buffers (and uniform chunk): made once, then the same object. */
  bindGroup(kernel: CompiledKernel, spec: KernelSpec, buffers: readonly BufferRef[], uniformChunk: GPUBuffer | null): GPUBindGroup {
    let key = '';
    for (const b of buffers) {
      if ('buffer' in b) key += `${bufferId(b.buffer)}@${b.offset ?? 0}+${b.size ?? -1},`;
      else key += `${bufferId(b)},`;
    }
    if (uniformChunk) key += `u${bufferId(uniformChunk)}`;
    const hit = kernel.bindGroups.get(key);
    if (hit) return hit;
    if (this.cachedBindGroups >= MAX_CACHED_BIND_GROUPS) this.clearBindGroups();
    const entries: GPUBindGroupEntry[] = buffers.map((b, binding) => ({
      binding,
      resource: 'buffer' in b ? b : { buffer: b },
    }));
    if (uniformChunk) entries.push({ binding: buffers.length, resource: { buffer: uniformChunk, offset: 0, size: spec.paramsBytes } });
    gpuCounters(this.device).bindGroupsCreated++;
    const group = this.device.createBindGroup({ layout: kernel.layout, entries, label: spec.label });
    kernel.bindGroups.set(key, group);
    this.cachedBindGroups++;
    return group;
  }

  /** Forgets every cached bind group. */
  private clearBindGroups(): void {
    for (const k of this.compiled.values()) k.bindGroups.clear();
    this.cachedBindGroups = 0;
  }

  /** Resolves when every pipeline created so far is known good; rejects with the first error otherwise. */
  async ready(): Promise<void> {
    const waiting = [...this.pending];
    this.pending.clear();
    await Promise.all(waiting);
  }
}

export type ParamField = readonly ['u32' | 'i32' | 'f32', number];

/** Packs a params uniform: 4-byte fields in declaration order, padded to 16 bytes as uniform structs are. */
export function packParams(fields: readonly ParamField[]): ArrayBuffer {
  const bytes = Math.ceil((fields.length * 4) / 16) * 16;
  const buffer = new ArrayBuffer(bytes);
  const view = new DataView(buffer);
  fields.forEach(([type, value], i) => {
    if (type === 'f32') view.setFloat32(i * 4, value, true);
    else if (type === 'i32') view.setInt32(i * 4, value, true);
    else {
      if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new KernelError(`u32 param out of range: ${value}`);
      view.setUint32(i * 4, value, true);
    }
  });
  return buffer;
}

export type Workgroups = readonly [number, number, number];

/** What a dispatch costs, for the profiler's TFLOP/s and GB/s columns (approximate: the work the math needs, not
 *  what a kernel's tiling re-reads). */
export interface DispatchCost {
  flops?: number;
  bytes?: number;
}

/** One dispatch as the profiler sees it. */
export interface DispatchInfo {
  /** The kernel variant's label, e.g. matmul.blocked4.f32.tB. */
  kernel: string;
  /** Where in the model it runs, e.g. b3/bwd/mlp.down (see Recorder.scope). */
  scope: string;
  cost?: DispatchCost;
}

/** Per-dispatch GPU timing (the profiler): each dispatch then gets a compute pass of its own with timestamp writes. */
export interface DispatchTiming {
  /** Timestamp writes for this dispatch's pass, or null to leave it untimed (e.g. out of query slots). */
  timestampWrites(info: DispatchInfo): GPUComputePassTimestampWrites | null;
  /** Called once before the command buffer is finished: resolve the queries, copy them for reading. */
  beforeFinish(encoder: GPUCommandEncoder): void;
}

export interface RecorderOptions {
  /** Awaited before submitting, e.g. the buffer pool's allocation check. */
  beforeSubmit?: () => Promise<void>;
  timing?: DispatchTiming;
}

/** Records dispatches into one command encoder (one compute pass between copies) and submits them together.
 *  Nothing it records allocates: params go into the device's uniform arena, bind groups come from the pipeline
 *  cache, and CPU→GPU writes (`write`) are deferred to the submit, in order with it on the queue. */
export class Recorder {
  private readonly encoder: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | null = null;
  private readonly finishers: (() => void)[] = [];
  private readonly writes: { buffer: GPUBuffer; offset: number; data: TypedArray }[] = [];
  /** CPU copies of the uniform chunks this recorder uses, and the bytes used in the last one. */
  private readonly uniformData: Uint8Array[] = [];
  private uniformUsed = 0;
  private readonly scopes: string[] = [];
  private readonly beforeSubmit?: () => Promise<void>;
  private readonly timing?: DispatchTiming;
  private submitted = false;

  constructor(
    private readonly device: GPUDevice,
    private readonly pipelines: PipelineCache,
    label = 'step',
    /** Awaited before submitting (the buffer pool's allocation check), or the recorder's options. */
    options?: (() => Promise<void>) | RecorderOptions,
  ) {
    const o: RecorderOptions = typeof options === 'function' ? { beforeSubmit: options } : (options ?? {});
    this.beforeSubmit = o.beforeSubmit;
    this.timing = o.timing;
    this.encoder = device.createCommandEncoder({ label });
  }

  /** Labels the dispatches recorded inside `fn` (nested: 'b3' then 'bwd' gives b3/bwd), for the profiler. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  /** Writes `data` into `buffer` at `byteOffset` when this recorder submits, before its commands run: the way to
   *  upload a batch without racing an earlier submission that still reads the buffer. */
  write(buffer: GPUBuffer, data: TypedArray, byteOffset = 0): void {
    if (this.submitted) throw new KernelError(`${buffer.label}: recorder already submitted`);
    this.writes.push({ buffer, offset: byteOffset, data });
  }

  /** Copies `params` into the next free uniform slot; returns its chunk and byte offset. */
  private placeParams(params: ArrayBuffer): { chunk: GPUBuffer; offset: number } {
    const arena = this.pipelines.uniforms;
    const slot = Math.ceil(params.byteLength / arena.slotBytes) * arena.slotBytes;
    if (this.uniformData.length === 0 || this.uniformUsed + slot > arena.chunkBytes) {
      this.uniformData.push(new Uint8Array(arena.chunkBytes));
      this.uniformUsed = 0;
    }
    const index = this.uniformData.length - 1;
    const offset = this.uniformUsed;
    this.uniformData[index].set(new Uint8Array(params), offset);
    this.uniformUsed += slot;
    return { chunk: arena.chunk(index), offset };
  }

  dispatch(spec: KernelSpec, buffers: readonly BufferRef[], params: ArrayBuffer | null, workgroups: Workgroups, cost?: DispatchCost): void {
    if (this.submitted) throw new KernelError(`${spec.label}: recorder already submitted`);
    if (buffers.length !== spec.bindings.length) {
      throw new KernelError(`${spec.label}: expects ${spec.bindings.length} buffers, got ${buffers.length}`);
    }
    if ((params?.byteLength ?? 0) !== spec.paramsBytes) {
      throw new KernelError(`${spec.label}: params are ${params?.byteLength ?? 0} bytes, the shader's struct is ${spec.paramsBytes}`);
    }
    const maxGroups = this.device.limits.maxComputeWorkgroupsPerDimension;
    if (workgroups.some((n) => !Number.isInteger(n) || n < 0 || n > maxGroups)) {
      throw new KernelError(`${spec.label}: workgroup count ${workgroups.join('×')} outside 0..${maxGroups}`);
    }
    if (workgroups.some((n) => n === 0)) return;
    const kernel = this.pipelines.get(spec);
    const uniform = params ? this.placeParams(params) : null;
    const bindGroup = this.pipelines.bindGroup(kernel, spec, buffers, uniform?.chunk ?? null);
    const counters = gpuCounters(this.pipelines.device);
    counters.dispatches++;
    if (this.timing) {
      // Profiling: a pass per dispatch, so each one's begin/end timestamps are its own.
      const timestampWrites = this.timing.timestampWrites({ kernel: spec.label, scope: this.scopes.join('/'), cost });
      this.endPass();
      counters.passes++;
      this.pass = this.encoder.beginComputePass(timestampWrites ? { label: spec.label, timestampWrites } : { label: spec.label });
    } else if (!this.pass) {
      counters.passes++;
      this.pass = this.encoder.beginComputePass({ label: 'compute' });
    }
    const pass = this.pass!;
    pass.setPipeline(kernel.pipeline);
    if (uniform) pass.setBindGroup(0, bindGroup, [uniform.offset]);
    else pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    if (this.timing) this.endPass();
  }

  /** A buffer for a binding the kernel variant ignores. */
  get unused(): GPUBuffer {
    return this.pipelines.unused;
  }

  /** The device's enabled features, for kernels with a variant per feature (e.g. subgroups). */
  get features(): GPUSupportedFeatures {
    return this.device.features;
  }

  /** Runs `fn` once the GPU has finished this submission: the place to release scratch buffers it used. */
  afterSubmit(fn: () => void): void {
    this.finishers.push(fn);
  }

  /** Zeroes `bytes` of `buffer` from `offset` (all of it by default), in order with the dispatches around it. */
  clear(buffer: GPUBuffer, offset = 0, bytes?: number): void {
    this.endPass();
    this.encoder.clearBuffer(buffer, offset, bytes);
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.endPass();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Submits everything recorded without waiting for the GPU: resolves once the submission is on the queue (its
   *  pipelines compiled, its allocations and validation checked). Call `done()` to wait for the GPU. */
  async submitNoWait(): Promise<void> {
    this.endPass();
    this.submitted = true;
    try {
      await this.pipelines.ready();
      await this.beforeSubmit?.();
      this.timing?.beforeFinish(this.encoder);
      // A dispatch Dawn rejects (e.g. one buffer bound writable twice) only invalidates the command buffer: catch it
      // here so the caller gets the reason instead of silently stale outputs.
      this.device.pushErrorScope('validation');
      const { queue } = this.device;
      // Deferred writes and the params go onto the queue right before the commands that read them: nothing awaits
      // between here and submit, so no other recorder's submit can come in between.
      for (const w of this.writes) writeQueue(queue, w.buffer, w.data, w.offset);
      this.uniformData.forEach((data, i) => {
        const bytes = i === this.uniformData.length - 1 ? this.uniformUsed : data.byteLength;
        queue.writeBuffer(this.pipelines.uniforms.chunk(i), 0, data.buffer as ArrayBuffer, 0, bytes);
      });
      queue.submit([this.encoder.finish()]);
      gpuCounters(this.pipelines.device).submits++;
      const error = await this.device.popErrorScope();
      if (error) throw new KernelError(`submission rejected: ${error.message}`);
    } catch (e) {
      this.finish();
      throw e;
    }
  }

  /** Waits for the GPU to finish this submission, then runs the afterSubmit callbacks. `finished`: a promise that
   *  settles only once the submission is done (e.g. mapping a buffer its last command copied into), awaited instead
   *  of a separate onSubmittedWorkDone. */
  async done(finished?: Promise<unknown>): Promise<void> {
    try {
      await (finished ?? this.device.queue.onSubmittedWorkDone());
    } finally {
      this.finish();
    }
  }

  private finished = false;
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const fn of this.finishers) fn();
  }

  /** Submits everything recorded, after making sure every pipeline used compiled. Resolves when the GPU is done. */
  async submit(): Promise<void> {
    await this.submitNoWait();
    await this.done();
  }
}
