// Shared by the TRL export's tests (src/cli/export-trl.test.ts, src/export/trl-live.gpu.test.ts).

/** JSONL of chat rows (chat template + assistant-only masking; every fourth a two-turn conversation) and, from the
 *  fourth row on, one bad line the loader skips, so line numbers and row indices differ. */
export function chatRows(n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i === 3) lines.push('{"oops": 1}');
    const turn = [{ role: 'user', content: `say ${i}` }, { role: 'assistant', content: `ok ${i} done` }];
    const more = i % 4 === 1 ? [{ role: 'user', content: 'again' }, { role: 'assistant', content: `${i + 1}` }] : [];
    lines.push(JSON.stringify({ messages: [...turn, ...more] }));
  }
  return `${lines.join('\n')}\n`;
}
