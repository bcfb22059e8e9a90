// The WebGPU device, the same for both hosts: the browser hands us navigator.gpu, Node hands us dawn.node's GPU
// (see node.ts). Everything above this file sees one `Gpu`: the device, what the adapter is, the limits and
// features we were granted, and device loss as an event.

/** Limits we raise to the adapter's maximum: WebGPU's defaults (128 MiB binding, 256 MiB buffer, 16 KiB workgroup
 *  memory, 256 invocations) are far below what real models need and what real adapters give. */
const RAISED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/** Optional features the engine uses when present; each kernel has a path without them. */
const WANTED_FEATURES = ['shader-f16', 'timestamp-query', 'subgroups'] as const;
export type WantedFeature = (typeof WANTED_FEATURES)[number];

export type GpuLimits = Record<(typeof RAISED_LIMITS)[number], number>;

export interface GpuAdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True for software adapters (SwiftShader, lavapipe): fine for correctness, never for speed. */
  isCpu: boolean;
  /** A short human name: description, or vendor + architecture. */
  name: string;
}

export interface DeviceLostEvent {
  reason: 'destroyed' | 'unknown';
  message: string;
}

export interface Gpu {
  readonly device: GPUDevice;
  readonly adapter: GpuAdapterDescription;
  readonly limits: GpuLimits;
  readonly features: ReadonlySet<WantedFeature>;
  /** Whether f16 storage and arithmetic can be used in shaders. */
  readonly hasF16: boolean;
  /** Resolves once, when the device is lost (or destroyed by us). */
  readonly lost: Promise<DeviceLostEvent>;
  onLost(listener: (event: DeviceLostEvent) => void): () => void;
  destroy(): void;
}

export class GpuUnavailableError extends Error {
  override name = 'GpuUnavailableError';
}

export interface OpenGpuOptions {
  powerPreference?: GPUPowerPreference;
  /** Leave features out on purpose, e.g. to exercise the no-f16 path on an adapter that has f16. */
  disableFeatures?: WantedFeature[];
  /** What the host tells the user to do when there is no adapter. */
  noAdapterHint?: string;
}

function describeAdapter(adapter: GPUAdapter): GpuAdapterDescription {
  const info = adapter.info ?? ({} as GPUAdapterInfo);
  const vendor = info.vendor ?? '';
  const architecture = info.architecture ?? '';
  const device = info.device ?? '';
  const description = info.description ?? '';
  const text = `${vendor} ${architecture} ${device} ${description}`.toLowerCase();
  const isCpu =
    /swiftshader|llvmpipe|lavapipe|software|cpu/.test(text) ||
    // Dawn reports the adapter type in the description on some backends.
    (info as unknown as { type?: string }).type === 'cpu';
  const name = description || [vendor, architecture, device].filter(Boolean).join(' ') || 'unknown adapter';
  return { vendor, architecture, device, description, isCpu, name };
}

/** Opens an adapter and device on `gpu` (navigator.gpu or dawn.node's), asking for every limit at the adapter's
 *  maximum and for the optional features it has. Throws GpuUnavailableError with a how-to when there is none. */
export async function openGpu(gpu: GPU | undefined, options: OpenGpuOptions = {}): Promise<Gpu> {
  if (!gpu) throw new GpuUnavailableError('WebGPU is not available in this environment (no navigator.gpu).');
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new GpuUnavailableError(options.noAdapterHint ? `WebGPU found no adapter. ${options.noAdapterHint}` : 'WebGPU found no adapter.');
  }
  const requiredLimits: Record<string, number> = {};
  for (const key of RAISED_LIMITS) {
    const value = (adapter.limits as unknown as Record<string, number | undefined>)[key];
    if (typeof value === 'number') requiredLimits[key] = value;
  }
  const disabled = new Set(options.disableFeatures ?? []);
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f) && !disabled.has(f));
  const device = await adapter.requestDevice({
    requiredLimits,
    requiredFeatures: requiredFeatures as GPUFeatureName[],
    label: 'lora-studio',
  });
  const limits = {} as GpuLimits;
  for (const key of RAISED_LIMITS) limits[key] = (device.limits as unknown as Record<string, number>)[key];
  const features = new Set<WantedFeature>(requiredFeatures.filter((f) => device.features.has(f)));

  const listeners = new Set<(event: DeviceLostEvent) => void>();
  const lost = device.lost.then((info) => {
    const event: DeviceLostEvent = { reason: info.reason === 'destroyed' ? 'destroyed' : 'unknown', message: info.message };
    for (const listener of listeners) listener(event);
    return event;
  });
  return {
    device,
    adapter: describeAdapter(adapter),
    limits,
    features,
    hasF16: features.has('shader-f16'),
    lost,
    onLost(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    destroy() {
      device.destroy();
    },
  };
}
