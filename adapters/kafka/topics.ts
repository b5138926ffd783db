import { setTimeout as sleep } from 'node:timers/promises';
import type { ConnectionOptions } from 'node:tls';
import kafkajs, { Kafka, logLevel, type Admin, type ICustomPartitioner, type PartitionerArgs } from 'kafkajs';
import { topics } from '../bus/topics.js';
import { ArcError, ErrorCodes } from '../../runtime/errors.js';
import { describeKafkaError, isRetriableKafkaError, retry, TOPICS_NOT_READY, type RetryOptions } from './retry.js';

// kafkajs is CommonJS and Node's named-export detection misses some of its enums: take them off the default export.
const { ConfigResourceTypes } = kafkajs;

/**
 * The Kafka topics of ArcNet: the seed's topic table (docs: arcnet-architecture.md,
 * "Kafka Topics") with its retention, one `arc.command.dispatch.{geozone}` per geozone,
 * and the topics the runtime itself needs (dead letters, the outputs effectToWire
 * writes, one journal per shard, compacted snapshots).
 *
 * Partitioning by geozone: the topics keyed by geozone get one partition per
 * geozone, and the geozone's partition is its index in the sorted geozone list
 * (see geozonePartition and geozonePartitioner). Consumers must still route by the
 * payload, never by the key or the partition.
 */

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** How messages on a topic are keyed, which decides its partition count. */
export type TopicKeying =
  /** Key = geozone; one partition per geozone (geozonePartitioner). */
  | 'geozone'
  /** Key = shard id; one partition (journal, snapshots). */
  | 'shard'
  /** Not partitioned by ArcNet: one partition. */
  | 'none';

export interface TopicSpec {
  readonly name: string;
  readonly numPartitions: number;
  /** retention.ms and cleanup.policy, as Kafka topic configs. */
  readonly configEntries: readonly { readonly name: string; readonly value: string }[];
  readonly keying: TopicKeying;
  /** The geozone a per-geozone topic (dispatch, journal) belongs to. */
  readonly geozone?: string;
}

export interface TopicSpecOptions {
  /** Put in front of every name (tests isolate their topics this way). */
  readonly prefix?: string;
}

const GEOZONE_PATTERN = /^[A-Z0-9_-]{1,32}$/;

/** The geozones, validated, deduplicated and sorted: the order that numbers their partitions. */
export function sortedGeozones(geozones: readonly string[]): string[] {
  for (const g of geozones) {
    if (!GEOZONE_PATTERN.test(g)) throw new ArcError(ErrorCodes.USAGE, `bad geozone '${g}': use upper-case letters, digits, _ or - (at most 32)`);
  }
  const list = [...new Set(geozones)].sort();
  if (list.length === 0) throw new ArcError(ErrorCodes.USAGE, 'at least one geozone is needed');
  return list;
}

/** Names of every ArcNet topic, with an optional prefix. */
export function topicNames(options: TopicSpecOptions = {}) {
  const p = options.prefix ?? '';
  return {
    telemetry: p + topics.telemetry,
    inference: p + topics.inference,
    result: p + topics.result,
    dispatch: (geozone: string) => p + topics.dispatch(geozone),
    jobSubmission: `${p}arc.job.submission`,
    bridgePending: `${p}arc.bridge.pending`,
    bridgeIngress: `${p}ornl.bridge.ingress`,
    schedulerTraining: `${p}arc.scheduler.training`,
    /** TrainingUpdate v1 in (one partition; the region's training edge creates it). */
    resultTraining: `${p}arc.result.training`,
    /** A Kafka region's weights by SHA-256 (compacted; kafka-blob-store.ts creates it). */
    blobs: `${p}arc.blobs`,
    summary: p + topics.summary,
    system: p + topics.system,
    decision: p + topics.decision,
    ended: p + topics.ended,
    deadLetter: p + topics.deadLetter,
    journal: (geozone: string) => `${p}arc.journal.${geozone}`,
    snapshots: `${p}arc.snapshots`,
  } as const;
}

/**
 * The topic table for these geozones. Retention as in the seed; beyond the seed:
 * arc.deadletter (30 d), arc.decision.inference and arc.reservation.ended (7 d,
 * like results: effectToWire publishes there), arc.journal.{geozone} (kept
 * forever, one partition: a shard's event-sourced journal) and arc.snapshots
 * (compacted, one partition, keyed by shard id).
 */
