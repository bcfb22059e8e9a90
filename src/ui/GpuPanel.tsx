import { useStudio } from '../store/studio.ts';
import { formatBytes } from './format.ts';

const FEATURE_NOTES: Record<string, string> = {
  'shader-f16': 'f16 weights and half the memory for the frozen base',
  'timestamp-query': 'GPU-side timings',
  subgroups: 'faster reductions',
};

/** The adapter's name, the limits the engine was granted and the optional features it has. */
export function GpuPanel() {
  const status = useStudio((s) => s.gpuStatus);
  const gpu = useStudio((s) => s.gpu);
  const message = useStudio((s) => s.gpuMessage);
  if (status === 'error') return <p className="error" role="alert">{message}</p>;
  if (!gpu) return <p className="muted">Looking for a WebGPU adapter…</p>;
  const { adapter, limits, features } = gpu;
  return (
    <section className="card" aria-labelledby="gpu-title">
      <h2 id="gpu-title">Your GPU</h2>
      <p>
        <strong data-testid="adapter-name">{adapter.name}</strong>
        {adapter.isCpu && <span className="pill">software adapter: correct, but slow</span>}
      </p>
      <dl className="facts">
        <dt>Vendor / architecture</dt>
        <dd>{[adapter.vendor, adapter.architecture].filter(Boolean).join(' / ') || 'not reported'}</dd>
        <dt>Largest buffer</dt>
        <dd>{formatBytes(limits.maxBufferSize)}</dd>
        <dt>Largest storage binding</dt>
        <dd>{formatBytes(limits.maxStorageBufferBindingSize)}</dd>
        <dt>Workgroup memory</dt>
        <dd>{formatBytes(limits.maxComputeWorkgroupStorageSize)}</dd>
        <dt>Invocations per workgroup</dt>
        <dd>{limits.maxComputeInvocationsPerWorkgroup}</dd>
      </dl>
      <h3>Features</h3>
      <ul className="features" data-testid="features">
        {Object.keys(FEATURE_NOTES).map((f) => (
          <li key={f} className={features.includes(f as never) ? 'on' : 'off'}>
            <code>{f}</code> {features.includes(f as never) ? '✓' : '—'} <span className="muted">{FEATURE_NOTES[f]}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}
