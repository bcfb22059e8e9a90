// A JSONL file → an in-memory tokenized dataset and a report of what happened to every line.
//
// Streamed: lines are parsed, validated, tokenized and dropped one at a time; only token ids are
// kept. Every line ends up in exactly one bucket of the report: a row, a blank line, or an error
// with its line number and reason (invalid JSON, a shape matching no format, wrong types, empty
// completion, no trained token left after truncation, …). Nothing is dropped silently and nothing
// throws per line; a file without one usable row throws DatasetError carrying the report.
//
// The format is detected from the first line that parses as an object of a known shape (shown to
// the user as report.format) unless options.format overrides it; later lines must have that shape.

import { ChatTemplate } from '../model/chat-template.ts';
import type { HfTokenizer } from '../model/tokenizer.ts';
import { detectFormat, FORMAT_LABELS, parseRow, typeName, type DatasetFormat } from './formats.ts';
import { encodeExample, trainedTokenCount, type EncodeContext, type TokenizedRow } from './encode.ts';
import { MAX_LINE_LENGTH, readLines, type ChunkSource } from './jsonl.ts';

export interface DatasetRow extends TokenizedRow {
  /** The JSONL line it came from (1-based). */
  line: number;
}

export interface LineError {
  line: number;
  reason: string;
}

export interface DatasetReport {
  fileName: string;
  format: DatasetFormat | null;
  formatSource: 'detected' | 'override' | 'none';
  /** Lines read, blank ones included. */
  lines: number;
  blankLines: number;
  rows: number;
  skipped: number;
  /** Rows longer than maxLength that were cut (and kept: a trained token remained). */
  truncated: number;
  maxLength: number;
  /** The first maxReportedErrors errors; `skipped` counts all of them. */
  errors: LineError[];
  totalTokens: number;
  /** Positions whose label counts in the loss (labels[t] != -100, t >= 1). */
  trainedTokens: number;
  longestRow: number;
  bytes: number;
  /** Rows rendered with the ChatML fallback because the model has no chat template. */
  usedFallbackTemplate: boolean;
}

export interface TokenizedDataset {
  rows: DatasetRow[];
  report: DatasetReport;
}

export interface DatasetProgress {
  bytes: number;
  totalBytes: number | null;
  lines: number;
  rows: number;
  skipped: number;
}

export interface DatasetOptions {
  /** Needed for every format but pre-tokenized. */
  tokenizer?: HfTokenizer | null;
  /** Default: ChatTemplate.forTokenizer(tokenizer). */
  template?: ChatTemplate | null;
  /** 'auto' (default) detects from the first row. */
  format?: DatasetFormat | 'auto';
  maxLength: number;
  trainOnPrompt?: boolean;
  /** For pre-tokenized rows without a tokenizer. */
  vocabSize?: number;
  fileName?: string;
  totalBytes?: number;
  onProgress?: (p: DatasetProgress) => void;
  /** Call onProgress every this many lines (default 500) and at the end. */
  progressEveryLines?: number;
  maxReportedErrors?: number;
  /** Lines longer than this many characters are skipped and reported without being held whole (MAX_LINE_LENGTH). */
  maxLineLength?: number;
}

export class DatasetError extends Error {
  override name = 'DatasetError';
  constructor(message: string, readonly report: DatasetReport) {
    super(message);
  }
}

export async function loadJsonlDataset(source: ChunkSource, options: DatasetOptions): Promise<TokenizedDataset> {
  if (!Number.isInteger(options.maxLength) || options.maxLength < 2) {
    throw new RangeError(`maxLength must be an integer >= 2, got ${options.maxLength}`);
  }
  const tokenizer = options.tokenizer ?? null;
  const override = options.format && options.format !== 'auto' ? options.format : null;
  let template = options.template ?? null;
  const ctx: EncodeContext = {
    tokenizer,
    template: null,
    maxLength: options.maxLength,
    trainOnPrompt: options.trainOnPrompt ?? false,
    vocabSize: options.vocabSize,
  };
  const maxErrors = options.maxReportedErrors ?? 1000;
  const every = options.progressEveryLines ?? 500;
  const report: DatasetReport = {
    fileName: options.fileName ?? 'dataset',
    format: override,
    formatSource: override ? 'override' : 'none',
    lines: 0, blankLines: 0, rows: 0, skipped: 0, truncated: 0, maxLength: options.maxLength,
    errors: [], totalTokens: 0, trainedTokens: 0, longestRow: 0, bytes: 0, usedFallbackTemplate: false,
  };
  const rows: DatasetRow[] = [];
  const skip = (line: number, reason: string) => {
    report.skipped++;
    if (report.errors.length < maxErrors) report.errors.push({ line, reason });
  };
  const progress = () => options.onProgress?.({
    bytes: report.bytes, totalBytes: options.totalBytes ?? null, lines: report.lines, rows: report.rows, skipped: report.skipped,
  });

  const maxLineLength = options.maxLineLength ?? MAX_LINE_LENGTH;
  for await (const { lineNumber, text, bytesRead, overlong } of readLines(source, { maxLineLength })) {
    report.lines = lineNumber;
    report.bytes = bytesRead;
    if (lineNumber % every === 0) progress();
    if (overlong !== undefined) {
      skip(lineNumber, `${overlong} characters long, over the ${maxLineLength}-character limit for one line (a file without line breaks?)`);
      continue;
    }
    if (text.trim() === '') {
      report.blankLines++;
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      skip(lineNumber, `invalid JSON: ${(e as Error).message}`);
      continue;
    }
    if (report.format === null) {
      const detected = detectFormat(value);
      if (detected === null) {
        skip(lineNumber, noFormatReason(value));
        continue;
      }
      report.format = detected;
      report.formatSource = 'detected';
    }
    const parsed = parseRow(report.format, value);
    if (!parsed.ok) {
      skip(lineNumber, parsed.reason);
      continue;
    }
    if (parsed.example.kind === 'chat' && ctx.template === null) {
      if (template === null) {
        if (!tokenizer) throw new DatasetError(`${report.fileName}: conversational rows need a tokenizer and its chat template`, report);
        template = ChatTemplate.forTokenizer(tokenizer);
      }
      ctx.template = template;
      report.usedFallbackTemplate = template.isFallback;
    }
    const encoded = encodeExample(parsed.example, ctx);
    if (!encoded.ok) {
      skip(lineNumber, encoded.reason);
      continue;
    }
    const row: DatasetRow = { ...encoded.row, line: lineNumber };
    rows.push(row);
    report.rows++;
    if (encoded.truncated) report.truncated++;
    report.totalTokens += row.input_ids.length;
    report.trainedTokens += trainedTokenCount(row);
    report.longestRow = Math.max(report.longestRow, row.input_ids.length);
  }
  progress();

  if (rows.length === 0) {
    const shown = report.errors.slice(0, 5).map((e) => `line ${e.line}: ${e.reason}`);
    const more = report.skipped > shown.length ? ` (and ${report.skipped - shown.length} more)` : '';
    const why = report.lines === report.blankLines
      ? 'the file is empty'
      : `every line was rejected: ${shown.join('; ')}${more}`;
    throw new DatasetError(`${report.fileName}: no usable row — ${why}`, report);
  }
  return { rows, report };
}

function noFormatReason(value: unknown): string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `expected a JSON object, got ${typeName(value)}`;
  }
  const keys = Object.keys(value);
  return `the row matches no dataset format (keys: ${keys.length ? keys.join(', ') : 'none'}). ` +
    `Should be one of: ${Object.values(FORMAT_LABELS).join('; ')}`;
}
