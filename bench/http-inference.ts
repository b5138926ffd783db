import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { Pool } from 'undici';
import { createRegion } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { limits, parseWire } from '../actors/wire.js';
import type { RequestGuard } from '../adapters/http/access.js';
import { buildHttpApi, type RegionApi } from '../adapters/http/http-api.js';
import { ApiKeyStore, createKey } from '../adapters/security/api-keys.js';
import { createKeyGuard } from '../adapters/security/key-guard.js';
import { RateLimiter } from '../adapters/security/rate-limiter.js';
import { TicketBook } from '../adapters/security/tickets.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { RegionMetrics } from '../adapters/metrics/prometheus.js';
import { createRequestTracer, type RequestTracer } from '../adapters/otel/request-tracer.js';
import { traceRegionApi } from '../adapters/otel/traced-region-api.js';
import { createRegionApi, regionMetricsSource } from '../app/region-api.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import { monotonicNowMs, realScheduler, WallClock } from '../runtime/clock.js';
import { benchModels, fleetTelemetry } from './fleet-fixture.js';
import { figure, percentile, round, type Figure } from './measure.js';

/** Requests in flight in the closed loop: one per pooled connection. */
const CONCURRENCY = 64;
const RUN_MS = 4_000;
const WARMUP_MS = 1_000;
/** Closed-loop runs of each server, interleaved; figures are medians. */
const ROUNDS = 3;
const NODES = 1_000;
/** Offered loads of the open-loop sweep, requests/s. */
const OFFERED_PER_SEC = [250, 500, 1_000, 2_000, 4_000, 8_000] as const;
const SWEEP_MS = 3_000;
/** Open loop: requests the client keeps outstanding at most; a request due beyond it is counted as shed, not sent. */
const MAX_OUTSTANDING = 2_048;
const PERCENTILES = [50, 90, 99, 99.9] as const;

interface LoadRun {
  readonly requests: number;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Latency at each of PERCENTILES, ms. */
  readonly percentilesMs: readonly number[];
  /** Process CPU (user + system) per request: steadier than requests/s when the disk's commit time dominates. */
  readonly cpuUsPerRequest: number;
  /** Answers by HTTP status (202 reserved, 503 rejected, ...). */
  readonly statuses: Readonly<Record<string, number>>;
}

/** The same inference request every server here is sent (one client for all). */
function requestBody(idPrefix: string, n: number): string {
  return JSON.stringify({
    'request-id': `${idPrefix}-${n}`,
    'model-id': benchModels[n % benchModels.length],
    'context-window': 4096,
    priority: 'normal',
    'requester-geozone': 'CAISO',
  });
}

function summarise(latencies: readonly number[], totalMs: number, cpu: NodeJS.CpuUsage, statuses: Record<string, number>): LoadRun {
  return {
    requests: latencies.length,
    perSec: (latencies.length / totalMs) * 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    percentilesMs: PERCENTILES.map((p) => percentile(latencies, p)),
    cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, latencies.length),
    statuses,
  };
}

/**
 * Closed loop over real sockets: CONCURRENCY workers on an undici Pool of as
 * many connections, each posting an inference request and waiting for its
 * answer before the next, for `durationMs`. Latency is request to full answer.
 */
