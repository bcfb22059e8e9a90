// Table 5: training step. There is no trainer API in src/train yet (issue 5), so nothing is measured and the
// section says so rather than printing numbers it does not have.
import type { SectionResult } from './context.ts';

export const TRAINING_NOT_MEASURED = 'not measured yet: the trainer lands in issue 5';

export function runTraining(): SectionResult {
  return {
    table: {
      title: '5. training step (tokens/s, fraction of our matmul roofline)',
      columns: [{ header: 'status' }],
      rows: [[TRAINING_NOT_MEASURED]],
    },
    data: { measured: false, reason: TRAINING_NOT_MEASURED },
  };
}