export function topicSpecs(geozones: readonly string[], options: TopicSpecOptions = {}): TopicSpec[] {
  const zones = sortedGeozones(geozones);
  const n = topicNames(options);
  const remove = (retentionMs: number) => [
    { name: 'retention.ms', value: String(retentionMs) },
    { name: 'cleanup.policy', value: 'delete' },
  ];
  const byGeozone = (name: string, retentionMs: number): TopicSpec => ({ name, numPartitions: zones.length, configEntries: remove(retentionMs), keying: 'geozone' });
  const single = (name: string, retentionMs: number): TopicSpec => ({ name, numPartitions: 1, configEntries: remove(retentionMs), keying: 'none' });
  return [
    byGeozone(n.telemetry, 7 * DAY_MS),
    byGeozone(n.inference, DAY_MS),
    ...zones.map((geozone): TopicSpec => ({ ...single(n.dispatch(geozone), HOUR_MS), geozone })),
    byGeozone(n.result, 7 * DAY_MS),
    single(n.jobSubmission, 30 * DAY_MS),
    single(n.bridgePending, 30 * DAY_MS),
    single(n.bridgeIngress, 90 * DAY_MS),
    single(n.schedulerTraining, 30 * DAY_MS),
    byGeozone(n.summary, 30 * DAY_MS),
    byGeozone(n.system, 90 * DAY_MS),
    byGeozone(n.decision, 7 * DAY_MS),
    byGeozone(n.ended, 7 * DAY_MS),
    byGeozone(n.deadLetter, 30 * DAY_MS),
    ...zones.map(
      (geozone): TopicSpec => ({
        name: n.journal(geozone),
        numPartitions: 1,
        configEntries: [
          { name: 'retention.ms', value: '-1' },
          { name: 'cleanup.policy', value: 'delete' },
        ],
        keying: 'shard',
        geozone,
      }),
    ),
    {
      name: n.snapshots,
      numPartitions: 1,
      // retention.ms does not apply to a compact-only topic; -1 says so explicitly.
      configEntries: [
        { name: 'retention.ms', value: '-1' },
        { name: 'cleanup.policy', value: 'compact' },
        // A shard snapshot of 10,000 nodes is several MB (gzipped); the broker default is 1 MB.
        { name: 'max.message.bytes', value: String(64 * 1024 * 1024) },
      ],
      keying: 'shard',
    },
  ];
}

/** The partition of a geozone on the topics keyed by geozone: its index in the sorted geozone list. */
export function geozonePartition(geozone: string, geozones: readonly string[]): number {
  const index = sortedGeozones(geozones).indexOf(geozone);
  if (index < 0) {
    throw new ArcError(ErrorCodes.VALIDATION, `unknown geozone '${geozone}': not one of ${[...geozones].join(', ')}`, { geozone, geozones: [...geozones] });
  }
  return index;
}

/**
 * A kafkajs `createPartitioner` that routes by the message key = geozone:
 * a message with an explicit partition keeps it; on a single-partition topic
 * (dispatch, journal, snapshots, the seed's job topics) everything goes to 0;
 * otherwise the key must be one of the geozones and selects its partition
 * (ArcError VALIDATION for a missing or unknown key, USAGE for a topic with too
 * few partitions for the geozone list: run `arcnet kafka:topics`). The error
 * rejects the producer's send.
 */
export function geozonePartitioner(geozones: readonly string[]): ICustomPartitioner {
  const zones = sortedGeozones(geozones);
  const indexOf = new Map(zones.map((g, i) => [g, i]));
  return () =>
    ({ topic, partitionMetadata, message }: PartitionerArgs): number => {
      if (message.partition !== undefined && message.partition !== null) return message.partition;
      if (partitionMetadata.length === 1) return 0;
      const key = message.key === undefined || message.key === null ? undefined : message.key.toString();
      const index = key === undefined ? undefined : indexOf.get(key);
      if (index === undefined) {
        throw new ArcError(
          ErrorCodes.VALIDATION,
          key === undefined ? `message to ${topic} has no key: key it by geozone` : `message to ${topic} is keyed by unknown geozone '${key}'`,
          { topic, key: key ?? null, geozones: zones },
        );
      }
      if (index >= partitionMetadata.length) {
        throw new ArcError(ErrorCodes.USAGE, `${topic} has ${partitionMetadata.length} partitions, too few for ${zones.length} geozones: run arcnet kafka:topics`, {
          topic,
          partitions: partitionMetadata.length,
          geozones: zones,
        });
      }
      return index;
    };
}

export interface EnsureTopicsOptions {
  /** Default: the broker's default.replication.factor. */
  readonly replicationFactor?: number;
  /** How long the broker may take to create the topics and serve every partition, in ms (default 60 s). */
  readonly timeoutMs?: number;
  /** Stops waiting for the partitions to be served. */
  readonly signal?: AbortSignal | undefined;
}

