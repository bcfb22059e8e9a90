// At most one method wraps a layer (Linear in model/runtime/linear.ts): attaching a second method onto layers the
// first one wraps is refused by name, before the second allocates or changes anything (assertUnwrapped), whichever
// method came first. Full fine-tuning wraps every linear layer, so it is the second method for every first one, and
// the first for every other.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TokenizedRow } from '../../data/encode.ts';
import type { Engine } from '../../gpu/engine.ts';
import { testEngine } from '../../gpu/testing-gpu.ts';
import { kernelChoiceFor, type Linear } from '../../model/runtime/linear.ts';
import { loadTransformer } from '../../model/runtime/load.ts';
import type { Transformer } from '../../model/runtime/transformer.ts';
import { FIXTURES } from '../../model/runtime/testing.ts';
import { nodeFolder } from '../../model/sources/node-file.ts';
import { DEFAULT_CONFIG, type TrainConfig } from '../config.ts';
import { Trainer } from '../trainer.ts';
import type { MethodId } from './ids.ts';

let e: Engine;
let tf: Transformer;
beforeAll(async () => {
  e = await testEngine();
  tf = await loadTransformer(e, nodeFolder(join(FIXTURES, 'models', 'llama')), kernelChoiceFor('naive'), { dtype: 'f32', quant: 'none' });
});

const rows: TokenizedRow[] = [{ input_ids: Int32Array.from([1, 5, 9, 3]), labels: Int32Array.from([1, 5, 9, 3]) }];

function trainer(method: MethodId): Trainer {
  const targets = method === 'full' || method === 'houlsby' ? [] : ['all-linear'];
  const config: TrainConfig = { ...DEFAULT_CONFIG, method, targets, rank: 4, alpha: 8, initR: 6, targetR: 4, totalStep: 10, maxSteps: 10 };
  return new Trainer({ engine: e, transformer: tf, config, train: rows, padId: 0 });
}

/** What wraps each linear layer now, by identity. */
const wrappers = (): unknown[][] => tf.model.modules.map(({ linear }: { linear: Linear }) => [linear.lora, linear.ia3, linear.dora, linear.bottleneck, linear.grad]);

describe('one method per layer', () => {
  const pairs: [MethodId, MethodId][] = [
    ...(['lora', 'dora', 'ia3', 'adalora', 'houlsby'] as const).map((m) => [m, 'full'] as [MethodId, MethodId]),
    ...(['lora', 'dora', 'ia3', 'adalora', 'houlsby'] as const).map((m) => ['full', m] as [MethodId, MethodId]),
  ];
  it.each(pairs)('%s attached: %s is refused and leaves the layers as they were', (first, second) => {
    const t = trainer(first);
    try {
      const before = wrappers();
      expect(() => trainer(second)).toThrow(/is already wrapped by another adapter/);
      const after = wrappers();
      after.forEach((w, i) => w.forEach((x, j) => expect(x, `module ${i} wrapper ${j}`).toBe(before[i][j])));
    } finally {
      t.dispose();
    }
    // Detached: the second method attaches now.
    trainer(second).dispose();
  });
});
