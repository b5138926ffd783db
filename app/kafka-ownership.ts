import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionOptions } from 'node:tls';
import { internalInput } from '../actors/region.js';
import type { InferenceRequest, RegionEffect, RegionInput } from '../actors/region-io.js';
import { inputToWire } from '../adapters/bus/input-wire.js';
import { effectToWire } from '../adapters/bus/topics.js';
import { startEffectProducer, type EffectProducer, type OutboundMessage } from '../adapters/kafka/effect-producer.js';
import { KafkaEdgeStatus } from '../adapters/kafka/edge-status.js';
import { startGeozoneConsumer, type GeozoneConsumer, type GeozoneMessage } from '../adapters/kafka/geozone-consumer.js';
import { FORWARD_ACK_HEADER, TRIED_HEADER, type RawInputMessage } from '../adapters/kafka/input-decoder.js';
import { kafkaClient } from '../adapters/kafka/kafka-client.js';
import { describeKafkaError, retry } from '../adapters/kafka/retry.js';
import { createInputIdentityVerifier } from '../adapters/security/node-identity.js';
import { KafkaStore, type JournalWriteStatus } from '../adapters/kafka/kafka-store.js';
import { OffsetJournal } from '../adapters/kafka/offset-journal.js';
import { ensureTopicsAt, sortedGeozones, topicNames, topicSpecs } from '../adapters/kafka/topics.js';
import { monotonicNowMs } from '../runtime/clock.js';
import { ArcError, ErrorCodes } from '../runtime/errors.js';
import type { Shard } from '../runtime/shard.js';
import type { InputTopic } from './bus-edge.js';
import type { Ownership, OwnershipHost, RegionStore, Takeover } from './ownership.js';

export interface KafkaOwnershipOptions {
  /** Bootstrap brokers, host:port. */
  readonly brokers: readonly string[];
  /** TLS (and client certificate) for every Kafka connection; plaintext without it. */
  readonly ssl?: ConnectionOptions | undefined;
  /** Consumer group of the region processes: they share the geozones. */
  readonly groupId: string;
  /** kafkajs client id prefix. */
  readonly clientId: string;
  /**
   * The node CA (PEM): telemetry and results on the shared input topics must then carry a node's
   * signature (adapters/security/node-identity.ts) from a certificate of the geozone they claim.
   */
  readonly nodeCaPem?: string | undefined;
}

/** One geozone this process owns (or is taking over). */
interface Owned {
  readonly geozone: string;
  /** Settles once the store is open and the shard recovered (or opening gave up). */
  ready: Promise<void>;
  isReady: boolean;
  /** Taken away by a rebalance (or the process is stopping): fed no more input. */
  lost: boolean;
  store?: KafkaStore;
  journal?: OffsetJournal;
  shard?: Shard<RegionInput, RegionEffect>;
  /** Next Kafka offset per topic:partition already applied in memory: a redelivery after a rebalance is skipped. */
  readonly applied: Map<string, bigint>;
  /** Effect batches produced in release order. */
  sending: Promise<void>;
}

const COMMIT_EVERY_MS = 500;
const RELEASE_IDLE_TIMEOUT_MS = 5_000;
/** At shutdown, effects still waiting for a broker get this long before the producer is closed under them. */
const EFFECTS_GRACE_MS = 10_000;

/**
 * Ownership by a Kafka consumer group: each geozone's journal and snapshots in
 * Kafka (KafkaStore), the seed's topics as the edge.
 *
 * The processes of one group share the input topics' partitions with the
 * geozone assigner (partition i of every input topic = geozone i). Taking a
 * geozone opens a KafkaStore for it alone (which fences any older owner),
 * recovers the shard from snapshot plus journal tail, and only then feeds it
 * that partition's messages; losing one stops feeding it, flushes what it can
 * and closes its store.
 *
 * Exactly-once input: offsets are never auto-committed; each shard's journal
 * appends commit the offsets of the inputs whose records they carry, in the same
 * Kafka transaction (OffsetJournal). Effects leave after the journal commit
 * (write-ahead), one produce batch per release, keyed by geozone.
 *
 * Forwards to a geozone owned here are delivered in-process by the supervisor;
 * to another process's geozone they go as a request on arc.request.inference
 * keyed by the target with the tried geozones in the `x-arcnet-tried` header,
 * and their acknowledgement comes back with an `x-arcnet-forward-ack` header.
 */
