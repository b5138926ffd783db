import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { Pool } from 'undici';
import { createRegion } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { limits } from '../actors/wire.js';
import { buildHttpApi } from '../adapters/http/http-api.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { RegionMetrics } from '../adapters/metrics/prometheus.js';
import { createRequestTracer, type RequestTracer } from '../adapters/otel/request-tracer.js';
import { traceRegionApi } from '../adapters/otel/traced-region-api.js';
import { createRegionApi, regionMetricsSource } from '../app/region-api.js';
import { monotonicNowMs, realScheduler, WallClock } from '../runtime/clock.js';
import { benchModels, fleetTelemetry } from './fleet-fixture.js';
import { figure, percentile, round, type Figure } from './measure.js';

/** Requests in flight: one per pooled connection. */
const CONCURRENCY = 64;
const RUN_MS = 5_000;
const WARMUP_MS = 1_000;
const NODES = 1_000;

interface LoadRun {
  readonly requests: number;
  readonly perSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Process CPU (user + system) per request: steadier than requests/s when the disk's commit time dominates. */
  readonly cpuUsPerRequest: number;
  /** Answers by HTTP status (202 reserved, 503 rejected, ...). */
  readonly statuses: Readonly<Record<string, number>>;
}

/**
 * Closed loop over real sockets: CONCURRENCY workers on an undici Pool of as
 * many connections, each posting an inference request and waiting for its
 * answer before the next, for `durationMs`. Latency is request to full answer.
 */
async function load(origin: string, durationMs: number, idPrefix: string): Promise<LoadRun> {
  const pool = new Pool(origin, { connections: CONCURRENCY, pipelining: 1 });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let sequence = 0;
  const cpuBefore = process.cpuUsage();
  const start = monotonicNowMs();
  const worker = async (): Promise<void> => {
    while (monotonicNowMs() - start < durationMs) {
      const n = sequence++;
      const body = JSON.stringify({
        'request-id': `${idPrefix}-${n}`,
        'model-id': benchModels[n % benchModels.length],
        'context-window': 4096,
        priority: 'normal',
        'requester-geozone': 'CAISO',
      });
      const sent = monotonicNowMs();
      const response = await pool.request({ path: '/v1/inference', method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await response.body.text();
      latencies.push(monotonicNowMs() - sent);
      statuses[response.statusCode] = (statuses[response.statusCode] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const totalMs = monotonicNowMs() - start;
  const cpu = process.cpuUsage(cpuBefore);
  await pool.close();
  return {
    requests: latencies.length,
    perSec: (latencies.length / totalMs) * 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    cpuUsPerRequest: (cpu.user + cpu.system) / Math.max(1, latencies.length),
    statuses,
  };
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

export async function httpInferenceBench(dir: string): Promise<Figure[]> {
  const bare = await bareRoute();
  await load(bare.origin, WARMUP_MS, 'warm');
  const baseline = await load(bare.origin, RUN_MS, 'req');
  await bare.close();

  // Tracing off and on, interleaved twice, best of each: the durable journal's
  // commit time on a shared disk moves more between runs than tracing costs.
  await regionRun(`${dir}/http-warmup`, WARMUP_MS, 'warm');
  const sink = await traceSink();
  const untracedRuns: LoadRun[] = [];
  const tracedRuns: LoadRun[] = [];
  for (let round = 0; round < 2; round++) {
    untracedRuns.push(await regionRun(`${dir}/http-region-${round}`, RUN_MS, 'req'));
    const tracer = await createRequestTracer({ endpoint: sink.url, serviceName: 'arcnet-bench', geozones: ['CAISO'] });
    if (tracer === undefined) throw new Error('tracer expected with an endpoint');
    tracedRuns.push(await regionRun(`${dir}/http-traced-${round}`, RUN_MS, 'req', tracer));
    await tracer.shutdown();
  }
  const exports = sink.exports();
  const exportedBytes = sink.bytes();
  await sink.close();
  const best = (runs: readonly LoadRun[]): LoadRun => runs.reduce((a, b) => (b.perSec > a.perSec ? b : a));
  const region = best(untracedRuns);
  const traced = best(tracedRuns);

  const outcomes = (run: LoadRun): Record<string, number> => ({
    reserved: run.statuses['202'] ?? 0,
    rejected: run.statuses['503'] ?? 0,
    other: run.requests - (run.statuses['202'] ?? 0) - (run.statuses['503'] ?? 0),
  });
  const setup = { concurrency: CONCURRENCY, durationMs: RUN_MS, nodes: NODES, transport: 'undici Pool over 127.0.0.1 sockets' };
  return [
    figure({
      bench: 'http_inference',
      metric: 'requests_per_sec',
      unit: 'requests/s',
      value: region.perSec,
      baseline: { what: 'bare fastify route answering 202 with a similar JSON body, same client and concurrency', value: baseline.perSec },
      extra: {
        requests: region.requests,
        ...outcomes(region),
        cpuUsPerRequest: round(region.cpuUsPerRequest, 1),
        baselineCpuUsPerRequest: round(baseline.cpuUsPerRequest, 1),
        runs: 'best of 2',
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
    }),
    figure({
      bench: 'http_inference',
      metric: 'requests_per_sec_traced',
      unit: 'requests/s',
      value: traced.perSec,
      baseline: { what: 'the same region without tracing (best of 2, interleaved with the traced runs)', value: region.perSec },
      extra: {
        p99Ms: round(traced.p99Ms),
        untracedP99Ms: round(region.p99Ms),
        p50Ms: round(traced.p50Ms),
        cpuUsPerRequest: round(traced.cpuUsPerRequest, 1),
        untracedCpuUsPerRequest: round(region.cpuUsPerRequest, 1),
        requests: traced.requests,
        ...outcomes(traced),
        runsPerSec: tracedRuns.map((r) => round(r.perSec)),
        untracedRunsPerSec: untracedRuns.map((r) => round(r.perSec)),
        otlpExports: exports,
        otlpMegabytes: round(exportedBytes / 1e6),
        ...setup,
      },
    }),
  ];
}
