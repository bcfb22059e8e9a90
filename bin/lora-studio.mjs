#!/usr/bin/env node
// Entry point of `npx lora-studio`: runs the CLI bundle that `npm ci` builds (the `prepare` script).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const bundle = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist-cli', 'cli.mjs');
if (!existsSync(bundle)) {
  console.error('error: the CLI is not built; run `npm run build:cli` (npm ci does it for you)');
  process.exit(1);
}
const { main } = await import(pathToFileURL(bundle).href);
process.exitCode = await main(process.argv.slice(2));
