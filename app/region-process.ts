import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { createRegion, type Region } from '../actors/region.js';
import type { RegionEffect, RegionInput } from '../actors/region-io.js';
import { limits } from '../actors/wire.js';
import { buildHttpApi } from '../adapters/http/http-api.js';
import { RegionMetrics } from '../adapters/metrics/prometheus.js';
import { createRequestTracer, requestAttributes } from '../adapters/otel/request-tracer.js';
import { traceRegionApi } from '../adapters/otel/traced-region-api.js';
import { GeozoneStats, LiveActorCounts } from '../inspector/live-counts.js';
import { registerInspector } from '../inspector/register.js';
import { liveInspectorSource } from '../inspector/source.js';
import { monotonicNowMs, realScheduler, WallClock } from '../runtime/clock.js';
import { LiveTimer } from '../runtime/live-timer.js';
import { createAgentWiring } from './agent-wiring.js';
import { startKafkaTrainingEdge, type UpdateSigner } from './kafka-training-edge.js';
import { trainingBlobStore } from './training-blobs.js';
import { createTrainingWiring, type TrainEffect } from './training-wiring.js';
import type { TrainTaskV1 } from '../actors/training-wire.js';
import { createConsoleWiring } from './console-wiring.js';
import { EffectsLog } from './effects-log.js';
import { embeddedOwnership } from './embedded-ownership.js';
import { kafkaOwnership } from './kafka-ownership.js';
import type { Ownership, OwnershipHost, RegionStore } from './ownership.js';
import { refusalReporter } from './refusal-reporter.js';
import { createRegionApi, regionMetricsSource } from './region-api.js';
import { regionSecurity, type SecurityOptions } from './region-security.js';
import { regionRole, type Role, type RoleAttachment, type RoleHost } from './role.js';

/** Where the region's journals and snapshots live, and so how it owns its geozones. */
export type JournalOptions =
  | {
      readonly kind: 'lmdb';
      readonly dataDir: string;
      /** Encrypts the data folder at rest (the folder must have been made with the same key). */
      readonly encryptionKey?: Buffer | undefined;
    }
  | {
      readonly kind: 'kafka';
      readonly brokers: readonly string[];
      readonly ssl?: ConnectionOptions | undefined;
      /** Consumer group of the region processes (they share the geozones). */
      readonly groupId: string;
      /** kafkajs client id prefix (default arcnet-region-<pid>). */
      readonly clientId?: string | undefined;
      /** Node CA (PEM): telemetry and results on the input topics must be signed by a node of the geozone they claim. */
      readonly nodeCaPem?: string | undefined;
    };

export interface RegionProcessOptions {
  /** What the process's shards run (default: the region). */
  readonly role?: Role | undefined;
  /** Every geozone of the region (LMDB: all owned here; Kafka: the group shares them). */
  readonly geozones: readonly string[];
  readonly journal: JournalOptions;
  /** Serve the HTTP API, console, inspector and metrics on 127.0.0.1 at this port (0: any free one; none when undefined). */
  readonly port?: number | undefined;
  /** API keys, rate limits and TLS for everything served. */
  readonly security: SecurityOptions;
  /** OTLP/HTTP traces endpoint; the OTEL_EXPORTER_OTLP_* environment otherwise; no traces without either. */
  readonly otlpEndpoint?: string | undefined;
  /** Append every released dispatch and decision here (one JSON line each, fsynced). */
  readonly effectsLog?: string | undefined;
  readonly logger: Logger;
  /** The environment for keys (ARCNET_API_KEYS) and traces (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** How long POST /v1/inference waits for its durable decision (default 10 s). */
  readonly decisionTimeoutMs?: number;
}

export type DispatchEffect = Extract<RegionEffect, { type: 'dispatch' }>;

