import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import type { Logger } from 'pino';
import { createRegion } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { InProcessBus } from '../adapters/bus/in-process-bus.js';
import { effectToWire } from '../adapters/bus/topics.js';
import { LmdbStore } from '../adapters/lmdb/lmdb-store.js';
import { monotonicNowMs, realScheduler, WallClock } from '../runtime/clock.js';
import { LiveTimer } from '../runtime/live-timer.js';
import { Prng } from '../runtime/random.js';
import { defaultFaults, noFaults, SimFleet } from '../simulations/fleet.js';
import { inputToWire } from '../simulations/wire-producer.js';
import { SimWorkload } from '../simulations/workload.js';
import { limits } from '../actors/wire.js';
import { buildHttpApi } from '../adapters/http/http-api.js';
import { connectInputs } from './bus-edge.js';
import { RegionMetrics } from '../adapters/metrics/prometheus.js';
import { createRegionApi, regionMetricsSource } from './region-api.js';
import type { Refusal, RefusalContext } from '../adapters/http/access.js';
import { createRequestTracer, requestAttributes } from '../adapters/otel/request-tracer.js';
import { traceRegionApi } from '../adapters/otel/traced-region-api.js';
import { createConsoleWiring } from './console-wiring.js';
import { GeozoneStats, LiveActorCounts } from '../inspector/live-counts.js';
import { registerInspector } from '../inspector/register.js';
import { liveInspectorSource } from '../inspector/source.js';
import { regionSecurity, type SecurityOptions } from './region-security.js';

export interface RegionCommandOptions {
  readonly dataDir: string;
  readonly geozones: readonly string[];
  readonly simNodes: number;
  readonly ratePerSec: number;
  readonly seed: number;
  readonly faults: boolean;
  readonly statusEveryMs: number;
  /** Append every released dispatch and decision here (one JSON line each), as the requesters see them. */
  readonly effectsLog?: string | undefined;
  /** Stop by itself after this long (wall clock); runs until SIGTERM/SIGINT otherwise. */
  readonly runForMs?: number | undefined;
  readonly logger: Logger;
  /** Serve the HTTP API and the console WebSocket on 127.0.0.1 at this port (none when undefined). */
  readonly port?: number | undefined;
  /** API keys, rate limits and TLS for the HTTP API and the console. */
  readonly security: SecurityOptions;
  /** OTLP/HTTP traces endpoint; the OTEL_EXPORTER_OTLP_* environment otherwise; no traces without either. */
  readonly otlpEndpoint?: string | undefined;
  /** Encrypts the data folder at rest (the folder must have been made with the same key). */
  readonly encryptionKey?: Buffer | undefined;
}

/** Region-wide events (about no one geozone) reach only console keys that see every geozone. */
const REGION_WIDE = '_REGION';
const REFUSALS_REPORTED_PER_SEC = 10;

/**
 * The live regional runtime on the embedded default: LMDB journal and
 * snapshots in the data folder, the wall clock, the in-process bus carrying the
 * seed's topics (inputs validated at the edge, effects published once durable),
 * and optionally a simulated fleet and workload that talk to it over that bus
 * in the seed's wire formats, as real agents would.
 * It recovers from the folder on start; SIGTERM stops it cleanly and prints a
 * JSON line with the state hash that `arcnet replay` on the folder reproduces.
 */
