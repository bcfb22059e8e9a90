import { useStudio } from '../store/studio.ts';

/** The adapter in the header: name and whether it is a software (CPU) adapter. */
export function GpuBadge() {
  const status = useStudio((s) => s.gpuStatus);
  const gpu = useStudio((s) => s.gpu);
  const text =
    status === 'ready' && gpu
      ? `${gpu.adapter.name}${gpu.adapter.isCpu ? ' (CPU)' : ''}`
      : status === 'probing'
        ? 'looking for a GPU…'
        : status === 'lost'
          ? 'GPU lost'
          : 'no WebGPU';
  return (
    <span className={`gpu-badge gpu-${status}`} data-testid="gpu-badge" title="WebGPU adapter">
      {text}
    </span>
  );
}
