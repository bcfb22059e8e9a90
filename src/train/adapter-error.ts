// The error every refused adapter ends in (peft.ts importAdapter, adapter-archive.ts): `where` is the file or folder,
// `problems` everything wrong with it, all reported at once.

export class AdapterError extends Error {
  constructor(
    readonly where: string,
    readonly problems: string[],
  ) {
    const shown = problems.slice(0, 12);
    const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more` : '';
    super(problems.length === 1 ? `${where}: ${problems[0]}` : `${where}:\n  ${shown.join('\n  ')}${more}`);
    this.name = 'AdapterError';
  }
}