export async function runRegion(options: RegionCommandOptions): Promise<Record<string, unknown>> {
  const wallStart = monotonicNowMs();
  const log = options.logger;
  // Metrics read the region when scraped; the region is assembled below, on the timed store.
  const metrics = new RegionMetrics();
  const tracer = await createRequestTracer({ endpoint: options.otlpEndpoint, env: process.env, serviceName: 'arcnet-region', geozones: options.geozones });
  const security = regionSecurity(options.security, process.env, log, (refusal, context) => onRefused(refusal, context));
  const consoleFeed = createConsoleWiring({
    region: () => region,
    guard: security.guard,
    onRefused: (refusal, context) => onRefused(refusal, context),
    onFeedError: (error) => log.error({ err: error }, 'console feed failed on a journal append'),
  });
  const lmdb = new LmdbStore(options.dataDir, { encryptionKey: options.encryptionKey });
  const timed = metrics.timeAppends(lmdb);
  const store = consoleFeed.feedFrom(tracer === undefined ? timed : tracer.wrapJournalStore(timed));
  const clock = new WallClock();
  const effectsFd = options.effectsLog === undefined ? undefined : openSync(options.effectsLog, 'a');
  let fleet: SimFleet | undefined;
  let stopping = false;
  const bus = new InProcessBus(realScheduler);
  let unpublished = 0;

  const region = createRegion({
    geozones: options.geozones,
    store,
    clock,
    scheduler: realScheduler,
    deliverForwards: true,
    onEffects: (effects, geozone) => onEffects(effects, geozone),
    onFailure: (error, geozone) => {
      log.fatal({ err: error, geozone }, 'shard failed; stopping');
      process.exitCode = 1;
      stop('shard-failure');
    },
  });
  const supervisor = region.supervisor;
  // One fold of per-geozone counters per record serves the inspector's API and its live counts.
  const geozoneStats = new GeozoneStats(region);
  const inspectorSource = liveInspectorSource(region, lmdb, { dataKey: options.encryptionKey, stats: geozoneStats });

  let ready = false;
  const http = createRegionApi(region, { decisionTimeoutMs: 10_000, ready: () => ready && !stopping, metrics, store });
  metrics.readFrom({ ...regionMetricsSource(region, () => bus.stats().waiting), console: () => consoleFeed.hub.stats() });

  function onEffects(effects: readonly RegionEffect[], geozone: string): void {
    http.onEffects(effects);
    tracer?.onEffects(effects);
    consoleFeed.onEffects(effects, geozone);
    if (effectsFd !== undefined) {
      let lines = '';
      for (const effect of effects) if (effect.type === 'dispatch' || effect.type === 'decision') lines += `${JSON.stringify(effect)}\n`;
      if (lines !== '') {
        writeSync(effectsFd, lines);
        fsyncSync(effectsFd);
      }
    }
    for (const effect of effects) {
      if (effect.type === 'system' && effect.severity !== 'info') log.info({ details: effect.details }, effect.message);
      const wire = effectToWire(effect);
      if (wire === undefined) continue;
      try {
        bus.publish(wire.topic, JSON.stringify(wire.message));
      } catch (error) {
        // A subscriber that stays behind loses messages, never the region's memory; the journal has them.
        unpublished++;
        log.warn({ err: error, topic: wire.topic }, 'effect not published');
      }
    }
  }

  /** A refused HTTP request or console connection: a system event on the console and the bus, and a log line (never the key). */
  /**
   * Refusals are reported at most REFUSALS_REPORTED_PER_SEC a second: a flood of
   * bad requests (which no key's budget limits) must not become a flood of log
   * lines and events. The next report says how many were left out.
   */
  const refusalWindow = { startedMs: 0, reported: 0, suppressed: 0 };
  function onRefused(refusal: Refusal, context: RefusalContext): void {
    const wallMs = Date.now();
    if (wallMs - refusalWindow.startedMs >= 1_000) {
      refusalWindow.startedMs = wallMs;
      refusalWindow.reported = 0;
    }
    if (refusalWindow.reported >= REFUSALS_REPORTED_PER_SEC) {
      refusalWindow.suppressed++;
      return;
    }
    refusalWindow.reported++;
    const suppressed = refusalWindow.suppressed;
    refusalWindow.suppressed = 0;
    const details = {
      status: refusal.status,
      code: refusal.code,
      method: context.method,
      path: context.path,
      ...(context.keyId === undefined ? {} : { keyId: context.keyId }),
      ...(suppressed === 0 ? {} : { notReportedBefore: suppressed }),
    };
    const message = refusal.status === 401 ? 'request refused: no valid API key' : refusal.status === 403 ? 'request refused: not allowed for this key' : 'request refused: rate limit';
    log.warn(details, message);
    const nowMs = clock.nowMs();
    consoleFeed.publish([{ type: 'system', geozone: REGION_WIDE, severity: 'warn', message, details, timestamp: new Date(nowMs).toISOString() }]);
    const wire = effectToWire({ type: 'system', atMs: nowMs, severity: 'warn', message, details });
    if (wire !== undefined) {
      try {
        bus.publish(wire.topic, JSON.stringify(wire.message));
      } catch {
        unpublished++;
      }
    }
  }

  const edge = connectInputs(bus, (input) => submitTraced(input, 'bus'), () => stopping, (error, topic) => log.warn({ err: error, topic }, 'input refused'));

  /** Inputs with their trace (when tracing is on) opened at ingress. */
  function submitTraced(input: RegionInput, transport: 'bus'): void {
    if (tracer !== undefined) {
      if (input.type === 'inference' && input.targetGeozone === undefined) tracer.ingress(input.request.requestId, transport, requestAttributes(input.request));
      else if (input.type === 'result') tracer.onResultIngress(input.requestId, transport);
    }
    supervisor.submit(input);
  }

  const recoverStart = monotonicNowMs();
  // Reservations that began and ended before the restart are not rebuilt one transition at a time.
  const recovered = supervisor.recover(true, { skipEphemeral: true });
  ready = true;
  const lastTimeMs = Math.max(0, ...supervisor.all().map((shard) => shard.nowMs));
  clock.raiseFloor(lastTimeMs);
  log.info({ recovered, ms: Math.round(monotonicNowMs() - recoverStart) }, 'recovered');

  const timer = new LiveTimer({ clock, scheduler: realScheduler, everyMs: 20, advance: (now) => supervisor.advanceTo(now) });
  timer.start();

  const cancelTimers = new Set<() => void>();
  // Simulated agents speak the wire format over the bus; what has no seed topic (cancels) goes straight in.
  const submit = (input: RegionInput): void => {
    if (stopping) return;
    try {
      const wire = inputToWire(input);
      if (wire === undefined) supervisor.submit(input);
      else bus.publish(wire.topic, JSON.stringify(wire.message));
    } catch (error) {
      log.warn({ err: error }, 'simulated input refused');
    }
  };
  const hooks = {
    schedule: (atMs: number, fn: () => void) => {
      const cancel = realScheduler.after(Math.max(0, atMs - clock.nowMs()), () => {
        cancelTimers.delete(cancel);
        if (!stopping) fn();
      });
      cancelTimers.add(cancel);
    },
    submit,
  };
  let workload: SimWorkload | undefined;
  if (options.simNodes > 0) {
    const prng = new Prng(options.seed);
    fleet = new SimFleet(prng.fork(), { nodes: options.simNodes, geozones: options.geozones, faults: options.faults ? defaultFaults : noFaults }, hooks);
    // Request ids carry the start time so a restarted process never reuses one.
    workload = new SimWorkload(
      prng.fork(),
      { ratePerSec: options.ratePerSec, geozones: options.geozones, cancelRate: options.faults ? 0.005 : 0, idPrefix: `req-${clock.nowMs().toString(36)}-` },
      hooks,
    );
    const simFleet = fleet;
    bus.subscribe('arc.command.dispatch.*', (raw) => {
      const d = JSON.parse(raw as string) as { 'request-id': string; 'node-id': string; 'model-id': string };
      simFleet.onDispatch({ requestId: d['request-id'], nodeId: d['node-id'], modelId: d['model-id'], atMs: clock.nowMs() });
    });
    fleet.start(clock.nowMs());
    workload.start(clock.nowMs());
  }

  const status = (): void => {
    const parts = supervisor.all().map((shard) => `${shard.shardId} actors=${shard.actorCount} offset=${shard.lastDurableOffset}`);
    const s = region.stats;
    process.stderr.write(
      `[arcnet region] ${parts.join(' | ')} | requests=${s.requests} routed=${s.routed} completed=${s.completed} expired=${s.expired} rejected=${s.rejected} forwarded=${s.forwarded} timeouts=${s.nodeTimeouts} invalid=${edge.invalid}\n`,
    );
  };
  const statusTimer = setInterval(status, options.statusEveryMs);

  let resolveDone: (value: Record<string, unknown>) => void = () => undefined;
  let rejectDone: (error: Error) => void = () => undefined;
  const done = new Promise<Record<string, unknown>>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });

  const server =
    options.port === undefined
      ? undefined
      : buildHttpApi(tracer === undefined ? http.api : traceRegionApi(http.api, tracer), {
          bodyLimitBytes: limits.maxMessageBytes,
          guard: security.guard,
          https: security.https,
          extraRoutes: (routes, guarded) => registerInspector(routes, { source: inspectorSource, routes: guarded, consolePath: '/telemetry' }),
        });
  // Per-state actor counts for the inspector, each second, while anyone is connected to the console.
  const liveCounts = new LiveActorCounts(region, geozoneStats);
  const countsTimer = setInterval(() => {
    if (consoleFeed.hub.stats().clients > 0) consoleFeed.publish(liveCounts.tick(Date.now()));
  }, 1_000);
  if (server !== undefined) {
    consoleFeed.hub.attach(server.server);
    const address = await server.listen({ host: '127.0.0.1', port: options.port });
    log.info({ address, console: `${address.replace(/^http/, 'ws')}/telemetry`, docs: `${address}/docs`, inspector: `${address}/inspector`, apiKeys: security.keys, tls: security.https !== undefined, traces: tracer !== undefined }, 'HTTP API listening');
  }

  async function shutdown(reason: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    clearInterval(countsTimer);
    await consoleFeed.hub.close();
    await server?.close();
    await inspectorSource.close();
    log.info({ reason }, 'stopping');
    clearInterval(statusTimer);
    fleet?.stop();
    workload?.stop();
    for (const cancel of cancelTimers) cancel();
    timer.stop();
    let line: Record<string, unknown>;
    try {
      await supervisor.whenIdle();
      await supervisor.snapshotAll();
      line = {
        geozones: supervisor.shardIds,
        nodes: supervisor.all().reduce((sum, shard) => sum + countNodes(shard.actors()), 0),
        ...region.stats,
        recoveredRecords: recovered.reduce((sum, r) => sum + r.replayed, 0),
        edge: { ...edge, unpublished },
        lastOffsets: Object.fromEntries(supervisor.all().map((shard) => [shard.shardId, shard.lastDurableOffset])),
        stateHash: supervisor.stateHash(),
        wallMs: Math.round(monotonicNowMs() - wallStart),
        stoppedBy: reason,
      };
    } finally {
      // The last requests' spans end with their effects above; flush them before the store goes.
      await tracer?.shutdown();
      await store.close();
      if (effectsFd !== undefined) closeSync(effectsFd);
    }
    resolveDone(line);
  }

  /** Stops once; a failure while stopping is reported and fails the run instead of crashing the process. */
  function stop(reason: string): void {
    shutdown(reason).catch((error: unknown) => {
      log.fatal({ err: error }, 'stopping failed');
      process.exitCode = 1;
      rejectDone(error instanceof Error ? error : new Error(String(error)));
    });
  }

  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  if (options.runForMs !== undefined) realScheduler.after(options.runForMs, () => stop('run-for elapsed'));
  status();
  return done;
}

function countNodes(actors: Iterable<[string, { name: string }, unknown]>): number {
  let n = 0;
  for (const [, kind] of actors) if (kind.name === 'node') n++;
  return n;
}
