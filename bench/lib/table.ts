// Tables as aligned Markdown: readable on a terminal as printed, and pasted unchanged into BENCHMARKS.md.

export type Align = 'left' | 'right';

export interface Column {
  header: string;
  align?: Align;
}

export interface Table {
  title: string;
  columns: Column[];
  /** Cells already formatted as text (see stats.ts); one entry per column. */
  rows: string[][];
  /** Lines printed under the table: how it was measured, what a missing value means. */
  notes?: string[];
}

/** Characters a cell occupies on a terminal (× and – are one column; this counts code points, not UTF-16 units). */
function width(text: string): number {
  return [...text].length;
}

function pad(text: string, w: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, w - width(text)));
  return align === 'right' ? fill + text : text + fill;
}

/** Renders `t` as a Markdown section: `### title`, the aligned table, then its notes as a list. */
export function renderTable(t: Table): string {
  for (const [i, row] of t.rows.entries()) {
    if (row.length !== t.columns.length) {
      throw new RangeError(`table "${t.title}": row ${i} has ${row.length} cells, expected ${t.columns.length}`);
    }
  }
  const escape = (s: string) => s.replace(/\|/g, '\\|');
  const header = t.columns.map((c) => escape(c.header));
  const body = t.rows.map((r) => r.map(escape));
  const widths = t.columns.map((_, j) => Math.max(3, width(header[j]), ...body.map((r) => width(r[j]))));
  const line = (cells: string[]) =>
    `| ${cells.map((c, j) => pad(c, widths[j], t.columns[j].align ?? 'left')).join(' | ')} |`;
  const rule = `|${widths.map((w, j) => (t.columns[j].align === 'right' ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  const out = [`### ${t.title}`, '', line(header), rule, ...body.map(line)];
  if (t.notes?.length) out.push('', ...t.notes.map((n) => `- ${n}`));
  return out.join('\n');
}
