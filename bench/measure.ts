import { readFileSync } from 'node:fs';
import { monotonicNowMs } from '../runtime/clock.js';

/** Percentile (0..100) of unsorted samples, nearest-rank. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** One benchmark figure: the measured value next to its raw baseline from the same run. */
export interface Figure {
  readonly bench: string;
  readonly metric: string;
  readonly unit: string;
  readonly value: number;
  readonly baseline: { readonly what: string; readonly value: number };
  /** value / baseline.value */
  readonly ratio: number;
  readonly goal?: string;
  readonly [extra: string]: unknown;
}

/**
 * The shape a figure takes to be drawn as a plot in the report (`--report DIR`):
 * besides its headline `value`, a figure may carry `x` and `y` (its axes) and
 * `series` (the lines), as top-level fields of its JSON line:
 *
 *   "x": { "label": "offered load", "unit": "requests/s", "scale": "log" },
 *   "y": { "label": "achieved", "unit": "requests/s" },
 *   "series": [{ "name": "region", "points": [[500, 498.2], [1000, 991.0]] }]
 *
 * `scale` is "linear" (the default) or "log"; points are [x, y] pairs of finite
 * numbers (a log axis drops points <= 0). Any bench that emits these three
 * fields gets its plot; the report knows no bench by name.
 */
export interface PlotAxis {
  readonly label: string;
  readonly unit: string;
  readonly scale?: 'linear' | 'log';
}

export interface PlotSeries {
  readonly name: string;
  readonly points: readonly (readonly [x: number, y: number])[];
}

export interface PlotFields {
  readonly x: PlotAxis;
  readonly y: PlotAxis;
  readonly series: readonly PlotSeries[];
}

export interface FigureInput {
  readonly bench: string;
  readonly metric: string;
  readonly unit: string;
  readonly value: number;
  readonly baseline: { readonly what: string; readonly value: number };
  readonly goal?: string | undefined;
  readonly extra?: Readonly<Record<string, unknown>>;
  /** Axes and lines, for figures measured at several points (offered loads, fleet sizes, workers). */
  readonly plot?: PlotFields;
}

export function figure(f: FigureInput): Figure {
  const { extra, plot, ...rest } = f;
  return {
    ...rest,
    ...extra,
    ...(plot === undefined ? {} : { x: plot.x, y: plot.y, series: plot.series.map((s) => ({ name: s.name, points: s.points.map(([x, y]) => [round(x, 3), round(y, 3)]) })) }),
    value: round(f.value),
    baseline: { what: f.baseline.what, value: round(f.baseline.value) },
    ratio: round(f.value / f.baseline.value, 3),
  };
}

export function elapsedMs(start: number): number {
  return monotonicNowMs() - start;
}

export function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run benchmarks with node --expose-gc (npm run bench does)');
  collect();
  collect();
}

export function heapUsed(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * Resident memory split as Linux counts it (/proc/self/status, MB): anonymous
 * pages (the heap and every other private allocation: the process's own memory)
 * and file-backed ones (mapped files: LMDB's journal file, whose pages a writing
 * process touches and the kernel may drop at any time). Undefined off Linux.
 */
export function residentSplitMb(): { anonMb: number; fileMb: number } | undefined {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return undefined;
  }
  const kb = (field: string): number | undefined => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match === null ? undefined : Number(match[1]);
  };
  const anon = kb('RssAnon');
  const file = kb('RssFile');
  if (anon === undefined || file === undefined) return undefined;
  return { anonMb: Math.round(anon / 1024), fileMb: Math.round(file / 1024) };
}