export interface EnsureTopicsResult {
  readonly created: string[];
  readonly existing: string[];
  /** Existing topics keyed by geozone that had fewer partitions than geozones, and were given more. */
  readonly grown: string[];
}

/**
 * Creates the topics that do not exist yet and waits until every partition of
 * every topic in `specs` is served (waitForTopicsReady: also the ones another
 * process has just created); leaves existing ones as they are, without checking
 * their settings. Safe to run concurrently: a topic another process created
 * first counts as existing.
 */
export async function ensureTopics(admin: Admin, specs: readonly TopicSpec[], options: EnsureTopicsOptions = {}): Promise<EnsureTopicsResult> {
  const timeout = options.timeoutMs ?? 60_000;
  const present = new Set(await admin.listTopics());
  const missing = specs.filter((s) => !present.has(s.name));
  // One request per topic, so that a concurrent creator is told apart per topic (kafkajs answers
  // false when any topic of a request already existed). Not kafkajs's waitForLeaders: it gives up
  // on the first "does not host this topic-partition" its metadata poll gets; waitForTopicsReady waits that out.
  const outcomes = await Promise.all(
    missing.map((s) =>
      admin.createTopics({
        waitForLeaders: false,
        timeout,
        topics: [
          {
            topic: s.name,
            numPartitions: s.numPartitions,
            ...(options.replicationFactor === undefined ? {} : { replicationFactor: options.replicationFactor }),
            configEntries: s.configEntries.map((e) => ({ name: e.name, value: e.value })),
          },
        ],
      }),
    ),
  );
  const created = missing.filter((_, i) => outcomes[i] === true).map((s) => s.name);
  const createdSet = new Set(created);
  const existing = specs.filter((s) => !createdSet.has(s.name)).map((s) => s.name);
  const grown = await growGeozonePartitions(admin, specs.filter((s) => present.has(s.name) && s.keying === 'geozone'), timeout);
  await waitForTopicsReady(
    admin,
    specs.map((s) => s.name),
    { timeoutMs: timeout, signal: options.signal },
  );
  return { created, existing, grown };
}

/**
 * A topic keyed by geozone needs a partition per geozone (partition i is the
 * i-th geozone in sorted order): one made for fewer geozones (an earlier, smaller
 * federation on the same cluster) gets the partitions it lacks. Partitions are
 * only ever added, never removed; the geozones already there keep theirs only if
 * the new ones sort after them, so grow a live federation by adding geozones
 * whose names sort last (or start it with all of them).
 */
async function growGeozonePartitions(admin: Admin, specs: readonly TopicSpec[], timeoutMs: number): Promise<string[]> {
  if (specs.length === 0) return [];
  const metadata = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.name) });
  const counts = new Map(metadata.topics.map((t) => [t.name, t.partitions.length]));
  const short = specs.filter((s) => (counts.get(s.name) ?? s.numPartitions) < s.numPartitions);
  if (short.length === 0) return [];
  try {
    await admin.createPartitions({ timeout: timeoutMs, topicPartitions: short.map((s) => ({ topic: s.name, count: s.numPartitions })) });
  } catch (error) {
    // Another process grew them first (INVALID_PARTITIONS: the count is already there): re-check below.
    const after = await admin.fetchTopicMetadata({ topics: short.map((s) => s.name) });
    if (after.topics.some((t) => t.partitions.length < (short.find((s) => s.name === t.name)?.numPartitions ?? 0))) throw error;
  }
  return short.map((s) => s.name);
}

export interface TopicRetention {
  readonly retentionMs: string | undefined;
  readonly cleanupPolicy: string | undefined;
}

/** retention.ms and cleanup.policy of each topic, as the broker reports them. */
export async function describeRetention(admin: Admin, names: readonly string[]): Promise<Record<string, TopicRetention>> {
  if (names.length === 0) return {};
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: names.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: ['retention.ms', 'cleanup.policy'] })),
  });
  const out: Record<string, TopicRetention> = {};
  for (const resource of described.resources) {
    if (resource.errorCode !== 0) {
      throw new ArcError(ErrorCodes.USAGE, `cannot describe topic ${resource.resourceName}: ${resource.errorMessage || `error code ${resource.errorCode}`}`);
    }
    const value = (config: string) => resource.configEntries.find((e) => e.configName === config)?.configValue;
    out[resource.resourceName] = { retentionMs: value('retention.ms'), cleanupPolicy: value('cleanup.policy') };
  }
  return out;
}

