// LoRA's scaling of the low-rank update, PEFT's rule: α / r, or α / √r with rsLoRA (Kalajdzievski 2023, which keeps
// the update's size independent of the rank). Shared by the runtime, the adapter export and import, and merging.
export function loraScale(alpha: number, r: number, rslora = false): number {
  if (!(Number.isInteger(r) && r > 0)) throw new RangeError(`loraScale: r = ${r} must be a positive integer`);
  if (!Number.isFinite(alpha)) throw new RangeError(`loraScale: alpha = ${alpha} must be a finite number`);
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}
