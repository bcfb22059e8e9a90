// Token-length histogram for the dataset panel: counts per equal-width bucket.

export interface LengthHistogram {
  /** Bucket k holds lengths in [edges[k], edges[k+1]); the last bucket also holds edges[k+1]. */
  edges: number[];
  counts: number[];
  min: number;
  max: number;
  mean: number;
  total: number;
}

export function lengthHistogram(lengths: Iterable<number>, options: { buckets?: number; upTo?: number } = {}): LengthHistogram {
  const values = Array.from(lengths);
  const bucketCount = options.buckets ?? 20;
  if (!Number.isInteger(bucketCount) || bucketCount < 1) throw new RangeError(`buckets must be a positive integer, got ${bucketCount}`);
  let min = Infinity;
  let max = 0;
  let sum = 0;
  for (const v of values) {
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
  }
  const top = Math.max(1, options.upTo ?? max);
  const width = Math.max(1, Math.ceil(top / bucketCount));
  const n = Math.ceil(top / width);
  const edges = Array.from({ length: n + 1 }, (_, k) => k * width);
  const counts = new Array<number>(n).fill(0);
  for (const v of values) counts[Math.min(n - 1, Math.floor(v / width))]++;
  return { edges, counts, min: values.length ? min : 0, max, mean: values.length ? sum / values.length : 0, total: values.length };
}
