import { join } from 'node:path';
import { figure, median, type Figure } from './measure.js';
import { LARGE_FLEET_HEAP_LIMIT_MB, runScaleChild } from './scale.js';
import type { ScaleSample } from './scale-run.js';

/**
 * The soak (issue 11, "Also"; not in CI): the 100k-node workload (10,000
 * telemetry/s, 10,000 requests/s, 3 geozones) under the simulator's faults for
 * `minutes` of wall time, in a process of its own. The child samples every
 * simulated second; each wall minute becomes one JSON line with the process's
 * resident memory and heap at its end and the worst one-second routing p99 in it
 * (the worst, so a bad second is never averaged away).
 */
export interface SoakMinute {
  readonly bench: 'soak';
  readonly minute: number;
  readonly simMs: number;
  readonly eventsPerSec: number;
  readonly speedVsRealTime: number;
  readonly routeP99Us: number;
  readonly inferenceP99Us: number;
  readonly rssMb: number;
  /** Of rssMb: the process's own pages, and the mapped journal file's (see residentSplitMb). */
  readonly rssAnonMb?: number;
  readonly rssFileMb?: number;
  readonly heapUsedMb: number;
}

const NODES = 100_000;
/** Every node has reported once by then (telemetry every 10 s, the first within the first period). */
const WARM_UP_MS = 15_000;
const RATE_PER_SEC = 10_000;

export async function soakBench(dir: string, minutes: number, emitMinute: (line: SoakMinute) => void): Promise<Figure[]> {
  if (!(minutes > 0)) throw new Error(`--minutes must be a positive number, got ${minutes}`);
  const wallBudgetMs = minutes * 60_000;
  const lines: SoakMinute[] = [];
  let bucket: ScaleSample[] = [];
  let minute = 1;
  let bucketStartWallMs = 0;
  const flush = (): void => {
    const lastSample = bucket[bucket.length - 1];
    if (lastSample === undefined) return;
    const wallS = (lastSample.wallMs - bucketStartWallMs) / 1000;
    bucketStartWallMs = lastSample.wallMs;
    const line: SoakMinute = {
      bench: 'soak',
      minute,
      simMs: lastSample.simMs,
      eventsPerSec: Math.round(bucket.reduce((sum, s) => sum + s.events, 0) / Math.max(wallS, 1e-9)),
      speedVsRealTime: median(bucket.map((s) => s.speed)),
      routeP99Us: Math.max(...bucket.map((s) => s.routeP99Us)),
      inferenceP99Us: Math.max(...bucket.map((s) => s.inferenceP99Us)),
      rssMb: lastSample.rssMb,
      ...(lastSample.rssAnonMb === undefined ? {} : { rssAnonMb: lastSample.rssAnonMb, rssFileMb: lastSample.rssFileMb }),
      heapUsedMb: lastSample.heapUsedMb,
    };
    lines.push(line);
    emitMinute(line);
    bucket = [];
  };
  await runScaleChild(
    {
      seed: 42,
      nodes: NODES,
      geozones: ['CAISO', 'ERCOT', 'PJM'],
      ratePerSec: RATE_PER_SEC,
      faults: true,
      // Far more simulated time than the wall budget lets it reach: the budget ends the run.
      durationMs: 24 * 3_600_000,
      sampleEveryMs: 1_000,
      wallBudgetMs,
      journalDir: join(dir, 'soak'),
    },
    (sample) => {
      bucket.push(sample);
      if (sample.wallMs >= minute * 60_000) {
        flush();
        minute++;
      }
    },
    LARGE_FLEET_HEAP_LIMIT_MB,
  );
  flush();
  // Growth: resident memory at the end against the first minute that ends after the warm-up (the whole
  // fleet has reported by then; on a busy machine the first wall minutes may not get that far).
  const first = lines.find((line) => line.simMs > WARM_UP_MS) ?? lines[0];
  const last = lines[lines.length - 1];
  if (first === undefined || last === undefined) return [];
  return [
    figure({
      bench: 'soak',
      metric: `resident memory after ${lines.length} minutes, 100k nodes, 10k telemetry/s + 10k requests/s, faults on`,
      unit: 'MB',
      value: last.rssMb,
      baseline: { what: `resident memory after minute ${first.minute}, the first past the warm-up`, value: first.rssMb },
      goal: 'ratio ~1 (no growth), <= 1024 MB',
      extra: {
        // Resident memory counts the journal file's mapped pages, which grow as it is written: the anonymous
        // part is the process's own memory, where a leak would show.
        rssAnonMbFirst: first.rssAnonMb,
        rssAnonMbLast: last.rssAnonMb,
        rssFileMbFirst: first.rssFileMb,
        rssFileMbLast: last.rssFileMb,
        heapLimitMb: LARGE_FLEET_HEAP_LIMIT_MB,
        heapUsedMbFirst: first.heapUsedMb,
        heapUsedMbLast: last.heapUsedMb,
        simMsReached: last.simMs,
        worstRouteP99Us: Math.max(...lines.map((l) => l.routeP99Us)),
      },
    }),
  ];
}