/** A running region process: the same whatever its journal. */
export interface RegionProcess {
  readonly region: Region;
  readonly mode: 'lmdb' | 'kafka';
  readonly clock: WallClock;
  /** The address served (http(s)://127.0.0.1:PORT), once started with a port. */
  readonly address: string | undefined;
  /** Recovers or joins, starts the clock and serves; waits (retrying) for a broker that is not there yet. */
  start(): Promise<void>;
  /** Stops once (later calls get the same result): everything durable, snapshotted, closed. The final line. */
  stop(reason: string): Promise<Record<string, unknown>>;
  /** Every geozone owned here has recovered. */
  ready(): boolean;
  owned(): { geozone: string; ready: boolean }[];
  /** One line for the operator: shards, counters, edge. */
  statusLine(): string;
  /** A failure after which the process must stop (a shard's journal failed). */
  onFatal(listener: (error: Error, geozone: string) => void): void;
  /** An input as the seed's wire message onto the region's input topics (how a simulated fleet talks to it). */
  publish(input: RegionInput): void;
  /** Every dispatch the region releases (a simulated fleet acts on them). */
  onDispatch(listener: (dispatch: DispatchEffect) => void): void;
  /** Every train message the region sends, weights inline (a simulated fleet trains on them). */
  onTrain(listener: (task: TrainTaskV1, effect: TrainEffect) => void): void;
  /** A TrainingUpdate v1 through the same edge as HTTP and the agent channel; resolves once durable. */
  trainingUpdate(body: string): Promise<void>;
  /** Every effect released, by shard, once durable (whatever the role). */
  onReleased(listener: (effects: readonly RegionEffect[], shardId: string) => void): void;
}

/** Region-wide events (about no one geozone) reach only console keys that see every geozone. */
const REGION_WIDE = '_REGION';
const REFUSALS_REPORTED_PER_SEC = 10;

/**
 * Assembles a region process from its parts: the journal (LMDB in a data folder,
 * or Kafka with a consumer group sharing the geozones), and above it, the same
 * for either: the HTTP API with its OpenAPI document, the console WebSocket,
 * the inspector with time travel, Prometheus metrics, API keys, TLS, rate
 * limits, traces and the effects log. It installs no signal handler and never
 * touches the process's exit code: that is the command line's business.
 */