export interface TopicsReadyOptions {
  /** How long to wait for every partition to be served, in ms (default 60 s). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal | undefined;
}

/** Partitions are polled this often while they are not all served yet. */
const READY_POLL_MS = 100;

/**
 * Waits until every partition of the topics has a leader (by a fresh metadata
 * request) and answers for itself (its leader lists its offsets). A topic's
 * creation is acknowledged once the controller has it; a broker may still say
 * "This server does not host this topic-partition" for a moment after it
 * advertises itself as the leader, and a client that produces or consumes right
 * then fails (kafkajs's consumer crashes on it). Throws a TopicsNotReadyError
 * (retriable) when time runs out.
 */
export async function waitForTopicsReady(admin: Admin, names: readonly string[], options: TopicsReadyOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = performance.now() + timeoutMs;
  let problem = 'not checked yet';
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      problem = await topicsProblem(admin, names);
      if (problem === '') return;
    } catch (error) {
      if (!isRetriableKafkaError(error)) throw error;
      problem = describeKafkaError(error);
    }
    if (performance.now() >= deadline) throw new TopicsNotReadyError(`topics not served within ${timeoutMs} ms: ${problem}`);
    await sleep(READY_POLL_MS, undefined, options.signal === undefined ? {} : { signal: options.signal });
  }
}

/** What is still missing ('' when nothing is). */
async function topicsProblem(admin: Admin, names: readonly string[]): Promise<string> {
  if (names.length === 0) return '';
  const { topics: described } = await admin.fetchTopicMetadata({ topics: [...names] });
  for (const name of names) {
    const topic = described.find((t) => t.name === name);
    if (topic === undefined || topic.partitions.length === 0) return `${name} has no partitions yet`;
    const leaderless = topic.partitions.filter((p) => p.partitionErrorCode !== 0 || p.leader < 0);
    if (leaderless.length > 0) return `${name} partitions ${leaderless.map((p) => p.partitionId).join(',')} have no leader yet`;
  }
  // Metadata can run ahead of the leaders themselves: ask each leader for its offsets.
  await Promise.all(names.map((name) => admin.fetchTopicOffsets(name)));
  return '';
}

/** Created topics whose partitions are not all served yet: waiting longer may help. */
export class TopicsNotReadyError extends Error {
  readonly retriable = true;

  constructor(message: string) {
    super(message);
    this.name = TOPICS_NOT_READY;
  }
}

export interface EnsureTopicsAtOptions extends EnsureTopicsOptions {
  readonly clientId?: string;
  readonly ssl?: ConnectionOptions | undefined;
  /**
   * Waiting for a broker that is down or not ready. Default: one attempt (kafkajs
   * retries for a few seconds), then ARC_ERR_USAGE, as `arcnet kafka:topics`
   * wants. A region passes its stop signal and an onRetry, and no maxAttempts:
   * it waits until Kafka is there or it is stopped.
   */
  readonly retry?: RetryOptions;
}

/**
 * Connects an admin client to `brokers`, ensures the topics (and waits until
 * every partition of them is served) and disconnects (what `arcnet kafka:topics`
 * does, for callers that do not hold a client). A region may start its consumer
 * and producers on the topics as soon as this returns.
 */
export async function ensureTopicsAt(brokers: readonly string[], specs: readonly TopicSpec[], options: EnsureTopicsAtOptions = {}): Promise<EnsureTopicsResult> {
  const kafka = new Kafka({
    clientId: options.clientId ?? 'arcnet-topics',
    brokers: [...brokers],
    ssl: options.ssl,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 10_000,
    requestTimeout: 60_000,
    // With a retry of our own, kafkajs gives up sooner so that each wait is reported (onRetry).
    retry: { retries: options.retry === undefined ? 5 : 2, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  const admin = kafka.admin();
  const created = new Set<string>();
  const grown = new Set<string>();
  try {
    await retry(
      async () => {
        try {
          await admin.connect();
          // A retry after a failed wait finds the topics of the failed attempt existing: remember who created them.
          const result = await ensureTopics(admin, specs, { ...options, signal: options.retry?.signal });
          for (const name of result.created) created.add(name);
          for (const name of result.grown) grown.add(name);
        } catch (error) {
          await admin.disconnect().catch(() => undefined);
          throw error;
        }
      },
      options.retry ?? { maxAttempts: 1 },
    );
  } catch (error) {
    if (options.retry?.signal?.aborted === true || !isRetriableKafkaError(error)) throw error;
    throw new ArcError(
      ErrorCodes.USAGE,
      `Kafka at ${brokers.join(',')} is not there or not ready: ${describeKafkaError(error)} (npm run kafka:start starts a local one)`,
      { brokers: [...brokers] },
    );
  } finally {
    await admin.disconnect();
  }
  return {
    created: specs.filter((s) => created.has(s.name)).map((s) => s.name),
    existing: specs.filter((s) => !created.has(s.name)).map((s) => s.name),
    grown: [...grown],
  };
}
