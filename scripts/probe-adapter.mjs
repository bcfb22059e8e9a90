// Prints, as one JSON line, the WebGPU adapter dawn.node finds with the current environment (VK_ICD_FILENAMES
// selects the Vulkan driver), or {"adapter": null, "error": ...}. Run in a child process: a broken driver can crash.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const gpu = create([]);
try {
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    console.log(JSON.stringify({ adapter: null, error: 'requestAdapter() returned null' }));
  } else {
    const i = adapter.info;
    const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`.toLowerCase();
    console.log(JSON.stringify({
      adapter: { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description },
      isCpu: /swiftshader|llvmpipe|lavapipe|software|cpu/.test(text),
      f16: adapter.features.has('shader-f16'),
    }));
  }
} catch (err) {
  console.log(JSON.stringify({ adapter: null, error: String(err?.message ?? err) }));
}
process.exit(0);
