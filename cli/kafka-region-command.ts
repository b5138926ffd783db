import { createRequestTracer, requestAttributes } from '../adapters/otel/request-tracer.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { createRegion, internalInput, type Region } from '../actors/region.js';
import type { InferenceRequest, RegionEffect, RegionInput } from '../actors/region-io.js';
import { emptyStats, type RegionStats } from '../actors/region-stats.js';
import { effectToWire } from '../adapters/bus/topics.js';
import {
  FORWARD_ACK_HEADER,
  kafkaClient,
  startEffectProducer,
  startGeozoneConsumer,
  TRIED_HEADER,
  type EffectProducer,
  type GeozoneConsumer,
  type GeozoneMessage,
  type OutboundMessage,
} from '../adapters/kafka/geozone-assigner.js';
import { KafkaStore } from '../adapters/kafka/kafka-store.js';
import { OffsetJournal } from '../adapters/kafka/offset-journal.js';
import { ensureTopicsAt, sortedGeozones, topicNames, topicSpecs } from '../adapters/kafka/topics.js';
import { CanonicalHasher } from '../runtime/canonical.js';
import { monotonicNowMs, realScheduler, WallClock } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { JournalStore } from '../runtime/journal.js';
import { LiveTimer } from '../runtime/live-timer.js';
import type { SnapshotStore } from '../runtime/snapshot-store.js';
import { inputToWire } from '../simulations/wire-producer.js';

export interface KafkaRegionOptions {
  /** Bootstrap brokers, host:port. */
  readonly brokers: readonly string[];
  /** TLS (and client certificate) for every Kafka connection, from kafkaTlsOptions; plaintext without it. */
  readonly ssl?: ConnectionOptions | undefined;
  /** Every geozone of the federation; the consumer group decides which of them this process owns. */
  readonly geozones: readonly string[];
  /** Consumer group of the region processes (default arcnet-region at the CLI). */
  readonly groupId: string;
  readonly statusEveryMs: number;
  /** Stop by itself after this long (wall clock); runs until SIGTERM/SIGINT otherwise. */
  readonly runForMs?: number | undefined;
  readonly logger: Logger;
  /** kafkajs client id prefix (default arcnet-region-<pid>). */
  readonly clientId?: string;
  /** OTLP/HTTP traces endpoint; the OTEL_EXPORTER_OTLP_* environment otherwise; no traces without either. */
  readonly otlpEndpoint?: string | undefined;
}

/** One geozone this process owns (or is taking over). */
interface Owned {
  readonly geozone: string;
  /** Settles once the store is open and the shard recovered (or opening failed). */
  ready: Promise<void>;
  isReady: boolean;
  /** Taken away by a rebalance (or the process is stopping it): fed no more input. */
  lost: boolean;
  store?: KafkaStore;
  journal?: OffsetJournal;
  region?: Region;
  /** Next Kafka offset per topic:partition already applied in memory: a redelivery after a rebalance is skipped. */
  readonly applied: Map<string, bigint>;
  /** Effect batches produced in release order. */
  sending: Promise<void>;
  recovered?: { replayed: number; fromSnapshotOffset: number; ms: number };
}

const COMMIT_EVERY_MS = 500;
const RELEASE_IDLE_TIMEOUT_MS = 5_000;

/**
 * `arcnet region --kafka BROKERS --geozones A,B,C [--group G]`: the live region
 * with each geozone's journal and snapshots in Kafka (KafkaStore) and the seed's
 * topics as its edge.
 *
 * Ownership: the processes of one group share the input topics' partitions with
 * the geozone assigner (partition i of every input topic = geozone i), and a
 * process runs the shards of the geozones it is assigned. Taking a geozone opens
 * a KafkaStore for it alone (which fences any older owner), recovers the shard
 * from snapshot plus journal tail, and only then feeds it that partition's
 * messages; losing one stops feeding it, flushes what it can and closes its store.
 *
 * Exactly-once input: offsets are never auto-committed; each shard's journal
 * appends commit the offsets of the inputs whose records they carry, in the same
 * Kafka transaction (OffsetJournal), so the state and the inputs consumed move
 * together. Effects leave after the journal commit (write-ahead), one produce
 * batch per release, keyed by geozone.
 *
 * Forwards: to a geozone owned here, in-process; to another process's geozone, as
 * a request on arc.request.inference keyed by the target with the tried geozones
 * in the `x-arcnet-tried` header; its acknowledgement goes back on the same topic
 * with an `x-arcnet-forward-ack` header.
 */
