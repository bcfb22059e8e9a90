import { useStudio } from '../store/studio.ts';

/** Shown instead of the studio when the browser has no WebGPU: what to do about it. */
export function NoWebGpu() {
  const message = useStudio((s) => s.gpuMessage);
  return (
    <section className="card" aria-labelledby="nowebgpu-title">
      <h2 id="nowebgpu-title">WebGPU is not available</h2>
      <p>LoRA Studio trains on your GPU through WebGPU, which this browser did not provide{message ? `: ${message}` : '.'}</p>
      <ul>
        <li><strong>Chrome or Edge 113+</strong> on Windows, macOS and ChromeOS have WebGPU on by default.</li>
        <li>
          <strong>Linux</strong>: start Chrome with <code>--enable-unsafe-webgpu --enable-features=Vulkan</code>, or enable
          <code> chrome://flags/#enable-unsafe-webgpu</code> and restart.
        </li>
        <li><strong>Firefox</strong> 141+ on Windows has WebGPU; elsewhere set <code>dom.webgpu.enabled</code> in about:config.</li>
        <li><strong>Safari</strong> 26+ has WebGPU; earlier versions: Develop → Feature Flags → WebGPU.</li>
      </ul>
      <p>Check <code>chrome://gpu</code>: WebGPU should read “Hardware accelerated”.</p>
    </section>
  );
}
