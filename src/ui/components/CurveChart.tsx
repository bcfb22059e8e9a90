// A line chart of a run's curve (recharts), used live by the run view and for saved runs on the Runs screen. The
// number of points drawn is on the container (data-points) so tests can watch a chart grow.
import { useMemo } from 'react';
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { ChartRow } from '../../store/metrics-buffer.ts';
import { axisTicks } from './axis-ticks.ts';

export interface CurveLine {
  key: keyof ChartRow;
  name: string;
  color: string;
  /** Thin and faint: the raw loss under its smoothed line. */
  faint?: boolean;
  /** Points only (eval loss exists every N steps). */
  dots?: boolean;
}

// Mid-tone colours that read on the light and the dark background alike.
export const COLORS = { raw: '#9d95e8', smoothed: '#5b4fd6', eval: '#e07a1f', lr: '#1f9d6b', grad: '#c0398a' };

export function CurveChart({ rows, lines, title, testId, height = 220, log = false }: {
  rows: ChartRow[];
  lines: CurveLine[];
  title: string;
  testId?: string;
  height?: number;
  log?: boolean;
}) {
  const last = rows.at(-1);
  // Our own ticks on a linear axis, printed with the digits their step needs; recharts' own on a log axis.
  const axis = useMemo(() => (log ? null : axisTicks(rows.flatMap((r) => lines.map((l) => r[l.key])))), [rows, lines, log]);
  const summary = last
    ? lines.map((l) => {
        const v = [...rows].reverse().find((r) => r[l.key] !== undefined)?.[l.key];
        return `${l.name} ${typeof v === 'number' ? v.toPrecision(4) : '—'}`;
      }).join(', ')
    : 'no steps yet';
  return (
    <figure className="chart" data-testid={testId} data-points={rows.length}>
      <figcaption>{title}</figcaption>
      <p className="sr-only">{`${title} after step ${last?.step ?? 0}: ${summary}`}</p>
      <div style={{ width: '100%', height }} aria-hidden="true">
        <ResponsiveContainer width="100%" height="100%">
          <LineChart data={rows} margin={{ top: 8, right: 12, bottom: 4, left: 0 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} />
            <XAxis dataKey="step" type="number" domain={['dataMin', 'dataMax']} allowDecimals={false} />
            <YAxis
              width={56}
              scale={log ? 'log' : 'auto'}
              domain={axis ? axis.domain : ['auto', 'auto']}
              ticks={axis?.ticks}
              tickFormatter={axis ? axis.format : (v: number) => (Math.abs(v) < 1e-2 && v !== 0 ? v.toExponential(0) : String(+v.toPrecision(3)))}
            />
            <Tooltip formatter={(v) => (typeof v === 'number' ? v.toPrecision(5) : String(v))} labelFormatter={(s) => `step ${s}`} />
            {lines.length > 1 && <Legend />}
            {lines.map((l) => (
              <Line
                key={l.key}
                dataKey={l.key}
                name={l.name}
                stroke={l.color}
                strokeWidth={l.faint ? 1 : 2}
                strokeOpacity={l.faint ? 0.6 : 1}
                dot={l.dots ? { r: 3, fill: l.color } : false}
                connectNulls
                isAnimationActive={false}
              />
            ))}
          </LineChart>
        </ResponsiveContainer>
      </div>
    </figure>
  );
}
