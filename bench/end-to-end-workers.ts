import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { createRegion } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { startShardWorkers } from '../app/shard-workers.js';
import { threadCpuMs } from '../app/thread-cpu.js';
import { monotonicNowMs, realScheduler, WallClock } from '../runtime/clock.js';
import { benchModels, fleetTelemetry } from './fleet-fixture.js';
import { figure, median, percentile, round, type Figure } from './measure.js';

/** Geozones of the benched region: more than two, so two workers carry unequal but similar loads. */
const GEOZONES = ['CAISO', 'ERCOT', 'MISO', 'PJM'];
const NODES_PER_GEOZONE = 1_000;
/** Requests in flight per geozone in the closed loop. */
const OUTSTANDING_PER_GEOZONE = 512;
/** Requests run before the measured ones in every run, in the same threads (JIT and caches warm). */
const WARMUP_REQUESTS = 10_000;

export interface WorkersRun {
  readonly workers: number | 'none';
  readonly requests: number;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** CPU seconds of the whole process (every thread) per 1,000 requests. */
  readonly cpuMsPerKRequest: number;
  /** Event-loop utilisation (0..1) of the main thread and of each worker during the run: which loop is the bottleneck. */
  readonly mainLoop: number;
  readonly workerLoops: readonly number[];
  /** Each thread's own CPU µs per request over the whole run: the main thread, then each worker (Linux; empty elsewhere). */
  readonly threadCpuUsPerRequest: readonly number[];
  /**
   * Requests/s this run's CPU costs allow on two free cores: the busiest thread
   * cannot pass one core, the process cannot pass two. Read beside perSec on a
   * machine shared with other work, where wall time measures the others too.
   */
  readonly twoCoreCapacityPerSec: number;
}

/** What the closed loop needs from a region, single-threaded or over workers. */
interface Target {
  submit(input: RegionInput): void;
  whenIdle(): Promise<void>;
  close(): Promise<void>;
  workerLoops(): readonly number[];
  workerCpuMs(): Promise<readonly (number | undefined)[]>;
}

/**
 * Inference requests through a durable LMDB region of four geozones, closed
 * loop: each request is replaced when its decision is released, and each
 * dispatch is answered with a result (journaled too). Driven by released
 * effects, never by polling, so an idle main thread takes no core from the
 * workers. `workers: 'none'` is today's single event loop.
 */
export async function runWorkersEndToEnd(dataDir: string, workers: number | 'none', requests: number, noSync = false, warmupRequests = WARMUP_REQUESTS): Promise<WorkersRun> {
  const submittedAt = new Map<string, number>();
  const latencies: number[] = [];
  const total = warmupRequests + requests;
  let sent = 0;
  let done = 0;
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  let warm: () => void = () => undefined;
  const warmedUp = new Promise<void>((resolve) => (warm = resolve));
  let target: Target | undefined;
  // Answers go out after the release that caused them, never inside it.
  let queued: RegionInput[] = [];
  const flushQueued = (): void => {
    const inputs = queued;
    queued = [];
    for (const input of inputs) target?.submit(input);
  };
  // Requests take turns over the geozones, so each geozone gets the same share whatever answers first.
  const request = (): RegionInput => {
    const geozone = GEOZONES[sent % GEOZONES.length] as string;
    const requestId = `req-${sent}`;
    sent++;
    submittedAt.set(requestId, monotonicNowMs());
    return { type: 'inference', request: { requestId, modelId: benchModels[sent % benchModels.length] as string, contextWindow: 4096, priority: 'normal', requesterGeozone: geozone }, triedGeozones: [] };
  };
  const settle = (requestId: string, latencyMs: number | undefined): void => {
    if (!submittedAt.delete(requestId)) return;
    if (latencyMs !== undefined && done >= warmupRequests) latencies.push(latencyMs);
    done++;
    if (sent < total) queued.push(request());
    if (done === warmupRequests) warm();
    if (done === total) finish();
  };
  const onEffects = (effects: readonly RegionEffect[]): void => {
    const now = monotonicNowMs();
    const before = queued.length;
    for (const effect of effects) {
      if (effect.type === 'dispatch') {
        const at = submittedAt.get(effect.requestId);
        queued.push({ type: 'result', requestId: effect.requestId, nodeId: effect.nodeId, latencyMs: 1, status: 'completed' });
        settle(effect.requestId, at === undefined ? undefined : now - at);
      } else if (effect.type === 'decision' && effect.outcome !== 'reserved') {
        settle(effect.requestId, undefined);
      }
    }
    if (before === 0 && queued.length > 0) queueMicrotask(flushQueued);
  };

  if (workers === 'none') {
    const store = new LmdbStore(dataDir, { noSync });
    const region = createRegion({ geozones: GEOZONES, store, clock: new WallClock(), scheduler: realScheduler, deliverForwards: true, onEffects });
    region.supervisor.recover();
    target = { submit: (input) => region.supervisor.submit(input), whenIdle: () => region.supervisor.whenIdle(), close: () => store.close(), workerLoops: () => [], workerCpuMs: () => Promise.resolve([]) };
  } else {
    const pool = await startShardWorkers({ dataDir, geozones: GEOZONES, workers, noSync, onEffects, onFailure: (error, geozone) => process.stderr.write(`${geozone}: ${error.code} ${error.message}\n`) });
    let since: EventLoopUtilization[] | undefined;
    target = {
      submit: (input) => pool.submit(input),
      whenIdle: () => pool.whenIdle(),
      close: async () => void (await pool.stop()),
      workerCpuMs: () => pool.threadCpuMs(),
      // First call marks the start; the second gives the utilisation since then.
      workerLoops: () => {
        const now = pool.loopUtilization(since);
        since ??= now;
        return now.map((u) => round(u.utilization));
      },
    };
  }
  const clock = new WallClock();
  for (const geozone of GEOZONES) for (const input of fleetTelemetry(NODES_PER_GEOZONE, geozone, clock.nowMs())) target.submit(input);
  await target.whenIdle();

  while (sent < Math.min(total, OUTSTANDING_PER_GEOZONE * GEOZONES.length)) target.submit(request());
  // Measured after a warm-up in the same threads: each worker is a fresh isolate that compiles the region's code again.
  if (warmupRequests > 0) await warmedUp;
  const cpuBefore = process.cpuUsage();
  const mainBefore = performance.eventLoopUtilization();
  target.workerLoops();
  const start = monotonicNowMs();
  const threadsBefore = [threadCpuMs(), ...(await target.workerCpuMs())];
  await finished;
  const totalMs = monotonicNowMs() - start;
  const cpu = process.cpuUsage(cpuBefore);
  const mainLoop = round(performance.eventLoopUtilization(mainBefore).utilization);
  const workerLoops = target.workerLoops();
  const threadsAfter = [threadCpuMs(), ...(await target.workerCpuMs())];
  const threadCpuUsPerRequest = threadsAfter.flatMap((after, i) => {
    const before = threadsBefore[i];
    return after === undefined || before === undefined ? [] : [round(((after - before) * 1000) / requests)];
  });
  const processCpuUs = (cpu.user + cpu.system) / requests;
  const busiestUs = Math.max(0, ...threadCpuUsPerRequest);
  flushQueued();
  await target.whenIdle();
  await target.close();
  return {
    workers,
    requests,
    perSec: (requests / totalMs) * 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    cpuMsPerKRequest: ((cpu.user + cpu.system) / 1000 / requests) * 1000,
    mainLoop,
    workerLoops,
    threadCpuUsPerRequest,
    twoCoreCapacityPerSec: busiestUs === 0 ? Number.NaN : Math.min(1e6 / busiestUs, 2e6 / processCpuUs),
  };
}