export async function createRegionProcess(options: RegionProcessOptions): Promise<RegionProcess> {
  const role = options.role ?? regionRole;
  const wallStart = monotonicNowMs();
  const log = options.logger;
  const env = options.env ?? process.env;
  const clock = new WallClock();
  const metrics = new RegionMetrics();
  const tracer = await createRequestTracer({ endpoint: options.otlpEndpoint, env, serviceName: 'arcnet-region', geozones: options.geozones });
  const fatalListeners: ((error: Error, geozone: string) => void)[] = [];
  const dispatchListeners: ((dispatch: DispatchEffect) => void)[] = [];
  const releasedListeners: ((effects: readonly RegionEffect[], shardId: string) => void)[] = [];
  let stopping = false;
  let ownership: Ownership | undefined;

  const onRefused = refusalReporter(REFUSALS_REPORTED_PER_SEC, () => Date.now(), ({ message, details }) => {
    log.warn(details, message);
    const nowMs = clock.nowMs();
    consoleFeed.publish([{ type: 'system', geozone: REGION_WIDE, severity: 'warn', message, details, timestamp: new Date(nowMs).toISOString() }]);
    ownership?.send([{ type: 'system', atMs: nowMs, severity: 'warn', message, details }], REGION_WIDE);
  });
  const security = regionSecurity(options.security, env, log, onRefused);
  const consoleFeed = createConsoleWiring({
    region: () => region,
    guard: security.guard,
    onRefused,
    onFeedError: (error) => log.error({ err: error }, 'console feed failed on a journal append'),
  });
  const effectsLog = options.effectsLog === undefined ? undefined : new EffectsLog(options.effectsLog);

  // The shards arrive as they are owned: all at start on LMDB, as the group assigns them on Kafka.
  const region: Region = createRegion({
    geozones: [],
    federation: role.shards(options.geozones),
    behaviour: role.behaviour === undefined ? undefined : (shardId) => role.behaviour?.(shardId),
    shardOf: role.shardOf === undefined ? undefined : (input) => role.shardOf?.(input),
    clock,
    scheduler: realScheduler,
    deliverForwards: true,
    onEffects: (effects, geozone) => onEffects(effects, geozone),
    onFailure: (error, geozone) => {
      log.fatal({ err: error, geozone }, 'shard failed');
      for (const listener of fatalListeners) listener(error, geozone);
    },
  });

  const host: OwnershipHost = {
    region,
    clock,
    log,
    role,
    instrument: <S extends RegionStore>(store: S): S => consoleFeed.feedFrom(tracer === undefined ? metrics.timeAppends(store) : tracer.wrapJournalStore(metrics.timeAppends(store))),
    ingress: (input, transport) => {
      if (tracer === undefined) return;
      if (input.type === 'inference' && input.targetGeozone === undefined) tracer.ingress(input.request.requestId, transport, requestAttributes(input.request));
      else if (input.type === 'result') tracer.onResultIngress(input.requestId, transport);
    },
    fatal: (error, geozone) => {
      log.fatal({ err: error, geozone }, 'geozone could not be run');
      for (const listener of fatalListeners) listener(error, geozone);
    },
    training: (kind, raw) => (kind === 'task' ? trainingApi.submit(raw, () => true).then(() => undefined) : trainingApi.update(raw, () => true)),
    note: (message, details) => {
      lastNote = `${message} (${Object.entries(details)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ')})`;
      log.warn(details, message);
    },
  };
  let lastNote = '';

  if (options.journal.kind === 'lmdb') {
    ownership = embeddedOwnership(host, { dataDir: options.journal.dataDir, encryptionKey: options.journal.encryptionKey }).ownership;
  } else {
    ownership = kafkaOwnership(host, {
      brokers: options.journal.brokers,
      ssl: options.journal.ssl,
      groupId: options.journal.groupId,
      clientId: options.journal.clientId ?? `arcnet-region-${process.pid}`,
      nodeCaPem: options.journal.nodeCaPem,
    });
  }
  const owner: Ownership = ownership;
  // Training weights by SHA-256: beside the journal in the data folder, or in the compacted blob topic on Kafka.
  const blobStore = trainingBlobStore(options.journal, log);
  const training = createTrainingWiring({ region, blobs: blobStore.blobs, log, delivery: () => agents.channel });
  const trainingApi = {
    submit: async (body: string, scope: (geozone: string) => boolean) => {
      const view = await training.submit(body, scope);
      return training.job(view.jobId, scope) ?? {};
    },
    update: (body: string, scope: (geozone: string) => boolean, signer?: UpdateSigner) => training.update(body, scope, signer),
    job: (jobId: string, scope: (geozone: string) => boolean) => training.job(jobId, scope),
  };

  function onEffects(effects: readonly RegionEffect[], geozone: string): void {
    attachment?.onEffects(effects, geozone);
    for (const listener of releasedListeners) listener(effects, geozone);
    http.onEffects(effects);
    agents.onEffects(effects);
    training.onEffects(effects);
    tracer?.onEffects(effects);
    consoleFeed.onEffects(effects, geozone);
    effectsLog?.write(effects);
    for (const effect of effects) {
      if (effect.type === 'system' && effect.severity !== 'info') log.info({ geozone, details: effect.details }, effect.message);
      else if (effect.type === 'dispatch') for (const listener of dispatchListeners) listener(effect);
    }
    owner.send(effects, geozone);
  }

  // One fold of per-geozone counters per record serves the inspector's API and its live counts.
  const geozoneStats = new GeozoneStats(region);
  const travel = owner.timeTravel();
  // The replay worker rebuilds the orchestrator's shard with the orchestrator's behaviour.
  const timeTravel = 'unavailable' in travel || role.name !== 'central' ? travel : { ...travel, centralShards: [...role.shards(options.geozones)] };
  const inspectorSource = liveInspectorSource(region, owner.stores, timeTravel, { stats: geozoneStats });
  const http = createRegionApi(region, {
    decisionTimeoutMs: options.decisionTimeoutMs ?? 10_000,
    ready: () => owner.ready() && !stopping,
    notReadyReason: () => {
      if (stopping) return 'stopping';
      const waiting = owner.owned().filter((o) => !o.ready).length;
      return waiting > 0 ? `recovering ${waiting} geozone${waiting === 1 ? '' : 's'}` : lastNote === '' ? 'starting' : lastNote.replace(/ \(.*$/, '');
    },
    ownership: () => ({ journal: owner.mode, geozones: owner.owned() }),
    metrics,
    store: owner.stores,
    training: trainingApi,
  });
  const roleHost: RoleHost = {
    region,
    clock,
    scheduler: realScheduler,
    log,
    stores: owner.stores,
    submit: (input) => region.supervisor.submit(input),
  };
  const roleRoutes = role.routes?.(roleHost);
  role.metrics?.(metrics, roleHost);
  let attachment: RoleAttachment | undefined;
  const agents = createAgentWiring({ region, api: http.api, clock, guard: security.guard, onRefused, trainingUpdate: trainingApi.update });
  // On Kafka, FederatedTask and TrainingUpdate also arrive on their topics (the embedded region reads them from its bus).
  const kafkaTraining =
    options.journal.kind === 'kafka'
      ? startKafkaTrainingEdge({
          brokers: options.journal.brokers,
          ssl: options.journal.ssl,
          clientId: options.journal.clientId ?? `arcnet-region-${process.pid}`,
          deadLetterTopic: 'arc.deadletter',
          refusedBy: options.journal.groupId,
          federation: options.geozones,
          owned: () => owner.owned().map((o) => o.geozone),
          // Scoped to the geozones owned here: a task for another geozone is passed over, not judged here.
          handle: (kind, raw, signer) => {
            const ownedHere = (geozone: string): boolean => owner.owned().some((o) => o.geozone === geozone);
            return kind === 'task' ? trainingApi.submit(raw, ownedHere).then(() => undefined) : trainingApi.update(raw, ownedHere, signer);
          },
          nodeCaPem: options.journal.nodeCaPem,
          log,
        })
      : undefined;
  region.onShardAdded(() => kafkaTraining?.restart());
  metrics.readFrom({
    ...regionMetricsSource(region, () => owner.backlog()),
    console: () => consoleFeed.hub.stats(),
    ownership: () => ({ federation: region.federation, owned: owner.owned(), rebalances: Number(owner.counters()['rebalances'] ?? 0) }),
    agents: () => {
      const stats = agents.channel.stats();
      return { connected: stats.connectedAgents, pendingDispatches: stats.pendingDispatches, deliveries: stats.deliveries, redeliveries: stats.redeliveries };
    },
  });

  const server =
    options.port === undefined
      ? undefined
      : buildHttpApi(tracer === undefined ? http.api : traceRegionApi(http.api, tracer), {
          bodyLimitBytes: limits.maxMessageBytes,
          guard: security.guard,
          https: security.https,
          consolePath: '/telemetry',
          agentPath: '/v1/agent',
          extraRoutes: (routes, guarded) => {
            registerInspector(routes, { source: inspectorSource, routes: guarded, consolePath: '/telemetry' });
            roleRoutes?.(routes, guarded);
          },
        });
  // Per-state actor counts for the inspector, each second, while anyone is connected to the console.
  const liveCounts = new LiveActorCounts(region, geozoneStats);
  let countsTimer: NodeJS.Timeout | undefined;
  const timer = new LiveTimer({ clock, scheduler: realScheduler, everyMs: 20, advance: (now) => region.supervisor.advanceTo(now) });
  let address: string | undefined;
  let stopped: Promise<Record<string, unknown>> | undefined;

  async function start(): Promise<void> {
    if (server !== undefined) {
      consoleFeed.hub.attach(server.server);
      agents.channel.attach(server.server);
      // Served before the journal is reachable: /readyz says not ready, and why, while it waits.
      address = await server.listen({ host: '127.0.0.1', port: options.port });
      log.info(
        { address, console: `${address.replace(/^http/, 'ws')}/telemetry`, agents: `${address.replace(/^http/, 'ws')}/v1/agent`, docs: `${address}/docs`, inspector: `${address}/inspector`, apiKeys: security.keys, tls: security.https !== undefined, traces: tracer !== undefined },
        'HTTP API listening',
      );
    }
    countsTimer = setInterval(() => {
      if (consoleFeed.hub.stats().clients > 0) consoleFeed.publish(liveCounts.tick(Date.now()));
    }, 1_000);
    const recoverStart = monotonicNowMs();
    blobStore.start();
    // The role's own work (the HPC driver) is there before recovery: the effects owed from before a restart reach it.
    attachment = role.attach?.(roleHost);
    await owner.start();
    if (stopping) return;
    timer.start();
    log.info({ mode: owner.mode, takeovers: owner.takeovers(), ms: Math.round(monotonicNowMs() - recoverStart) }, 'started');
  }

  async function shutdown(reason: string): Promise<Record<string, unknown>> {
    stopping = true;
    log.info({ reason }, 'stopping');
    if (countsTimer !== undefined) clearInterval(countsTimer);
    await consoleFeed.hub.close();
    await agents.channel.close();
    await server?.close();
    await inspectorSource.close();
    training.close();
    await kafkaTraining?.stop();
    timer.stop();
    let error: string | undefined;
    try {
      await attachment?.stop();
      await owner.drain();
    } catch (caught) {
      error = caught instanceof Error ? caught.message : String(caught);
    }
    const shards = region.supervisor.all();
    const line: Record<string, unknown> = {
      role: role.name,
      mode: owner.mode,
      geozones: shards.map((shard) => shard.shardId),
      nodes: shards.reduce((sum, shard) => sum + countNodes(shard.actors()), 0),
      ...region.stats,
      recoveredRecords: owner.takeovers().reduce((sum, t) => sum + t.replayed, 0),
      takeovers: owner.takeovers(),
      edge: owner.counters(),
      lastOffsets: Object.fromEntries(shards.map((shard) => [shard.shardId, shard.lastDurableOffset])),
      stateHash: region.supervisor.stateHash(),
      stateHashes: Object.fromEntries(shards.map((shard) => [shard.shardId, shard.stateHash()])),
      wallMs: Math.round(monotonicNowMs() - wallStart),
      stoppedBy: reason,
      ...(error === undefined ? {} : { error }),
    };
    try {
      // The last requests' spans end with their effects above; flush them before the store goes.
      await tracer?.shutdown();
      await owner.close();
      await blobStore.close();
    } finally {
      effectsLog?.close();
    }
    if (error !== undefined) throw Object.assign(new Error(`stopping failed: ${error}`), { line });
    return line;
  }

  return {
    region,
    mode: owner.mode,
    clock,
    get address() {
      return address;
    },
    start,
    stop: (reason) => (stopped ??= shutdown(reason)),
    ready: () => owner.ready() && !stopping,
    owned: () => owner.owned(),
    statusLine: () => {
      const parts = region.supervisor.all().map((shard) => `${shard.shardId} actors=${shard.actorCount} offset=${shard.lastDurableOffset}`);
      const waiting = owner.owned().filter((o) => !o.ready).map((o) => o.geozone);
      const s = region.stats;
      const edge = Object.entries(owner.counters())
        .filter(([, v]) => v !== 0)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      const notReady = owner.ready() ? '' : ` | NOT READY${waiting.length > 0 ? ` (recovering ${waiting.join(',')})` : ''}${lastNote === '' ? '' : `: ${lastNote}`}`;
      const counters = role.status?.() ?? `requests=${s.requests} routed=${s.routed} completed=${s.completed} expired=${s.expired} rejected=${s.rejected} forwarded=${s.forwarded} timeouts=${s.nodeTimeouts}`;
      return `[arcnet ${role.name}${owner.mode === 'kafka' ? ' --kafka' : ''}] ${parts.join(' | ') || 'no geozones owned'} | ${counters} | ${edge}${notReady}`;
    },
    onFatal: (listener) => {
      fatalListeners.push(listener);
    },
    publish: (input) => owner.publish(input),
    onDispatch: (listener) => {
      dispatchListeners.push(listener);
    },
    onTrain: (listener) => training.onTrain(listener),
    trainingUpdate: (body) => training.update(body, () => true),
    onReleased: (listener) => {
      releasedListeners.push(listener);
    },
  };
}

function countNodes(actors: Iterable<[string, { name: string }, unknown]>): number {
  let n = 0;
  for (const [, kind] of actors) if (kind.name === 'node') n++;
  return n;
}
