// Opens the engine the GPU tests share within one test file (dawn.node on whatever Vulkan driver the environment
// selects: scripts/run-suite.mjs runs the suite once per driver). Used by tests only.
import { createEngine, type Engine } from './engine.ts';
import { openNodeGpu } from './node.ts';
import { readF32, uploadBuffer } from './buffers.ts';

let engine: Promise<Engine> | null = null;

export function testEngine(): Promise<Engine> {
  engine ??= openNodeGpu().then(createEngine);
  return engine;
}

export function upload(e: Engine, data: Float32Array | Uint32Array | Uint16Array, label = 'input'): GPUBuffer {
  return uploadBuffer(e.buffers, e.device, data, label);
}

export function zeros(e: Engine, count: number, label = 'output'): GPUBuffer {
  return upload(e, new Float32Array(count), label);
}

export function download(e: Engine, buffer: GPUBuffer, count: number): Promise<Float32Array> {
  return readF32(e.device, buffer, count);
}

/** The driver the suite runs on, for test names and messages. */
export const driverName = process.env.LORA_STUDIO_DRIVER ?? 'default';