export function kafkaOwnership(host: OwnershipHost, options: KafkaOwnershipOptions): Ownership {
  const { region, log, clock } = host;
  const brokers = options.brokers.map((b) => b.trim()).filter((b) => b !== '');
  if (brokers.length === 0) throw new ArcError(ErrorCodes.USAGE, 'region --kafka needs at least one broker (host:port)');
  const zones = sortedGeozones(region.federation);
  const names = topicNames();
  const owned = new Map<string, Owned>();
  const counters = { produced: 0, produceErrors: 0, dispatched: 0, rerouted: 0, foreign: 0, skippedRedeliveries: 0, remoteForwards: 0, startRetries: 0 };
  const takeovers: Takeover[] = [];
  const stopSignal = new AbortController();
  let stopping = false;
  let producer: EffectProducer | undefined;
  let consumer: GeozoneConsumer | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  let commitTimer: NodeJS.Timeout | undefined;
  const kafka = kafkaClient(brokers, options.clientId, options.ssl);
  const edge = new KafkaEdgeStatus();

  // ------------------------------------------------------------ stores of the owned geozones

  const storeOf = (geozone: string): RegionStore => {
    const entry = owned.get(geozone);
    if (entry?.store === undefined || entry.journal === undefined) throw new ArcError(ErrorCodes.UNKNOWN_SHARD, `this process owns no shard '${geozone}'`);
    const { store, journal } = entry;
    return { journal: () => journal, shardIds: () => [geozone], save: (s) => store.save(s), latest: (id, max) => store.latest(id, max), offsets: (id) => store.offsets(id) };
  };
  const stores: RegionStore = {
    journal: (geozone) => storeOf(geozone).journal(geozone),
    shardIds: () => [...owned.values()].filter((e) => e.isReady && !e.lost).map((e) => e.geozone),
    save: (snapshot) => storeOf(snapshot.shardId).save(snapshot),
    latest: (geozone, maxOffset) => (owned.get(geozone)?.store === undefined ? undefined : storeOf(geozone).latest(geozone, maxOffset)),
    offsets: (geozone) => (owned.get(geozone)?.store === undefined ? [] : storeOf(geozone).offsets(geozone)),
  };

  // ------------------------------------------------------------ effects

  function send(effects: readonly RegionEffect[], geozone: string): void {
    const out: OutboundMessage[] = [];
    for (const effect of effects) {
      if (effect.type === 'forward' || effect.type === 'forward-ack') {
        // The supervisor delivered those to geozones owned here; these are for other processes.
        const message = internalInput(effect);
        if (message === undefined) continue;
        counters.remoteForwards++;
        if (effect.type === 'forward') {
          out.push({ topic: names.inference, key: effect.toGeozone, value: JSON.stringify(requestWire(effect.request)), headers: { [TRIED_HEADER]: JSON.stringify(effect.triedGeozones) } });
        } else {
          out.push({ topic: names.inference, key: effect.toGeozone, value: JSON.stringify({ 'request-id': effect.requestId }), headers: { [FORWARD_ACK_HEADER]: geozone } });
        }
        continue;
      }
      const wire = effectToWire(effect);
      if (wire === undefined) continue;
      if (effect.type === 'dispatch') counters.dispatched++;
      // A federated task is keyed by the geozone whose region runs it (arc.scheduler.training has one partition).
      // Region-wide events (refusals) belong to no geozone: they go to the first geozone's partition.
      const key = effect.type === 'federated-task' ? effect.task.geozone : zones.includes(geozone) ? geozone : (zones[0] as string);
      out.push({ topic: wire.topic, key, value: JSON.stringify(wire.message) });
    }
    if (out.length === 0) return;
    const entry = owned.get(geozone);
    const produce = (): Promise<void> => {
      const target = producer;
      if (target === undefined) return Promise.resolve();
      return target.send(out).then(
        () => {
          counters.produced += out.length;
        },
        (error: unknown) => {
          // The journal holds what happened; a lost effect batch is reported, never retried out of order.
          counters.produceErrors++;
          log.warn({ err: error, geozone, messages: out.length }, 'effects not produced');
        },
      );
    };
    if (entry === undefined) void produce();
    else entry.sending = entry.sending.then(produce);
  }

  // ------------------------------------------------------------ ownership

  function failed(entry: Owned, error: Error): void {
    if (entry.lost || stopping) {
      log.info({ geozone: entry.geozone, err: error.message }, 'shard of a released geozone stopped');
      return;
    }
    host.fatal(error, entry.geozone);
  }

  async function open(entry: Owned): Promise<void> {
    const started = monotonicNowMs();
    const geozone = entry.geozone;
    // Opening fences every older owner of the geozone's journal before reading it.
    const store = await retry(
      () => {
        if (entry.lost || stopping) throw new ArcError(ErrorCodes.SHARD_STOPPED, `geozone ${geozone} was given up while opening its journal`);
        return KafkaStore.open({ brokers, ssl: options.ssl, shardIds: [geozone], clientId: `${options.clientId}-${geozone}`, onWriteStatus: (shardId, status) => onWriteStatus(shardId, status) });
      },
      {
        signal: stopSignal.signal,
        // A tampered journal or a stopped takeover is final; a broker away while taking over is waited out.
        isRetriable: (error) => !(error instanceof ArcError),
        onRetry: (attempt, error, delayMs) => {
          counters.startRetries++;
          host.note('opening the journal failed; retrying', { geozone, attempt, delayMs, error: describeKafkaError(error) });
        },
      },
    );
    if (entry.lost || stopping) {
      await store.close();
      return;
    }
    entry.store = store;
    entry.journal = new OffsetJournal(store.journal(geozone), options.groupId);
    const report = region.addShard(geozone, host.instrument(storeOf(geozone)), { useSnapshots: true, skipEphemeral: true });
    entry.shard = report.shard;
    // Logical time never goes back, whatever the clock of the previous owner said.
    clock.raiseFloor(report.shard.nowMs);
    entry.isReady = true;
    const takeover = { geozone, ms: Math.round(monotonicNowMs() - started), replayed: report.replayed, fromSnapshotOffset: report.fromSnapshotOffset };
    takeovers.push(takeover);
    log.info(takeover, 'geozone taken');
  }

  /** Journal writes that are retrying (the broker went away): the region is not ready until they go through. */
  const writesRetrying = new Set<string>();
  function onWriteStatus(geozone: string, status: JournalWriteStatus): void {
    if (status.retrying && !writesRetrying.has(geozone)) {
      writesRetrying.add(geozone);
      host.note('journal writes failing; retrying', { geozone, attempts: status.attempts, error: status.lastError ?? '' });
    } else if (!status.retrying && writesRetrying.delete(geozone)) {
      log.info({ geozone, attempts: status.attempts }, 'journal writes go through again');
    }
  }

  function acquire(geozone: string): void {
    const entry: Owned = { geozone, ready: Promise.resolve(), isReady: false, lost: false, applied: new Map(), sending: Promise.resolve() };
    owned.set(geozone, entry);
    entry.ready = open(entry).catch((error: unknown) => {
      if (entry.lost || stopping) return;
      failed(entry, error instanceof Error ? error : new Error(String(error)));
    });
  }

  /** Stops feeding a geozone, makes what it holds durable if it still may, and closes its store. */
  async function release(entry: Owned): Promise<void> {
    entry.lost = true;
    writesRetrying.delete(entry.geozone);
    if (owned.get(entry.geozone) === entry) owned.delete(entry.geozone);
    await entry.ready;
    const { shard, journal, store } = entry;
    if (shard !== undefined) region.removeShard(entry.geozone);
    if (shard !== undefined && journal !== undefined) {
      try {
        await Promise.race([shard.whenIdle(), sleep(RELEASE_IDLE_TIMEOUT_MS)]);
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
        // A requester outside the federation is not ours: another federation sharing the cluster.
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

  /**
   * One input message of a geozone owned here. Handled at once (no promise) in the common
   * case: the shard ready, the message keyed right, the shard taking input. It waits (a
   * promise) for a shard still recovering, a wrong key to re-send, or an overloaded shard.
   */
  function onMessage(message: GeozoneMessage): Promise<void> | undefined {
    const entry = owned.get(message.geozone);
    if (entry === undefined || entry.lost || stopping) return undefined;
    if (!entry.isReady) return waitReady(entry, message.heartbeat).then(() => (entry.isReady ? onMessage(message) : undefined));
    const { shard, journal } = entry;
    if (shard === undefined || journal === undefined) return undefined;
    const key = `${message.topic}:${message.partition}`;
    const offset = BigInt(message.offset);
    const applied = entry.applied.get(key);
    if (applied !== undefined && offset < applied) {
      counters.skippedRedeliveries++;
      return undefined;
    }
    const consumed = (): void => {
      entry.applied.set(key, offset + 1n);
      journal.consumed(message.topic, message.partition, message.offset, shard.lastOffset);
    };
    const input = message.input;
    if (input === undefined) {
      consumed();
      return undefined;
    }
    const target = routeOf(input, message.geozone);
    if (target === undefined) {
      counters.foreign++;
      consumed();
      return undefined;
    }
    if (target !== message.geozone) {
      // Keyed to the wrong geozone: send it where its payload says (at least once; the shards de-duplicate requests).
      counters.rerouted++;
      const wire = inputToWire(input);
      if (wire === undefined || producer === undefined) {
        consumed();
        return undefined;
      }
      return producer.send([{ topic: message.topic, key: target, value: JSON.stringify(wire.message) }]).then(consumed);
    }
    host.ingress(input, 'kafka');
    const applies = submit(entry, shard, input);
    if (applies === true) consumed();
    else if (applies !== false) return applies.then((ok) => (ok ? consumed() : undefined)); // not applied: its offset is not committed
    return undefined;
  }

  /** Applies an input to its shard: true or false at once, or a promise while the shard is overloaded. False if it was not applied. */
  function submit(entry: Owned, shard: Shard<RegionInput, RegionEffect>, input: RegionInput): boolean | Promise<boolean> {
    if (entry.lost || stopping) return false;
    try {
      shard.process(input, clock.nowMs());
      return true;
    } catch (error) {
      if (error instanceof ArcError && error.code === ErrorCodes.OVERLOADED) {
        return shard.whenIdle().then(
          () => submit(entry, shard, input),
          () => submit(entry, shard, input),
        );
      }
      if (shard.failed === undefined) log.warn({ err: error, geozone: entry.geozone }, 'input refused');
      return false;
    }
  }

  const live = (): Owned[] => [...owned.values()].filter((e) => e.isReady && !e.lost).sort((a, b) => (a.geozone < b.geozone ? -1 : 1));

  return {
    mode: 'kafka',
    stores,
    async start() {
      const onRetry = (what: string) => (attempt: number, error: unknown, delayMs: number) => {
        counters.startRetries++;
        host.note(`Kafka not reachable yet (${what}); retrying`, { attempt, delayMs, error: describeKafkaError(error) });
      };
      const retrying = { signal: stopSignal.signal, onRetry: onRetry('topics') };
      const specs = topicSpecs(zones);
      const ensured = await ensureTopicsAt(brokers, host.role.kafkaTopics?.(specs) ?? specs, { ssl: options.ssl, retry: retrying });
      if (ensured.created.length > 0) log.info({ created: ensured.created }, 'topics created');
      if (ensured.grown.length > 0) log.warn({ grown: ensured.grown, geozones: zones.length }, 'topics keyed by geozone had fewer partitions than geozones: partitions added');
      producer = await startEffectProducer(kafka, zones, { status: edge, signal: stopSignal.signal, onRetry: onRetry('effects') });
      const verify = options.nodeCaPem === undefined ? undefined : createInputIdentityVerifier({ caPem: options.nodeCaPem });
      consumer = await startGeozoneConsumer({
        kafka,
        groupId: options.groupId,
        geozones: zones,
        // The region's three input topics, or another role's own (decoded by its edge, dead-lettered alike).
        ...(host.role.name === 'region'
          ? { topics: { telemetry: names.telemetry, inference: names.inference, result: names.result } }
          : { inputs: host.role.inputs.map((input) => ({ topic: input.topic, kind: input.kind, decode: (message: RawInputMessage) => decodeRoleInput(input, message) })) }),
        wholeTopics: host.role.wholeTopics === true,
        deadLetterTopic: names.deadLetter,
        systemTopic: names.system,
        status: edge,
        signal: stopSignal.signal,
        onRetry: onRetry('consumer'),
        onCrash: (error, restarting) => {
          if (restarting) host.note('the Kafka consumer crashed; restarting', { error: describeKafkaError(error) });
          else host.fatal(error instanceof Error ? error : new Error(describeKafkaError(error)), '*');
        },
        ...(verify === undefined
          ? {}
          : {
              // Telemetry and results must come from a node of the geozone they claim; requests come from clients
              // and forwards from regions, which Kafka's ACLs already tell apart from nodes.
              verifyInput: (input: RegionInput, raw: { topic: string; key: Buffer | null; value: Buffer | null; headers: Parameters<typeof verify>[0] }, partitionGeozone: string) => {
                if (input.type !== 'telemetry' && input.type !== 'result') return;
                const claimed = input.type === 'telemetry' ? input.report.geozone : partitionGeozone;
                const verdict = verify(raw.headers, raw.topic, raw.key, raw.value, claimed, input.nodeId);
                if (!verdict.ok) throw new ArcError(ErrorCodes.PRODUCER_IDENTITY, verdict.message, { reason: verdict.reason });
              },
            }),
        onAssigned,
        onMessage: (message) => {
          const run = onMessage(message);
          if (run !== undefined) inFlight = run.catch(() => undefined);
          return run;
        },
      });
      // Inputs that produced no record are committed with offsets alone once the shard is durable.
      commitTimer = setInterval(() => {
        for (const entry of live()) {
          const { shard, journal } = entry;
          if (shard === undefined || journal === undefined || journal.uncommitted === 0 || shard.failed !== undefined) continue;
          journal.commitDurable(shard.lastDurableOffset).catch((error: unknown) => log.warn({ err: error, geozone: entry.geozone }, 'offset commit failed'));
        }
      }, COMMIT_EVERY_MS);
    },
    ready: () => consumer !== undefined && !stopping && edge.current.connected && writesRetrying.size === 0 && [...owned.values()].every((e) => e.isReady),
    owned: () => [...owned.values()].map((e) => ({ geozone: e.geozone, ready: e.isReady })).sort((a, b) => (a.geozone < b.geozone ? -1 : 1)),
    // Replayed in a worker that reads the journals from Kafka itself (read-only: it fences no one).
    timeTravel: () => ({ kafka: { brokers, ssl: options.ssl } }),
    send,
    publish(input) {
      if (stopping || producer === undefined) return;
      const wire = inputToWire(input);
      if (wire === undefined) {
        region.supervisor.submit(input);
        return;
      }
      const key = input.type === 'telemetry' ? input.report.geozone : input.type === 'inference' ? input.request.requesterGeozone : region.shardOf(input);
      producer.send([{ topic: wire.topic, key, value: JSON.stringify(wire.message) }]).catch((error: unknown) => log.warn({ err: error, topic: wire.topic }, 'input not produced'));
    },
    backlog: () => 0,
    takeovers: () => takeovers,
    counters: () => ({ ...(consumer?.counters ?? { accepted: 0, deadLettered: 0, rebalances: 0 }), ...counters }),
    async drain() {
      stopping = true;
      stopSignal.abort();
      if (commitTimer !== undefined) clearInterval(commitTimer);
      consumer?.pause();
      await inFlight;
      await Promise.all([...owned.values()].map((e) => e.ready));
      const entries = live();
      // Everything processed becomes durable with its input offsets, then a snapshot shortens the next recovery.
      for (const entry of entries) await entry.shard?.whenIdle();
      for (const entry of entries) await entry.journal?.commitDurable(entry.shard?.lastDurableOffset ?? -1);
      for (const entry of entries) await entry.shard?.snapshotNow();
      // Effects wait for a broker a bounded time (they are in the journal either way).
      await Promise.race([Promise.all(entries.map((e) => e.sending)), sleep(EFFECTS_GRACE_MS)]);
    },
    async close() {
      stopping = true;
      stopSignal.abort();
      if (commitTimer !== undefined) clearInterval(commitTimer);
      // Leave the group only now: another member taking these geozones over fences this process.
      await consumer?.stop();
      await Promise.all([...owned.values()].map((e) => (e.store === undefined ? Promise.resolve() : e.store.close().catch(() => undefined))));
      await producer?.close().catch(() => undefined);
    },
  };
}

/** A message of another role's input topic through that role's edge decoder (a tombstone is refused like bad JSON). */
function decodeRoleInput(input: InputTopic, message: RawInputMessage): RegionInput {
  if (message.value === null) throw new ArcError(ErrorCodes.VALIDATION, `${input.kind} message has no value (a tombstone)`);
  return input.decode(message.value);
}

/** A forwarded request as the seed's InferenceRequest v1 (the same wire message a client sends, geohash included). */
function requestWire(request: InferenceRequest): Record<string, unknown> {
  return inputToWire({ type: 'inference', request, triedGeozones: [] })?.message ?? {};
}