/**
 * One worker against two in the same run, alternating, three runs each (the
 * machine is shared and noisy: medians and their ratio are what count), with
 * today's single event loop beside them for the cost of the thread crossing.
 */
export async function endToEndWorkersBench(dir: string, requests = 100_000, rounds = 3, log: (line: string) => void = () => undefined): Promise<Figure[]> {
  await runWorkersEndToEnd(`${dir}/warmup-main`, 'none', 10_000);
  const runs: WorkersRun[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const workers of [1, 2, 'none'] as const) {
      const run = await runWorkersEndToEnd(`${dir}/run-${i}-${workers}`, workers, requests);
      log(JSON.stringify({ run: i, ...run, perSec: round(run.perSec), p50Ms: round(run.p50Ms), p99Ms: round(run.p99Ms), cpuMsPerKRequest: round(run.cpuMsPerKRequest), twoCoreCapacityPerSec: round(run.twoCoreCapacityPerSec) }));
      runs.push(run);
    }
  }
  const of = (workers: number | 'none', key: 'perSec' | 'p99Ms' | 'cpuMsPerKRequest' | 'twoCoreCapacityPerSec'): number => median(runs.filter((r) => r.workers === workers).map((r) => r[key]));
  const series = (workers: number | 'none'): [number, number][] => runs.filter((r) => r.workers === workers).map((r, i) => [i + 1, r.perSec]);
  return [
    figure({
      bench: 'end_to_end_lmdb_workers',
      metric: 'requests_per_sec_two_workers',
      unit: 'requests/s',
      value: of(2, 'perSec'),
      baseline: { what: 'the same region over one worker thread, same run (median of each)', value: of(1, 'perSec') },
      extra: { geozones: GEOZONES.length, nodesPerGeozone: NODES_PER_GEOZONE, requests, rounds, p99MsOneWorker: round(of(1, 'p99Ms')), p99MsTwoWorkers: round(of(2, 'p99Ms')), cpuMsPerKRequestOne: round(of(1, 'cpuMsPerKRequest')), cpuMsPerKRequestTwo: round(of(2, 'cpuMsPerKRequest')) },
      goal: '>= 1.7x from one worker to two',
      plot: {
        x: { label: 'run', unit: '' },
        y: { label: 'requests/s', unit: 'requests/s' },
        series: [
          { name: 'one worker', points: series(1) },
          { name: 'two workers', points: series(2) },
          { name: 'single event loop', points: series('none') },
        ],
      },
    }),
    figure({
      bench: 'end_to_end_lmdb_workers',
      metric: 'two_core_capacity_two_workers',
      unit: 'requests/s',
      value: of(2, 'twoCoreCapacityPerSec'),
      baseline: { what: 'the same for one worker: requests/s its per-thread CPU costs allow on two free cores (median)', value: of(1, 'twoCoreCapacityPerSec') },
      extra: { singleLoop: round(of('none', 'twoCoreCapacityPerSec')), threadCpuUsPerRequest: Object.fromEntries(runs.map((r, i) => [`${i}-${r.workers}`, r.threadCpuUsPerRequest])) },
      goal: '>= 1.7x from one worker to two',
    }),
    figure({
      bench: 'end_to_end_lmdb_workers',
      metric: 'requests_per_sec_one_worker',
      unit: 'requests/s',
      value: of(1, 'perSec'),
      baseline: { what: "today's single event loop, no workers, same run (median)", value: of('none', 'perSec') },
      extra: { p99MsSingleLoop: round(of('none', 'p99Ms')), cpuMsPerKRequestSingleLoop: round(of('none', 'cpuMsPerKRequest')) },
    }),
  ];
}
