// LoRA's tensor names in the flat trainable buffers and checkpoints (kept apart from lora-state.ts, which is GPU code,
// so the method's page-side description can name them too).

/** The segment name of a module's A or B. */
export function loraSegmentName(peftPath: string, which: 'A' | 'B'): string {
  return `${peftPath}.lora_${which}`;
}
