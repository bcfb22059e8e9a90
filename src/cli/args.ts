// Flags of one CLI command, parsed with node:util's parseArgs and turned into errors that say which flag and why.
import { parseArgs } from 'node:util';

/** Bad command-line input: main.ts prints it as one `error: …` line like any other error. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; default?: string | boolean }>;
export type FlagValues = Record<string, string | boolean | undefined>;

/** `--name value` / `--name=value` flags of `command`; positionals are refused (every input is a named flag). */
export function parseFlags(command: string, args: string[], spec: FlagSpec): FlagValues {
  let parsed;
  try {
    parsed = parseArgs({ args, options: spec, strict: true, allowPositionals: true });
  } catch (e) {
    // parseArgs' messages carry advice about "--" that does not apply here: keep their first sentence.
    const first = (e as Error).message.split('. ')[0];
    throw new UsageError(`${command}: ${first} (options: ${Object.keys(spec).map((k) => `--${k}`).join(', ')})`);
  }
  if (parsed.positionals.length > 0) {
    throw new UsageError(`${command}: unexpected argument "${parsed.positionals[0]}" (every input is a --flag)`);
  }
  return parsed.values as FlagValues;
}

export function requiredString(command: string, values: FlagValues, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`${command}: --${name} is required`);
  return v;
}

export function optionalString(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** An integer flag ≥ min, or undefined when absent. */
export function optionalInt(command: string, values: FlagValues, name: string, min: number): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`${command}: --${name} must be an integer >= ${min}, got "${String(v)}"`);
  }
  return n;
}

/** A flag restricted to a few values. */
export function oneOf<T extends string>(command: string, values: FlagValues, name: string, allowed: readonly T[], fallback: T): T {
  const v = values[name];
  if (v === undefined) return fallback;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new UsageError(`${command}: --${name} "${String(v)}" is not supported. Should be one of: ${allowed.join(', ')}`);
  }
  return v as T;
}
