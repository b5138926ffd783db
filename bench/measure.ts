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

export interface FigureInput {
  readonly bench: string;
  readonly metric: string;
  readonly unit: string;
  readonly value: number;
  readonly baseline: { readonly what: string; readonly value: number };
  readonly goal?: string | undefined;
  readonly extra?: Readonly<Record<string, unknown>>;
}

export function figure(f: FigureInput): Figure {
  const { extra, ...rest } = f;
  return {
    ...rest,
    ...extra,
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
