import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { unzipSync } from 'fflate';
import { DEFAULT_CONFIG } from '../../train/config.ts';
import { setDownloader } from '../downloads.ts';
import { runLockName, RunsDb, type RunRecord } from '../runs-db.ts';
import { useStudio } from '../studio.ts';
import { linkRunsDb, runHolder, shownStatus } from './runs.ts';
import { MemoryKeyValue } from '../testing-kv.ts';


const record = (id: string, created: number, extra: Partial<RunRecord> = {}): RunRecord => ({
  id, name: `Run ${id}`, created, updated: created,
  model: { name: 'demo', modelType: 'llama', quant: 'none', dtype: 'f32', parameters: 10 },
  dataset: { fileName: 'a.jsonl', rows: 4, format: 'text', evalRows: 0 }, config: DEFAULT_CONFIG, status: 'stopped', message: '',
  totalSteps: 4, trainableParams: 8, curves: [{ step: 1, epoch: 0, loss: 2, lr: 1e-4, gradNorm: 1, tokensPerSecond: 5, ms: 3, memBytes: 1, peakBytes: 1 }],
  samples: [], final: null, checkpoint: null, adapter: null, ...extra,
});

let db: RunsDb;
let saved: { name: string; blob: Blob }[];
beforeEach(async () => {
  db = new RunsDb(new MemoryKeyValue(), { estimate: async () => ({ usage: 100, quota: 1000 }) });
  linkRunsDb(db);
  saved = [];
  setDownloader((blob, name) => saved.push({ name, blob }));
  useStudio.setState({ runs: [], runsLoaded: false, runsError: '', liveRun: null });
  await db.create(record('a', 1));
  await db.create(record('b', 2, { status: 'running' }));
});

describe('runs slice', () => {
  it('lists saved runs newest first with the storage estimate', async () => {
    await useStudio.getState().refreshRuns();
    const s = useStudio.getState();
    expect(s.runs.map((r) => r.id)).toEqual(['b', 'a']);
    expect(s.storage).toEqual({ usage: 100, quota: 1000 });
    expect(s.runsLoaded).toBe(true);
  });

  it('renames and deletes, and refuses to delete the run this tab trains', async () => {
    await useStudio.getState().refreshRuns();
    await useStudio.getState().renameRun('a', 'pirates');
    expect(useStudio.getState().runs.find((r) => r.id === 'a')?.name).toBe('pirates');
    expect((await db.get('a'))?.name).toBe('pirates');
    useStudio.setState({ liveRun: { runId: 'b', phase: 'running' } as never });
    await useStudio.getState().deleteRun('b');
    expect(useStudio.getState().runsError).toMatch(/training in this tab/);
    expect(await db.get('b')).not.toBeNull();
    await useStudio.getState().deleteRun('a');
    expect(await db.get('a')).toBeNull();
    expect(useStudio.getState().runs.map((r) => r.id)).toEqual(['b']);
  });

  it('downloads the saved adapter as a PEFT zip or bare safetensors, and the metrics as CSV', async () => {
    await db.saveAdapter('a', { 'adapter_config.json': new TextEncoder().encode('{"r": 8}'), 'adapter_model.safetensors': new Uint8Array([1, 2, 3]) }, 4);
    await useStudio.getState().refreshRuns();
    await useStudio.getState().downloadRun('a', 'zip');
    await useStudio.getState().downloadRun('a', 'safetensors');
    await useStudio.getState().exportRunCsv('a');
    expect(saved.map((s) => s.name)).toEqual(['run-a-adapter.zip', 'adapter_model.safetensors', 'run-a-metrics.csv']);
    const zip = unzipSync(new Uint8Array(await saved[0].blob.arrayBuffer()));
    expect(Object.keys(zip).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    expect([...new Uint8Array(await saved[1].blob.arrayBuffer())]).toEqual([1, 2, 3]);
    expect((await saved[2].blob.text()).split('\n')[1]).toBe('1,0,2,,0.0001,1,5,3,1,1');
    // A run without an adapter says why.
    await useStudio.getState().downloadRun('b', 'zip');
    expect(useStudio.getState().runsError).toMatch(/no saved adapter/);
  });

  it('shows a running record nobody holds as interrupted', () => {
    const r = record('x', 1, { status: 'running' });
    expect(shownStatus(r, [])).toBe('interrupted');
    expect(shownStatus(r, ['x'])).toBe('running');
    expect(shownStatus({ ...r, status: 'finished' }, [])).toBe('finished');
  });

  describe('which tab holds a run (Web Locks)', () => {
    /** navigator.locks as the page sees it: the run locks some worker holds now. */
    let held: string[];
    beforeEach(() => {
      held = [];
      vi.stubGlobal('navigator', { locks: { query: async () => ({ held: held.map((id) => ({ name: runLockName(id) })), pending: [] }) } });
    });
    afterEach(() => vi.unstubAllGlobals());
    const holderOf = (id: string) => {
      const s = useStudio.getState();
      return runHolder(s.runs.find((r) => r.id === id)!, s.lockedRuns, s.liveRun);
    };

    it('a run that just finished in this tab is finished here and deletable, though its lock is not released yet', async () => {
      // This tab trains b: its worker holds b's lock.
      held = ['b'];
      useStudio.setState({ liveRun: { runId: 'b', phase: 'running', message: '' } as never });
      await useStudio.getState().refreshRuns();
      expect(holderOf('b')).toBe('this-tab');
      // The worker saves the end, reports it, and only then releases the lock: the list is read in between.
      await db.patch('b', { status: 'finished' });
      useStudio.getState().applyEngineEvent({ type: 'run-state', runId: 'b', state: 'finished' });
      await useStudio.getState().refreshRuns();
      const s = useStudio.getState();
      expect(s.liveRun?.phase).toBe('finished');
      expect(s.lockedRuns).toEqual(['b']);
      expect(shownStatus(s.runs.find((r) => r.id === 'b')!, s.lockedRuns)).toBe('finished');
      expect(holderOf('b')).toBeNull(); // not "finished in another tab", and Delete is enabled
      await useStudio.getState().deleteRun('b');
      expect(useStudio.getState().runsError).toBe('');
      expect(await db.get('b')).toBeNull();
    });

    it('a run another tab trains, or resumed after it ended here, is held by that tab and not deleted', async () => {
      held = ['a', 'b'];
      await useStudio.getState().refreshRuns();
      expect(holderOf('b')).toBe('another-tab');
      // a ended in this tab, then another tab resumed it: its record says running again.
      useStudio.setState({ liveRun: { runId: 'a', phase: 'stopped', message: '' } as never });
      await db.patch('a', { status: 'running' });
      await useStudio.getState().refreshRuns();
      expect(holderOf('a')).toBe('another-tab');
      await useStudio.getState().deleteRun('a');
      expect(useStudio.getState().runsError).toMatch(/training in another tab/);
      expect(await db.get('a')).not.toBeNull();
      // Nobody holds a stopped run.
      held = [];
      await db.patch('a', { status: 'stopped' });
      await useStudio.getState().refreshRuns();
      expect(holderOf('a')).toBeNull();
    });
  });
});
