// The on-disk checkpoint store: a round trip keeps every value bit for bit; only complete checkpoint-<step> folders
// count; a newer folder that does not read back is passed over for the one before; rewriting a step replaces it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latestCheckpoint, leftoverTemporaries, listCheckpoints, readCheckpoint, writeCheckpoint, writeFileAtomic } from './checkpoint-fs.ts';
import { DEFAULT_CONFIG } from './config.ts';
import type { AdapterFiles } from './peft.ts';
import type { TrainerCheckpoint } from './trainer.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'checkpoint-fs-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function checkpoint(step: number, withBest: boolean): TrainerCheckpoint {
  const n = 37;
  const values = (k: number) => Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 0.7 + k + step) * 10 ** ((i % 9) - 4)));
  return {
    version: 1,
    step,
    epoch: 2,
    batchIndex: 1,
    config: { ...DEFAULT_CONFIG, maxSteps: 10, targets: ['q_proj'] },
    segments: ['a.lora_A', 'a.lora_B'],
    params: values(1),
    m: values(2),
    v: values(3).map(Math.abs),
    bestEvalLoss: withBest ? 1.25 : null,
    bestStep: withBest ? step - 1 : null,
    bestParams: withBest ? values(4) : null,
    evalsWithoutImprovement: 1,
    history: [{ step, epoch: 2.5, loss: 3.5, lr: 2e-4, gradNorm: 0.5, tokensPerSecond: 100, ms: 12, memBytes: 1, peakBytes: 2, evalLoss: 1.5 }],
  };
}

const adapter = (tag: string): AdapterFiles => ({
  'adapter_config.json': new TextEncoder().encode(`{"tag": "${tag}"}`),
  'adapter_model.safetensors': new TextEncoder().encode(`weights ${tag}`),
});

describe('checkpoint folders on disk', () => {
  it('round-trips a checkpoint exactly (moments, best params, history, run info)', async () => {
    const out = join(dir, 'round-trip');
    mkdirSync(out);
    for (const withBest of [false, true]) {
      const ck = checkpoint(withBest ? 4 : 2, withBest);
      const folder = await writeCheckpoint(out, ck, adapter('x'), { data: 'fingerprint' });
      expect(folder).toBe(join(out, `checkpoint-${ck.step}`));
      const back = await readCheckpoint(folder);
      expect(back.checkpoint).toEqual(ck);
      expect(back.run).toEqual({ data: 'fingerprint' });
      expect(readFileSync(join(folder, 'adapter_config.json'), 'utf8')).toBe('{"tag": "x"}');
    }
    expect(readdirSync(out).sort()).toEqual(['checkpoint-2', 'checkpoint-4']); // no temporary left behind
  });

  it('lists complete folders by step; the newest readable one is the one to resume', async () => {
    const out = join(dir, 'latest');
    mkdirSync(out);
    await writeCheckpoint(out, checkpoint(3, false), adapter('3'), null);
    await writeCheckpoint(out, checkpoint(10, false), adapter('10'), null);
    // Newer, but broken in each way a crash or a hand could leave it.
    mkdirSync(join(out, '.tmp-checkpoint-20-123'));
    writeFileSync(join(out, '.tmp-checkpoint-20-123', 'trainer_state.json'), '{"version": 1, "step": 20}');
    mkdirSync(join(out, 'checkpoint-15'));
    writeFileSync(join(out, 'checkpoint-15', 'trainer_state.json'), '{}');
    await writeCheckpoint(out, checkpoint(12, false), adapter('12'), null);
    writeFileSync(join(out, 'checkpoint-12', 'optimizer.safetensors'), 'truncated');
    writeFileSync(join(out, 'checkpoint-x'), 'not a folder');
    writeFileSync(join(out, 'adapter_model.safetensors.tmp-77'), 'half a file');

    const { complete, incomplete } = await listCheckpoints(out);
    expect(complete.map((c) => c.step)).toEqual([3, 10, 12]);
    expect(incomplete).toEqual([join(out, 'checkpoint-15')]);
    expect((await leftoverTemporaries(out)).sort()).toEqual([join(out, '.tmp-checkpoint-20-123'), join(out, 'adapter_model.safetensors.tmp-77')]);
    const warnings: string[] = [];
    const latest = await latestCheckpoint(out, (m) => warnings.push(m));
    expect(latest?.step).toBe(10);
    expect(latest?.checkpoint.params).toEqual(checkpoint(10, false).params);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('checkpoint-15 is incomplete');
    expect(warnings[1]).toContain(join(out, 'checkpoint-12'));
    expect(await latestCheckpoint(join(dir, 'no-such-folder'))).toBeNull();
  });

  it('rewriting a step replaces the folder whole', async () => {
    const out = join(dir, 'rewrite');
    mkdirSync(out);
    await writeCheckpoint(out, checkpoint(5, false), adapter('old'), null);
    writeFileSync(join(out, 'checkpoint-5', 'stray.txt'), 'from the old folder');
    await writeCheckpoint(out, checkpoint(5, true), adapter('new'), null);
    expect(readdirSync(join(out, 'checkpoint-5')).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
    expect((await readCheckpoint(join(out, 'checkpoint-5'))).checkpoint.bestStep).toBe(4);
    expect(readdirSync(out)).toEqual(['checkpoint-5']);
  });

  it('readCheckpoint names the file that is wrong', async () => {
    const out = join(dir, 'bad');
    mkdirSync(out);
    const folder = await writeCheckpoint(out, checkpoint(1, false), adapter('1'), null);
    writeFileSync(join(folder, 'trainer_state.json'), '{"version": 2}');
    await expect(readCheckpoint(folder)).rejects.toThrow(`${join(folder, 'trainer_state.json')}: "version" must be 1 (a lora-studio trainer state), got 2`);
  });

  it('writeFileAtomic replaces a file through a temporary name', async () => {
    const path = join(dir, 'atomic.txt');
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, new TextEncoder().encode('two'));
    expect(readFileSync(path, 'utf8')).toBe('two');
    expect(readdirSync(dir).filter((n) => n.startsWith('atomic'))).toEqual(['atomic.txt']);
  });
});
