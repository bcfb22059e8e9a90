import { describe, expect, it } from 'vitest';
import { promptFromRow, truncateRows } from './run-rows.ts';
import { statusWriteFailure } from './training.ts';
import { adapterFileName, metricsFileName } from '../download-names.ts';

const row = (ids: number[], labels: number[]) => ({ input_ids: Int32Array.from(ids), labels: Int32Array.from(labels) });

describe('training helpers', () => {
  it('cuts rows to the max length and drops those left with no trained position', () => {
    const rows = [
      row([1, 2, 3, 4, 5, 6], [-100, -100, -100, 4, 5, 6]), // trained from position 3: kept at length 4
      row([1, 2, 3, 4, 5, 6], [-100, -100, -100, -100, -100, 6]), // trained only at 5: dropped at length 4
      row([1, 2], [1, 2]), // short: as it is
    ];
    const { rows: out, dropped } = truncateRows(rows, 4);
    expect(dropped).toBe(1);
    expect(out.map((r) => Array.from(r.input_ids))).toEqual([[1, 2, 3, 4], [1, 2]]);
    expect(Array.from(out[0].labels)).toEqual([-100, -100, -100, 4]);
  });

  it('takes the prompt before the first trained token, or the start of a plain-text row', () => {
    expect(promptFromRow(row([9, 8, 7, 6, 5, 4], [-100, -100, -100, -100, 5, 4]), 100)).toEqual([9, 8, 7, 6]);
    expect(promptFromRow(row([9, 8, 7, 6, 5, 4, 3, 2, 1, 0], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]), 100)).toEqual([9, 8, 7, 6, 5]);
    expect(promptFromRow(row([9, 8, 7, 6, 5, 4], [-100, -100, -100, -100, 5, 4]), 2)).toEqual([9, 8]);
  });

  it('names downloads after the run', () => {
    expect(adapterFileName('demo-llama · r4 · chat.jsonl', 'zip')).toBe('demo-llama-r4-chat.jsonl-adapter.zip');
    expect(adapterFileName('anything', 'safetensors')).toBe('adapter_model.safetensors');
    expect(metricsFileName('  ')).toBe('run-metrics.csv');
  });

  it('says what a failed status write means for the run instead of swallowing it', () => {
    const full = new Error('the browser refused to store 2.1 MB');
    expect(statusWriteFailure('r8 · pirate', 'paused', full, 40)).toBe(
      'run "r8 · pirate": saving its paused state failed (the browser refused to store 2.1 MB); nothing else is lost — after a reload the run is offered as interrupted and resumes from its checkpoint at step 40',
    );
    expect(statusWriteFailure('r8', 'running', full, 40)).toMatch(/the run is shown paused and resumes from its checkpoint at step 40$/);
    expect(statusWriteFailure('r8', 'failed', full, undefined)).toMatch(/saving its failed state failed .* resumes from its start \(no checkpoint was saved\)$/);
  });
});
