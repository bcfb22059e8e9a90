// Datasets: JSONL stream → validated rows → token ids + loss mask → (packed) micro-batches.
// Eval data is either splitEval(rows, fraction, seed) or a second file through loadJsonlDataset
// with the same options.

export { blobChunks, readLines, readableStreamChunks, type ChunkSource, type JsonlLine } from './jsonl.ts';
export { DATASET_FORMATS, FORMAT_LABELS, detectFormat, isDatasetFormat, parseRow, type DatasetFormat, type Example } from './formats.ts';
export { IGNORE_INDEX, encodeExample, trainedTokenCount, type TokenizedRow } from './encode.ts';
export {
  DatasetError, loadJsonlDataset, type DatasetOptions, type DatasetProgress, type DatasetReport, type DatasetRow,
  type LineError, type TokenizedDataset,
} from './dataset.ts';
export { packRows, type PackedRow } from './packing.ts';
export { Batcher, collate, type BatcherOptions, type MicroBatch } from './batcher.ts';
export { Rng, deriveSeed, permutation, shuffleInPlace, shuffled, splitEval } from './rng.ts';
export { lengthHistogram, type LengthHistogram } from './histogram.ts';
