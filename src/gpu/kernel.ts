// Kernels: a typed descriptor per pipeline variant, a per-device pipeline cache whose creation errors carry the
// kernel's label and the WGSL line:column, and a recorder that puts many dispatches into one command submission.
import { BufferUsage } from './buffers.ts';

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
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Settles once compilation messages and validation are known; rejects with ShaderCompileError/KernelError. */
  checked: Promise<void>;
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

/** Creates and caches pipelines per device. Creation is synchronous so a step can be recorded without awaiting;
 *  `ready()` (awaited by every submit) surfaces shader errors with file, line and column. */
export class PipelineCache {
  private readonly compiled = new Map<string, CompiledKernel>();
  private readonly pending = new Set<Promise<void>>();

  private unusedBinding: GPUBuffer | null = null;

  constructor(private readonly device: GPUDevice) {}

  /** A small read-only storage buffer to fill a binding that the chosen variant does not read (e.g. no bias). */
  get unused(): GPUBuffer {
    this.unusedBinding ??= this.device.createBuffer({ size: 16, usage: BufferUsage.STORAGE, label: 'unused-binding' });
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
          ? [{ binding: spec.bindings.length, visibility: 4, buffer: { type: 'uniform' as GPUBufferBindingType } }]
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
    const entry = { pipeline, layout, checked };
    this.compiled.set(key, entry);
    this.pending.add(checked);
    return entry;
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

/** Records dispatches into one command encoder (one compute pass between copies) and submits them together. */
export class Recorder {
  private readonly encoder: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | null = null;
  private readonly uniforms: GPUBuffer[] = [];
  private readonly finishers: (() => void)[] = [];
  private submitted = false;

  constructor(
    private readonly device: GPUDevice,
    private readonly pipelines: PipelineCache,
    label = 'step',
    /** Awaited before submitting, e.g. the buffer pool's allocation check. */
    private readonly beforeSubmit?: () => Promise<void>,
  ) {
    this.encoder = device.createCommandEncoder({ label });
  }

  dispatch(spec: KernelSpec, buffers: readonly BufferRef[], params: ArrayBuffer | null, workgroups: Workgroups): void {
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
    const { pipeline, layout } = this.pipelines.get(spec);
    const entries: GPUBindGroupEntry[] = buffers.map((b, binding) => ({
      binding,
      resource: 'buffer' in b ? b : { buffer: b },
    }));
    if (params) {
      const uniform = this.device.createBuffer({
        size: params.byteLength,
        usage: BufferUsage.UNIFORM,
        mappedAtCreation: true,
        label: `${spec.label}.params`,
      });
      new Uint8Array(uniform.getMappedRange()).set(new Uint8Array(params));
      uniform.unmap();
      this.uniforms.push(uniform);
      entries.push({ binding: buffers.length, resource: { buffer: uniform } });
    }
    const bindGroup = this.device.createBindGroup({ layout, entries, label: spec.label });
    this.pass ??= this.encoder.beginComputePass({ label: 'compute' });
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
  }

  /** A buffer for a binding the kernel variant ignores. */
  get unused(): GPUBuffer {
    return this.pipelines.unused;
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

  /** Submits everything recorded, after making sure every pipeline used compiled. Resolves when the GPU is done. */
  async submit(): Promise<void> {
    this.endPass();
    this.submitted = true;
    try {
      await this.pipelines.ready();
      await this.beforeSubmit?.();
      // A dispatch Dawn rejects (e.g. one buffer bound writable twice) only invalidates the command buffer: catch it
      // here so the caller gets the reason instead of silently stale outputs.
      this.device.pushErrorScope('validation');
      this.device.queue.submit([this.encoder.finish()]);
      const error = await this.device.popErrorScope();
      if (error) throw new KernelError(`submission rejected: ${error.message}`);
      await this.device.queue.onSubmittedWorkDone();
    } finally {
      for (const u of this.uniforms) u.destroy();
      for (const fn of this.finishers) fn();
    }
  }
}