export async function runKafkaRegion(options: KafkaRegionOptions): Promise<Record<string, unknown>> {
  const wallStart = monotonicNowMs();
  const log = options.logger;
  const brokers = options.brokers.map((b) => b.trim()).filter((b) => b !== '');
  if (brokers.length === 0) throw new ArcError(ErrorCodes.USAGE, 'region --kafka needs at least one broker (host:port)');
  const zones = sortedGeozones(options.geozones);
  const names = topicNames();
  const clientId = options.clientId ?? `arcnet-region-${process.pid}`;

  const ensured = await ensureTopicsAt(brokers, topicSpecs(zones), { ssl: options.ssl });
  if (ensured.created.length > 0) log.info({ created: ensured.created }, 'topics created');

  const clock = new WallClock();
  const owned = new Map<string, Owned>();
  const counters = { produced: 0, produceErrors: 0, dispatched: 0, rerouted: 0, foreign: 0, skippedRedeliveries: 0, localForwards: 0, remoteForwards: 0 };
  const takeovers: { geozone: string; ms: number; replayed: number; fromSnapshotOffset: number }[] = [];
  let stopping = false;

  const tracer = await createRequestTracer({ endpoint: options.otlpEndpoint, env: process.env, serviceName: 'arcnet-region', geozones: zones });
  const kafka = kafkaClient(brokers, clientId, options.ssl);
  const producer: EffectProducer = await startEffectProducer(kafka, zones);

  // ------------------------------------------------------------ effects

  function onEffects(geozone: string, effects: readonly RegionEffect[]): void {
    tracer?.onEffects(effects);
    const out: OutboundMessage[] = [];
    for (const effect of effects) {
      if (effect.type === 'forward' || effect.type === 'forward-ack') {
        const message = internalInput(effect) as { shardId: string; input: RegionInput };
        const local = owned.get(message.shardId);
        if (local !== undefined && !local.lost) {
          counters.localForwards++;
          deliverLocal(local, message.input, 0);
          continue;
        }
        counters.remoteForwards++;
        if (effect.type === 'forward') {
          out.push({ topic: names.inference, key: effect.toGeozone, value: JSON.stringify(requestWire(effect.request)), headers: { [TRIED_HEADER]: JSON.stringify(effect.triedGeozones) } });
        } else {
          out.push({ topic: names.inference, key: effect.toGeozone, value: JSON.stringify({ 'request-id': effect.requestId }), headers: { [FORWARD_ACK_HEADER]: geozone } });
        }
        continue;
      }
      if (effect.type === 'system' && effect.severity !== 'info') log.info({ geozone, details: effect.details }, effect.message);
      const wire = effectToWire(effect);
      if (wire === undefined) continue;
      if (effect.type === 'dispatch') counters.dispatched++;
      out.push({ topic: wire.topic, key: geozone, value: JSON.stringify(wire.message) });
    }
    if (out.length === 0) return;
    const entry = owned.get(geozone);
    const send = (): Promise<void> =>
      producer.send(out).then(
        () => {
          counters.produced += out.length;
        },
        (error: unknown) => {
          // The journal holds what happened; a lost effect batch is reported, never retried out of order.
          counters.produceErrors++;
          log.warn({ err: error, geozone, messages: out.length }, 'effects not produced');
        },
      );
    if (entry === undefined) void send();
    else entry.sending = entry.sending.then(send);
  }

  /** A forward (or its ack) to a geozone of this process, on a later turn, once that shard is ready. */
  function deliverLocal(target: Owned, input: RegionInput, attempt: number): void {
    void target.ready.then(() => {
      realScheduler.soon(() => {
        if (target.lost || !target.isReady || stopping) return; // the sender re-sends unacknowledged forwards
        try {
          target.region?.supervisor.submit(input, clock.nowMs());
        } catch (error) {
          if (error instanceof ArcError && error.code === ErrorCodes.OVERLOADED && attempt < 1_000) {
            realScheduler.after(Math.min(1_000, 10 * 2 ** Math.min(attempt, 6)), () => deliverLocal(target, input, attempt + 1));
            return;
          }
          log.warn({ err: error, geozone: target.geozone }, 'in-process forward refused');
        }
      });
    });
  }

  // ------------------------------------------------------------ ownership

  function onShardFailure(entry: Owned, error: Error): void {
    if (entry.lost || stopping) {
      log.info({ geozone: entry.geozone, err: error.message }, 'shard of a released geozone stopped');
      return;
    }
    log.fatal({ err: error, geozone: entry.geozone }, 'shard failed; stopping');
    process.exitCode = 1;
    void shutdown('shard-failure');
  }

  async function open(entry: Owned): Promise<void> {
    const started = monotonicNowMs();
    const geozone = entry.geozone;
    // Opening fences every older owner of the geozone's journal before reading it.
    const store = await KafkaStore.open({ brokers, ssl: options.ssl, shardIds: [geozone], clientId: `${clientId}-${geozone}` });
    if (entry.lost || stopping) {
      await store.close();
      return;
    }
    const journal = new OffsetJournal(store.journal(geozone), options.groupId);
    const ports: JournalStore & SnapshotStore = {
      journal: () => journal,
      shardIds: () => [geozone],
      save: (snapshot) => store.save(snapshot),
      latest: (shardId, maxOffset) => store.latest(shardId, maxOffset),
      offsets: (shardId) => store.offsets(shardId),
    };
    const region = createRegion({
      geozones: [geozone],
      federation: zones,
      store: tracer === undefined ? ports : tracer.wrapJournalStore(ports),
      clock,
      scheduler: realScheduler,
      // Forwards are delivered here (in-process or over Kafka), not by a one-shard supervisor.
      deliverForwards: false,
      onEffects: (effects) => onEffects(geozone, effects),
      onFailure: (error) => onShardFailure(entry, error),
    });
    entry.store = store;
    entry.journal = journal;
    entry.region = region;
    const [recovered] = region.supervisor.recover(true, { skipEphemeral: true });
    // Logical time never goes back, whatever the clock of the previous owner said.
    clock.raiseFloor(region.supervisor.shard(geozone).nowMs);
    entry.isReady = true;
    const ms = Math.round(monotonicNowMs() - started);
    entry.recovered = { replayed: recovered?.replayed ?? 0, fromSnapshotOffset: recovered?.fromSnapshotOffset ?? -1, ms };
    takeovers.push({ geozone, ...entry.recovered });
    log.info({ geozone, ...entry.recovered }, 'geozone taken');
  }

  function acquire(geozone: string): void {
    const entry: Owned = { geozone, ready: Promise.resolve(), isReady: false, lost: false, applied: new Map(), sending: Promise.resolve() };
    owned.set(geozone, entry);
    entry.ready = open(entry).catch((error: unknown) => {
      if (entry.lost || stopping) return;
      onShardFailure(entry, error instanceof Error ? error : new Error(String(error)));
    });
  }

  /** Stops feeding a geozone, makes what it holds durable if it still may, and closes its store. */
  async function release(entry: Owned): Promise<void> {
    entry.lost = true;
    if (owned.get(entry.geozone) === entry) owned.delete(entry.geozone);
    await entry.ready;
    const { region, journal, store } = entry;
    if (region !== undefined && journal !== undefined) {
      const shard = region.supervisor.shard(entry.geozone);
      try {
        await Promise.race([region.supervisor.whenIdle(), sleep(RELEASE_IDLE_TIMEOUT_MS)]);
        await journal.commitDurable(shard.lastDurableOffset);
      } catch (error) {
        // Fenced by the new owner already: it reads only what was committed, so nothing is lost or doubled.
        log.info({ geozone: entry.geozone, err: (error as Error).message }, 'released geozone not flushed');
      }
    }
    await entry.sending;
    await store?.close().catch(() => undefined);
    log.info({ geozone: entry.geozone }, 'geozone released');
  }

  function onAssigned(geozones: readonly string[]): void {
    if (stopping) return;
    const next = new Set(geozones);
    for (const entry of [...owned.values()]) if (!next.has(entry.geozone)) void release(entry);
    for (const geozone of next) if (!owned.has(geozone)) acquire(geozone);
    log.info({ owned: [...next].sort() }, 'assignment');
  }

  // ------------------------------------------------------------ input

  /** The geozone an input goes to: its own partition's, another's (a wrong key), or none (foreign: not of this federation). */
  function routeOf(input: RegionInput, partitionGeozone: string): string | undefined {
    switch (input.type) {
      case 'telemetry':
        return zones.includes(input.report.geozone) ? input.report.geozone : undefined;
      case 'inference':
        if (input.targetGeozone !== undefined) {
          // A forward (x-arcnet-tried): ours only if every geozone it names is of this federation.
          const ours = zones.includes(input.request.requesterGeozone) && input.triedGeozones.every((g) => zones.includes(g));
          return ours ? partitionGeozone : undefined;
        }
        // A requester outside the federation is not ours: another federation sharing the cluster
        // (a producer keying by geozone with geozonePartitioner cannot even send one).
        return zones.includes(input.request.requesterGeozone) ? input.request.requesterGeozone : undefined;
      default:
        // Results carry no geozone: they go to the shard whose partition they were keyed to.
        return partitionGeozone;
    }
  }

  async function waitReady(entry: Owned, heartbeat: () => Promise<void>): Promise<void> {
    while (!entry.isReady && !entry.lost && !stopping) {
      const done = await Promise.race([entry.ready.then(() => true), sleep(1_000, false)]);
      if (done) return;
      await heartbeat();
    }
  }

  let inFlight: Promise<void> = Promise.resolve();

  async function onMessage(message: GeozoneMessage): Promise<void> {
    const entry = owned.get(message.geozone);
    if (entry === undefined || entry.lost || stopping) return;
    await waitReady(entry, message.heartbeat);
    const { region, journal } = entry;
    if (!entry.isReady || entry.lost || stopping || region === undefined || journal === undefined) return;
    const key = `${message.topic}:${message.partition}`;
    const offset = BigInt(message.offset);
    const applied = entry.applied.get(key);
    if (applied !== undefined && offset < applied) {
      counters.skippedRedeliveries++;
      return;
    }
    const input = message.input;
    if (input !== undefined) {
      const target = routeOf(input, message.geozone);
      if (target === undefined) {
        counters.foreign++;
      } else if (target !== message.geozone) {
        // Keyed to the wrong geozone: send it where its payload says (at least once; the shards de-duplicate requests).
        if (input.type === 'inference') await producer.send([{ topic: message.topic, key: target, value: JSON.stringify(requestWire(input.request)) }]);
        else await rerouteTelemetry(input, message.topic, target);
        counters.rerouted++;
      } else {
        if (input.type === 'inference' && input.targetGeozone === undefined) tracer?.ingress(input.request.requestId, 'kafka', requestAttributes(input.request));
        else if (input.type === 'result') tracer?.onResultIngress(input.requestId, 'kafka');
        if (!(await submit(entry, input))) return; // not applied: its offset is not committed
      }
    }
    entry.applied.set(key, offset + 1n);
    journal.consumed(message.topic, message.partition, message.offset, region.supervisor.shard(entry.geozone).lastOffset);
  }

  async function rerouteTelemetry(input: RegionInput, topic: string, target: string): Promise<void> {
    const wire = input.type === 'telemetry' ? inputToWire(input) : undefined;
    if (wire === undefined) return;
    await producer.send([{ topic, key: target, value: JSON.stringify(wire.message) }]);
  }

  /** Applies an input to its shard; waits while the shard is overloaded. False if it was not applied. */
  async function submit(entry: Owned, input: RegionInput): Promise<boolean> {
    const shard = entry.region?.supervisor.shard(entry.geozone);
    if (shard === undefined) return false;
    for (;;) {
      if (entry.lost || stopping) return false;
      try {
        shard.process(input, clock.nowMs());
        return true;
      } catch (error) {
        if (error instanceof ArcError && error.code === ErrorCodes.OVERLOADED) {
          await shard.whenIdle().catch(() => undefined);
          continue;
        }
        if (shard.failed === undefined) log.warn({ err: error, geozone: entry.geozone }, 'input refused');
        return false;
      }
    }
  }

  const consumer: GeozoneConsumer = await startGeozoneConsumer({
    kafka,
    groupId: options.groupId,
    geozones: zones,
    topics: { telemetry: names.telemetry, inference: names.inference, result: names.result },
    deadLetterTopic: names.deadLetter,
    systemTopic: names.system,
    onAssigned,
    onMessage: (message) => {
      const run = onMessage(message);
      inFlight = run.catch(() => undefined);
      return run;
    },
  }).catch(async (error: unknown) => {
    await producer.close().catch(() => undefined);
    throw error;
  });

  // ------------------------------------------------------------ time, commits, status

  const ready = (): Owned[] => [...owned.values()].filter((e) => e.isReady && !e.lost).sort((a, b) => a.geozone.localeCompare(b.geozone));

  const timer = new LiveTimer({
    clock,
    scheduler: realScheduler,
    everyMs: 20,
    advance: (now) => {
      for (const entry of ready()) entry.region?.supervisor.advanceTo(now);
    },
  });
  timer.start();

  // Inputs that produced no record are committed with offsets alone once the shard is durable.
  const commitTimer = setInterval(() => {
    for (const entry of ready()) {
      const shard = entry.region?.supervisor.shard(entry.geozone);
      if (shard === undefined || entry.journal === undefined || entry.journal.uncommitted === 0 || shard.failed !== undefined) continue;
      entry.journal.commitDurable(shard.lastDurableOffset).catch((error: unknown) => log.warn({ err: error, geozone: entry.geozone }, 'offset commit failed'));
    }
  }, COMMIT_EVERY_MS);

  const totals = (): RegionStats => {
    const sum = emptyStats();
    for (const entry of ready()) {
      const stats = entry.region?.stats;
      if (stats === undefined) continue;
      for (const key of Object.keys(sum) as (keyof RegionStats)[]) sum[key] += stats[key];
    }
    return sum;
  };

  const status = (): void => {
    const parts = ready().map((e) => {
      const shard = e.region?.supervisor.shard(e.geozone);
      return `${e.geozone} actors=${shard?.actorCount ?? 0} offset=${shard?.lastDurableOffset ?? -1}`;
    });
    const s = totals();
    process.stderr.write(
      `[arcnet region --kafka] ${parts.join(' | ') || 'no geozones'} | requests=${s.requests} routed=${s.routed} completed=${s.completed} expired=${s.expired} rejected=${s.rejected} forwarded=${s.forwarded} accepted=${consumer.counters.accepted} dead=${consumer.counters.deadLettered} produced=${counters.produced}\n`,
    );
  };
  const statusTimer = setInterval(status, options.statusEveryMs);

  let resolveDone: (value: Record<string, unknown>) => void = () => undefined;
  let rejectDone: (error: unknown) => void = () => undefined;
  const done = new Promise<Record<string, unknown>>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });

  async function shutdown(reason: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'stopping');
    clearInterval(statusTimer);
    clearInterval(commitTimer);
    timer.stop();
    try {
      consumer.pause();
      await inFlight;
      const entries = [...owned.values()];
      await Promise.all(entries.map((e) => e.ready));
      const live = ready();
      let error: string | undefined;
      try {
        // Everything processed becomes durable with its input offsets, then a snapshot shortens the next recovery.
        for (const entry of live) await entry.region?.supervisor.whenIdle();
        for (const entry of live) await entry.journal?.commitDurable(entry.region?.supervisor.shard(entry.geozone).lastDurableOffset ?? -1);
        for (const entry of live) await entry.region?.supervisor.snapshotAll();
      } catch (caught) {
        error = (caught as Error).message;
        process.exitCode = 1;
      }
      await Promise.all(live.map((e) => e.sending));
      const hasher = new CanonicalHasher();
      for (const entry of live) hasher.add({ shard: entry.geozone, hash: entry.region?.supervisor.shard(entry.geozone).stateHash() });
      const line: Record<string, unknown> = {
        geozones: live.map((e) => e.geozone),
        nodes: live.reduce((sum, e) => sum + countNodes(e.region?.supervisor.shard(e.geozone).actors() ?? []), 0),
        ...totals(),
        recoveredRecords: live.reduce((sum, e) => sum + (e.recovered?.replayed ?? 0), 0),
        takeovers,
        edge: { ...consumer.counters, ...counters },
        lastOffsets: Object.fromEntries(live.map((e) => [e.geozone, e.region?.supervisor.shard(e.geozone).lastDurableOffset ?? -1])),
        stateHash: hasher.hex(),
        stateHashes: Object.fromEntries(live.map((e) => [e.geozone, e.region?.supervisor.shard(e.geozone).stateHash()])),
        wallMs: Math.round(monotonicNowMs() - wallStart),
        stoppedBy: reason,
        ...(error === undefined ? {} : { error }),
      };
      // Leave the group only now: another member taking these geozones over fences this process.
      await consumer.stop();
      await Promise.all(entries.map((e) => (e.store === undefined ? Promise.resolve() : e.store.close().catch(() => undefined))));
      await producer.close().catch(() => undefined);
      await tracer?.shutdown();
      resolveDone(line);
    } catch (error) {
      rejectDone(error);
    }
  }

  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  if (options.runForMs !== undefined) realScheduler.after(options.runForMs, () => void shutdown('run-for elapsed'));
  status();
  return done;
}

function requestWire(request: InferenceRequest): Record<string, unknown> {
  return {
    'request-id': request.requestId,
    'model-id': request.modelId,
    'context-window': request.contextWindow,
    priority: request.priority,
    'requester-geozone': request.requesterGeozone,
  };
}

function countNodes(actors: Iterable<[string, { name: string }, unknown]>): number {
  let n = 0;
  for (const [, kind] of actors) if (kind.name === 'node') n++;
  return n;
}
