// `npm run bench`: the benchmark suite of issue 7 through dawn.node. Tables (aligned Markdown) on stdout, progress
// on stderr; --json prints one JSON document instead. Sections: 1 matmul vs TF.js, 2 fused LoRA vs unfused, 3 NF4
// vs f16/f32 weights, 4 memory vs the analytic estimate, 5 training steps through the trainer, 6 the profile of one step (bench/profile.ts), 7 attention: the row kernel
// against the flash one (bench/attention.ts), 8 a training step per method of the comparison (bench/methods.ts).
import { writeFileSync } from 'node:fs';
import { createEngine } from '../src/gpu/engine.ts';
import { nodeGpuEntry, openNodeGpu } from '../src/gpu/node.ts';
import type { BenchContext, SectionResult } from './context.ts';
import { parseArgs, timingFor, USAGE, type Section } from './lib/plan.ts';
import { renderTable } from './lib/table.ts';
import { runAttention } from './attention.ts';
import { runLora } from './lora.ts';
import { runMatmul } from './matmul.ts';
import { runMethods } from './methods.ts';
import { runMemory } from './memory.ts';
import { formatMeta, runMeta } from './meta.ts';
import { runNf4 } from './nf4.ts';
import { runProfile } from './profile.ts';
import { openTfjsPeer } from './tfjs-peer.ts';
import { createGpuTimer } from './timing.ts';
import { runTraining } from './training.ts';

async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseArgs(argv);
  } catch (err) {
    console.error(`error: ${(err as Error).message}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  const started = performance.now();
  const log = (message: string) => process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0)}s] ${message}\n`);
  const gpu = await openNodeGpu();
  const e = createEngine(gpu);
  const meta = runMeta(gpu);
  const out = (text: string) => {
    if (!options.json) process.stdout.write(text + '\n\n');
  };
  out(`## lora-studio benchmarks${options.quick ? ' (--quick)' : ''}\n\n${formatMeta(meta)}`);

  const needsPeer = options.sections.includes('matmul');
  const tfjs = needsPeer ? await openTfjsPeer(nodeGpuEntry(), options.wallClock) : { error: 'matmul section not run' };
  if ('error' in tfjs && needsPeer) log(`TF.js peer unavailable: ${tfjs.error}`);
  const timer = createGpuTimer(e, !options.wallClock && gpu.features.has('timestamp-query'));
  const ctx: BenchContext = { e, timer, timing: timingFor(options), options, tfjs, matmulTimes: new Map(), log };

  const runners: Record<Section, () => Promise<SectionResult> | SectionResult> = {
    matmul: () => runMatmul(ctx),
    lora: () => runLora(ctx),
    nf4: () => runNf4(ctx),
    memory: () => runMemory(ctx),
    training: () => runTraining(ctx),
    profile: () => runProfile(ctx),
    attention: () => runAttention(ctx),
    methods: () => runMethods(ctx),
  };
  const results: Partial<Record<Section, unknown>> = {};
  const failures: string[] = [];
  const document = (complete: boolean) =>
    JSON.stringify({ meta, options, timing: ctx.timing, clock: timer.clock, complete, seconds: (performance.now() - started) / 1000, results, failures }, null, 2) + '\n';
  for (const section of options.sections) {
    log(`${section}…`);
    try {
      const r = await runners[section]();
      results[section] = r.data;
      out(renderTable(r.table));
    } catch (err) {
      const message = err instanceof Error ? `${err.message}` : String(err);
      failures.push(`${section}: ${message}`);
      results[section] = { error: message };
      out(`### ${section}\n\nfailed: ${message}`);
      log(`${section} failed: ${err instanceof Error && err.stack ? err.stack : message}`);
    }
    // After every section, so a run cut short (a GPU machine's time limit) still leaves the sections it finished.
    if (options.jsonOut) writeFileSync(options.jsonOut, document(false));
  }
  const seconds = (performance.now() - started) / 1000;
  log(`done in ${seconds.toFixed(0)} s`);
  const json = document(true);
  if (options.jsonOut) writeFileSync(options.jsonOut, json);
  if (options.json) {
    process.stdout.write(json);
  } else {
    out(`total time: ${seconds.toFixed(0)} s`);
  }
  timer.destroy();
  return failures.length ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