async function load(origin: string, durationMs: number, idPrefix: string, authorization?: string): Promise<LoadRun> {
  const headers = { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) };
  const pool = new Pool(origin, { connections: CONCURRENCY, pipelining: 1 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let sequence = 0;
  const cpuBefore = process.cpuUsage();
  const start = monotonicNowMs();
  const worker = async (): Promise<void> => {
    while (monotonicNowMs() - start < durationMs) {
      const body = requestBody(idPrefix, sequence++);
      const sent = monotonicNowMs();
      const response = await pool.request({ path: '/v1/inference', method: 'POST', headers, body });
      await response.body.text();
      latencies.push(monotonicNowMs() - sent);
      statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const totalMs = monotonicNowMs() - start;
  const cpu = process.cpuUsage(cpuBefore);
  await pool.close();
  return summarise(latencies, totalMs, cpu, statuses);
}

interface OfferedRun extends LoadRun {
  readonly offeredPerSec: number;
  /** Requests due while MAX_OUTSTANDING were outstanding: never sent. */
  readonly shed: number;
}

/**
 * Open loop: requests are sent when the offered rate says they are due, whether
 * or not earlier ones were answered (as independent users do), for `durationMs`;
 * then the outstanding ones are awaited. Latency runs from when a request was
 * due, so a client that falls behind cannot hide a slow server.
 */
async function offeredLoad(origin: string, offeredPerSec: number, durationMs: number, idPrefix: string): Promise<OfferedRun> {
  const pool = new Pool(origin, { connections: CONCURRENCY, pipelining: 1 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  let shed = 0;
  const cpuBefore = process.cpuUsage();
  const start = monotonicNowMs();
  const send = (n: number, dueMs: number): void => {
    const request = pool
      .request({ path: '/v1/inference', method: 'POST', headers: { 'content-type': 'application/json' }, body: requestBody(idPrefix, n) })
      .then(
        async (response) => {
          await response.body.text();
          latencies.push(monotonicNowMs() - dueMs);
          statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1;
        },
        // Counted, not thrown: a request failing mid-sweep is an outcome of the load, and a rejection
        // nobody awaits yet would end the process.
        () => {
          statuses['error'] = (statuses['error'] ?? 0) + 1;
        },
      )
      .finally(() => inFlight.delete(request));
    inFlight.add(request);
  };
  for (let elapsedMs = 0; elapsedMs < durationMs; elapsedMs = monotonicNowMs() - start) {
    const due = Math.floor((elapsedMs / 1000) * offeredPerSec);
    for (; sent < due; sent++) {
      if (inFlight.size >= MAX_OUTSTANDING) shed++;
      else send(sent, start + (sent * 1000) / offeredPerSec);
    }
    await sleep(1);
  }
  await Promise.all(inFlight);
  const totalMs = monotonicNowMs() - start;
  const cpu = process.cpuUsage(cpuBefore);
  await pool.close();
  return { ...summarise(latencies, totalMs, cpu, statuses), offeredPerSec, shed };
}

/** The floor: a bare fastify route answering 202 with a body like the region's, nothing behind it. */
async function bareRoute(): Promise<{ origin: string; close: () => Promise<void> }> {
  const app: FastifyInstance = Fastify({ logger: false, bodyLimit: limits.maxMessageBytes });
  app.post('/v1/inference', async (request, reply) => {
    const body = request.body as Record<string, unknown>;
    return reply.code(202).send({
      'request-id': body['request-id'],
      outcome: 'reserved',
      geozone: 'CAISO',
      'node-id': 'CAISO-00000',
      'expires-at': new Date(Date.now() + 30_000).toISOString(),
      candidates: 1,
      reason: 'best of 1 eligible in CAISO: cogen, gpu 0.1',
    });
  });
  const origin = await app.listen({ host: '127.0.0.1', port: 0 });
  return { origin, close: () => app.close() };
}

/** An OTLP/HTTP endpoint that takes every export and keeps only counts (the collector's side is not measured). */
async function traceSink(): Promise<{ url: string; exports: () => number; bytes: () => number; close: () => Promise<void> }> {
  let exports = 0;
  let bytes = 0;
  const server = createServer((request, response) => {
    request.on('data', (chunk: Buffer) => (bytes += chunk.length));
    request.on('end', () => {
      exports++;
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    exports: () => exports,
    bytes: () => bytes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The region's HTTP API on 127.0.0.1 in front of one CAISO shard with the
 * durable LMDB journal and a fleet of NODES nodes (telemetry first). Each
 * dispatched node answers on the next turn, in-process, so capacity stays free
 * and the load measures routing, not a full fleet.
 */
async function regionServer(dataDir: string, tracer?: RequestTracer): Promise<{ origin: string; close: () => Promise<void> }> {
  const metrics = new RegionMetrics();
  const timed = metrics.timeAppends(new LmdbStore(dataDir));
  const store = tracer === undefined ? timed : tracer.wrapJournalStore(timed);
  const clock = new WallClock();
  let pendingResults: RegionInput[] = [];
  let flushScheduled = false;
  let apiEffects: (effects: readonly RegionEffect[]) => void = () => undefined;
  const region = createRegion({
    geozones: ['CAISO'],
    store,
    clock,
    scheduler: realScheduler,
    deliverForwards: true,
    onEffects: (effects) => {
      apiEffects(effects);
      tracer?.onEffects(effects);
      for (const effect of effects) {
        if (effect.type !== 'dispatch') continue;
        pendingResults.push({ type: 'result', requestId: effect.requestId, nodeId: effect.nodeId, latencyMs: 1, status: 'completed' });
      }
      if (pendingResults.length > 0 && !flushScheduled) {
        flushScheduled = true;
        realScheduler.soon(flushResults);
      }
    },
  });
  const supervisor = region.supervisor;
  function flushResults(): void {
    flushScheduled = false;
    const results = pendingResults;
    pendingResults = [];
    for (const result of results) {
      if (result.type === 'result') tracer?.onResultIngress(result.requestId, 'bus');
      supervisor.submit(result);
    }
  }
  supervisor.recover();
  for (const input of fleetTelemetry(NODES, 'CAISO', clock.nowMs())) supervisor.submit(input);
  await supervisor.whenIdle();
  const wiring = createRegionApi(region, { decisionTimeoutMs: 10_000, ready: () => true, metrics, store });
  metrics.readFrom(regionMetricsSource(region, () => 0));
  apiEffects = wiring.onEffects;
  const app = buildHttpApi(tracer === undefined ? wiring.api : traceRegionApi(wiring.api, tracer), { bodyLimitBytes: limits.maxMessageBytes });
  const origin = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    origin,
    close: async () => {
      await app.close();
      // Let the last answers from the nodes land before the journal closes.
      await supervisor.whenIdle();
      while (pendingResults.length > 0 || flushScheduled) await nextTurn();
      await supervisor.whenIdle();
      await store.close();
    },
  };
}

async function regionRun(dataDir: string, durationMs: number, idPrefix: string, tracer?: RequestTracer): Promise<LoadRun> {
  const server = await regionServer(dataDir, tracer);
  try {
    return await load(server.origin, durationMs, idPrefix);
  } finally {
    await server.close();
  }
}

const unused = (): never => {
  throw new ArcError(ErrorCodes.NOT_FOUND, 'not served by the HTTP-layer bench');
};

/**
 * The region's HTTP stack alone: buildHttpApi with its hooks, route, edge
 * validation (parseWire: size, JSON, strict zod schema) and the decision's wire
 * body, but a RegionApi that answers every request at once instead of routing
 * and journaling it. Between the bare route and the region, it says how much
 * of the gap is the HTTP side and how much the region behind it.
 */
async function httpLayerOnly(guard?: RequestGuard): Promise<{ origin: string; close: () => Promise<void> }> {
  const clock = new WallClock();
  const api: RegionApi = {
    ready: () => true,
    ownership: () => ({ journal: 'lmdb', geozones: [{ geozone: 'CAISO', ready: true }] }),
    infer: (body, scope) => {
      const input = parseWire('inference', body);
      if (input.type !== 'inference' || !scope(input.request.requesterGeozone)) return Promise.reject(new ArcError(ErrorCodes.FORBIDDEN, 'out of scope'));
      const atMs = clock.nowMs();
      return Promise.resolve({
        type: 'decision',
        atMs,
        requestId: input.request.requestId,
        outcome: 'reserved',
        geozone: 'CAISO',
        requesterGeozone: input.request.requesterGeozone,
        nodeId: 'CAISO-00000',
        expiresAtMs: atMs + 30_000,
        candidates: 1,
        reason: 'best of 1 eligible in CAISO: cogen, gpu 0.1',
      });
    },
    ingest: unused,
    nodes: unused,
    node: unused,
    nodeHistory: unused,
    reservation: unused,
    summary: unused,
    drain: unused,
    metrics: unused,
  };
  const app = buildHttpApi(api, { bodyLimitBytes: limits.maxMessageBytes, guard });
  const origin = await app.listen({ host: '127.0.0.1', port: 0 });
  return { origin, close: () => app.close() };
}

/**
 * A guard as `arcnet region --api-keys` builds it (key hash lookup, role, a
 * per-key budget far above the load so that nothing is refused), and the key.
 */
function keyedGuard(): { guard: RequestGuard; authorization: string } {
  const { key, stored } = createKey({ role: 'developer', geozones: ['CAISO'] });
  const guard = createKeyGuard({
    keys: new ApiKeyStore([stored]),
    limiter: new RateLimiter({ ratePerSec: 1_000_000, burst: 2_000_000 }),
    tickets: new TicketBook(),
    nowMs: () => Date.now(),
    onRefused: () => undefined,
  });
  return { guard, authorization: `Bearer ${key}` };
}

async function serverRun(server: () => Promise<{ origin: string; close: () => Promise<void> }>, durationMs: number, idPrefix: string, authorization?: string): Promise<LoadRun> {
  const started = await server();
  try {
    return await load(started.origin, durationMs, idPrefix, authorization);
  } finally {
    await started.close();
  }
}

/** The run whose requests/s is the median of the runs (its latencies and CPU go with it). */
function medianRun<R extends LoadRun>(runs: readonly R[]): R {
  const sorted = [...runs].sort((a, b) => a.perSec - b.perSec);
  const middle = sorted[Math.floor((sorted.length - 1) / 2)];
  if (middle === undefined) throw new Error('no runs');
  return middle;
}

/** Open-loop sweep of one server over OFFERED_PER_SEC, lowest first. */
async function sweep(origin: string, idPrefix: string): Promise<OfferedRun[]> {
  const runs: OfferedRun[] = [];
  for (const offered of OFFERED_PER_SEC) runs.push(await offeredLoad(origin, offered, SWEEP_MS, `${idPrefix}-${offered}`));
  return runs;
}

export async function httpInferenceBench(dir: string): Promise<Figure[]> {
  // Warm each server kind once (JIT), then interleave the measured runs so that
  // the machine's load drifts over all of them alike.
  await serverRun(bareRoute, WARMUP_MS, 'warm');
  await serverRun(httpLayerOnly, WARMUP_MS, 'warm');
  const keyed = keyedGuard();
  const keyedLayer = (): Promise<{ origin: string; close: () => Promise<void> }> => httpLayerOnly(keyed.guard);
  await regionRun(`${dir}/http-warmup`, WARMUP_MS, 'warm');
  const sink = await traceSink();
  const bareRuns: LoadRun[] = [];
  const layerRuns: LoadRun[] = [];
  const keyedRuns: LoadRun[] = [];
  const untracedRuns: LoadRun[] = [];
  const tracedRuns: LoadRun[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    bareRuns.push(await serverRun(bareRoute, RUN_MS, 'req'));
    layerRuns.push(await serverRun(httpLayerOnly, RUN_MS, 'req'));
    keyedRuns.push(await serverRun(keyedLayer, RUN_MS, 'req', keyed.authorization));
    untracedRuns.push(await regionRun(`${dir}/http-region-${round}`, RUN_MS, 'req'));
    const tracer = await createRequestTracer({ endpoint: sink.url, serviceName: 'arcnet-bench', geozones: ['CAISO'] });
    if (tracer === undefined) throw new Error('tracer expected with an endpoint');
    tracedRuns.push(await regionRun(`${dir}/http-traced-${round}`, RUN_MS, 'req', tracer));
    await tracer.shutdown();
  }
  const exports = sink.exports();
  const exportedBytes = sink.bytes();
  await sink.close();

  // Throughput and latency against offered load (open loop), bare route and region.
  const bareServer = await bareRoute();
  const bareSweep = await sweep(bareServer.origin, 'sweep');
  await bareServer.close();
  const regionSweepServer = await regionServer(`${dir}/http-sweep`);
  const regionSweep = await sweep(regionSweepServer.origin, 'sweep');
  await regionSweepServer.close();

  const baseline = medianRun(bareRuns);
  const layer = medianRun(layerRuns);
  const keyedLayerRun = medianRun(keyedRuns);
  const region = medianRun(untracedRuns);
  const traced = medianRun(tracedRuns);
  const perSecOf = (runs: readonly LoadRun[]): number[] => runs.map((r) => round(r.perSec));

  const outcomes = (run: LoadRun): Record<string, number> => ({
    reserved: run.statuses['202'] ?? 0,
    rejected: run.statuses['503'] ?? 0,
    other: run.requests - (run.statuses['202'] ?? 0) - (run.statuses['503'] ?? 0),
  });
  const setup = { concurrency: CONCURRENCY, durationMs: RUN_MS, nodes: NODES, runs: `median of ${ROUNDS}, interleaved`, client: 'undici Pool over 127.0.0.1 sockets, the same for every server' };
  const bareWhat = 'bare fastify route (logger off, JSON body parsed by fastify, 202 with a decision-like JSON body, nothing behind it), same client and concurrency';
  const percentileSeries = (name: string, run: LoadRun): { name: string; points: [number, number][] } => ({
    name,
    // x is "1 in N requests is slower": p50 at 2, p90 at 10, p99 at 100, p99.9 at 1,000, evenly spread on a log axis.
    points: PERCENTILES.map((p, i) => [100 / (100 - p), run.percentilesMs[i] ?? Number.NaN]),
  });
  const sweepSeries = (name: string, runs: readonly OfferedRun[], y: (r: OfferedRun) => number): { name: string; points: [number, number][] } => ({
    name,
    points: runs.map((r) => [r.offeredPerSec, y(r)]),
  });
  const maxPerSec = (runs: readonly OfferedRun[]): number => Math.max(...runs.map((r) => r.perSec));
  const sweepExtra = (runs: readonly OfferedRun[]): Record<string, unknown>[] =>
    runs.map((r) => ({ offeredPerSec: r.offeredPerSec, achievedPerSec: round(r.perSec), p50Ms: round(r.p50Ms), p99Ms: round(r.p99Ms), shed: r.shed, errors: r.statuses['error'] ?? 0, ...outcomes(r) }));
  return [
    figure({
      bench: 'http_inference',
      metric: 'requests_per_sec',
      unit: 'requests/s',
      value: region.perSec,
      baseline: { what: bareWhat, value: baseline.perSec },
      goal: '>= 0.5 of the bare route (issue 11, goal 7)',
      extra: {
        requests: region.requests,
        ...outcomes(region),
        cpuUsPerRequest: round(region.cpuUsPerRequest, 1),
        baselineCpuUsPerRequest: round(baseline.cpuUsPerRequest, 1),
        // Steadier than requests/s on a shared machine: what the ratio would be where CPU alone binds.
        cpuRatio: round(baseline.cpuUsPerRequest / region.cpuUsPerRequest, 3),
        runsPerSec: perSecOf(untracedRuns),
        baselineRunsPerSec: perSecOf(bareRuns),
        ...setup,
      },
    }),
    figure({
      bench: 'http_inference',
      metric: 'requests_per_sec_http_layer_only',
      unit: 'requests/s',
      value: layer.perSec,
      baseline: { what: bareWhat, value: baseline.perSec },
      extra: {
        what: "the region's HTTP API (hooks, route, edge validation, decision body) in front of a RegionApi that answers at once: the HTTP side's own cost",
        cpuUsPerRequest: round(layer.cpuUsPerRequest, 1),
        baselineCpuUsPerRequest: round(baseline.cpuUsPerRequest, 1),
        cpuRatio: round(baseline.cpuUsPerRequest / layer.cpuUsPerRequest, 3),
        runsPerSec: perSecOf(layerRuns),
        ...setup,
      },
    }),
    figure({
      bench: 'http_inference',
      metric: 'requests_per_sec_http_layer_only_keyed',
      unit: 'requests/s',
      value: keyedLayerRun.perSec,
      baseline: { what: 'the same HTTP layer without API keys (open)', value: layer.perSec },
      extra: {
        what: 'the HTTP layer with an API key on every request (Bearer header: SHA-256 lookup, role, rate budget), as `arcnet region --api-keys` serves',
        cpuUsPerRequest: round(keyedLayerRun.cpuUsPerRequest, 1),
        openCpuUsPerRequest: round(layer.cpuUsPerRequest, 1),
        runsPerSec: perSecOf(keyedRuns),
        ...setup,
      },
    }),
    figure({
      bench: 'http_inference',
      metric: 'p99_ms',
      unit: 'ms',
      value: region.p99Ms,
      baseline: { what: 'bare fastify route p99', value: baseline.p99Ms },
      extra: { p50Ms: round(region.p50Ms), baselineP50Ms: round(baseline.p50Ms), concurrency: CONCURRENCY },
      plot: {
        x: { label: '1 in N requests is slower (p50 = 2, p90 = 10, p99 = 100, p99.9 = 1,000)', unit: '', scale: 'log' },
        y: { label: `latency, closed loop of ${CONCURRENCY}`, unit: 'ms', scale: 'log' },
        series: [
          percentileSeries('bare fastify route', baseline),
          percentileSeries('HTTP layer only', layer),
          percentileSeries('HTTP layer only, API key', keyedLayerRun),
          percentileSeries('region', region),
          percentileSeries('region, traced', traced),
        ],
      },
    }),
    figure({
      bench: 'http_inference',
      metric: 'requests_per_sec_traced',
      unit: 'requests/s',
      value: traced.perSec,
      baseline: { what: `the same region without tracing (median of ${ROUNDS}, interleaved with the traced runs)`, value: region.perSec },
      extra: {
        p99Ms: round(traced.p99Ms),
        untracedP99Ms: round(region.p99Ms),
        p50Ms: round(traced.p50Ms),
        cpuUsPerRequest: round(traced.cpuUsPerRequest, 1),
        untracedCpuUsPerRequest: round(region.cpuUsPerRequest, 1),
        requests: traced.requests,
        ...outcomes(traced),
        runsPerSec: perSecOf(tracedRuns),
        untracedRunsPerSec: perSecOf(untracedRuns),
        otlpExports: exports,
        otlpMegabytes: round(exportedBytes / 1e6),
        ...setup,
      },
    }),
    figure({
      bench: 'http_inference',
      metric: 'throughput_vs_offered_load',
      unit: 'requests/s',
      value: maxPerSec(regionSweep),
      baseline: { what: 'bare fastify route, highest achieved over the same offered loads', value: maxPerSec(bareSweep) },
      extra: { region: sweepExtra(regionSweep), bare: sweepExtra(bareSweep), sweepMs: SWEEP_MS, maxOutstanding: MAX_OUTSTANDING },
      plot: {
        x: { label: 'offered load', unit: 'requests/s', scale: 'log' },
        y: { label: 'answered', unit: 'requests/s' },
        series: [
          sweepSeries('offered', bareSweep, (r) => r.offeredPerSec),
          sweepSeries('bare fastify route', bareSweep, (r) => r.perSec),
          sweepSeries('region', regionSweep, (r) => r.perSec),
        ],
      },
    }),
    figure({
      bench: 'http_inference',
      metric: 'latency_vs_offered_load',
      unit: 'ms',
      value: regionSweep.find((r) => r.offeredPerSec === 1_000)?.p99Ms ?? Number.NaN,
      baseline: { what: 'bare fastify route p99 at 1,000/s offered', value: bareSweep.find((r) => r.offeredPerSec === 1_000)?.p99Ms ?? Number.NaN },
      extra: { at: 'p99 at 1,000 requests/s offered', sweepMs: SWEEP_MS },
      plot: {
        x: { label: 'offered load', unit: 'requests/s', scale: 'log' },
        y: { label: 'latency from when due', unit: 'ms', scale: 'log' },
        series: [
          sweepSeries('bare p50', bareSweep, (r) => r.p50Ms),
          sweepSeries('bare p99', bareSweep, (r) => r.p99Ms),
          sweepSeries('region p50', regionSweep, (r) => r.p50Ms),
          sweepSeries('region p99', regionSweep, (r) => r.p99Ms),
        ],
      },
    }),
  ];
}
