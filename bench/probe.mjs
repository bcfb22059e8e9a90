// bench/device.sh's smoke test: the WebGPU adapter dawn.node finds with the current environment (VK_ICD_FILENAMES
// selects the Vulkan driver), as one JSON line: {"adapter": {...}, "isCpu", "features", "limits"} or
// {"adapter": null, "error"}. device.sh copies it next to dist-bench/bench.mjs, where 'webgpu' resolves to the
// carried dawn.node, and runs it in a child process (a broken driver can crash the process that loads it).
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const gpu = create([]); // kept referenced while the adapter is used (a collected entry point crashes dawn.node)
const LIMITS = ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup'];
try {
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) {
    console.log(JSON.stringify({ adapter: null, error: 'requestAdapter() returned null: dawn.node found no Vulkan driver it accepts' }));
  } else {
    const i = adapter.info;
    const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`.toLowerCase();
    console.log(
      JSON.stringify({
        adapter: { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description },
        isCpu: /swiftshader|llvmpipe|lavapipe|software|cpu/.test(text),
        features: [...adapter.features].sort(),
        limits: Object.fromEntries(LIMITS.map((k) => [k, adapter.limits[k]])),
      }),
    );
  }
} catch (err) {
  console.log(JSON.stringify({ adapter: null, error: String(err?.message ?? err) }));
}
void gpu;
process.exit(0);
